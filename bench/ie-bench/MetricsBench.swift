import Foundation
import IEEval
import IEImage

/// `ie-bench --aal-metrics`: issue 14's figure aal_metrics_116, our side of bench/reference/bench_sitk_metrics.py.
/// The ground truth is MRIcron's AAL atlas; the prediction is the atlas shifted by 2 voxels along x (vacated
/// voxels 0) and then eroded by one voxel with the 6-neighbourhood (a voxel keeps its label only when its 6 face
/// neighbours, inside the image, carry the same label), written to <work>/aal_perturbed_ie.nii.gz. Timed, best
/// of --repeats (wall seconds, and the CPU seconds of all threads, the steadier figure on a loaded machine):
/// `ie-metrics labels` without the CSV (MetricsEvaluation.evaluateLabelMaps: both files read,
/// every region scored). Writes <work>/ie_values.tsv and, where the SimpleITK script ran before with the same
/// --work, prints the largest differences to its values.
///   ie-bench --aal-metrics [--threads 1,2] [--repeats 3] [--aal PATH] [--work DIR] [--regions N]
func runAALMetricsBenchmark(arguments: [String]) {
    func option(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    let threadCounts = (option("--threads") ?? "1,2").split(separator: ",").compactMap { Int($0) }
    let repeats = max(1, Int(option("--repeats") ?? "3") ?? 3)
    let atlasPath = option("--aal") ?? "/usr/share/mricron/templates/aal.nii.gz"
    let work = option("--work") ?? (NSTemporaryDirectory() + "/ie-bench-aal")
    do {
        let atlas = try NIfTI.read(atlasPath)
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        let predictionPath = work + "/aal_perturbed_ie.nii.gz"
        try NIfTI.write(perturbedAtlas(atlas), to: predictionPath, datatype: .uint8)
        let namesPath = atlasPath.replacingOccurrences(of: ".nii.gz", with: ".nii.txt")
        let names = FileManager.default.fileExists(atPath: namesPath) ? try LabelNames.read(namesPath) : [:]
        var labels = names.keys.sorted()
        if labels.isEmpty { labels = Set(atlas.data.filter { $0 != 0 }.map { Int($0) }).sorted() }
        labels = Array(labels.prefix(Int(option("--regions") ?? "") ?? labels.count))
        let reference = try? String(contentsOfFile: work + "/sitk_values.tsv", encoding: .utf8)

        // Reading alone (both files, one after the other), to show what the scoring itself costs.
        var readSeconds = Double.infinity
        for _ in 0..<repeats {
            let start = now()
            _ = try NIfTI.read(predictionPath)
            _ = try NIfTI.read(atlasPath)
            readSeconds = min(readSeconds, now() - start)
        }
        var values: [Int: [Double]] = [:]
        for threads in threadCounts {
            var fastest = Double.infinity, fastestCPU = Double.infinity
            for _ in 0..<repeats {
                let start = now(), startCPU = cpuSeconds()
                let rows = try MetricsEvaluation.evaluateLabelMaps(
                    predictionPath: predictionPath, groundTruthPath: atlasPath, selection: .labels(labels),
                    names: names, patient: "1", threads: threads)
                fastest = min(fastest, now() - start)
                fastestCPU = min(fastestCPU, cpuSeconds() - startCPU)
                for (label, row) in zip(labels, rows) {
                    values[label] = [row.metrics.dice, row.metrics.hausdorffDistanceMM, row.metrics.meanDistanceMM]
                }
            }
            var record: [String: Any] = ["seconds": fastest, "cpu_seconds": fastestCPU, "peak_rss_mib": peakRSSMiB(),
                                         "regions": labels.count, "read_seconds_1thread": readSeconds]
            if let reference {
                let worst = maxAbsDifferences(values, parseValues(reference))
                for (name, value) in zip(["dice", "hd", "msd"], worst) { record["max_abs_diff_" + name] = value }
            }
            print(String(format: "ie-metrics labels, %d AAL regions, %d thread(s): %.3f s", labels.count, threads, fastest))
            benchLine(figure: "aal_metrics_116", threads: threads, record)
        }
        let table = values.keys.sorted().map { label in
            "\(label)\t" + values[label, default: []].map { "\($0)" }.joined(separator: "\t")
        }.joined(separator: "\n") + "\n"
        try table.write(toFile: work + "/ie_values.tsv", atomically: true, encoding: .utf8)
    } catch {
        print("aal metrics benchmark: \(error)")
        exit(1)
    }
}

/// The atlas shifted by 2 voxels along x, then each label eroded by its 6-neighbourhood (outside the image counts
/// as background).
private func perturbedAtlas(_ atlas: Volume<Float>) -> Volume<Float> {
    let s = atlas.shape
    var shifted = [Float](repeating: 0, count: s.count)
    for z in 0..<s.z { for y in 0..<s.y { for x in 2..<max(2, s.x) { shifted[s.index(z, y, x)] = atlas[z, y, x - 2] } } }
    var result = atlas
    for z in 0..<s.z {
        for y in 0..<s.y {
            for x in 0..<s.x {
                let value = shifted[s.index(z, y, x)]
                guard value != 0 else { result.data[s.index(z, y, x)] = 0; continue }
                let neighbours = [(z - 1, y, x), (z + 1, y, x), (z, y - 1, x), (z, y + 1, x), (z, y, x - 1), (z, y, x + 1)]
                let interior = neighbours.allSatisfy { n in
                    n.0 >= 0 && n.0 < s.z && n.1 >= 0 && n.1 < s.y && n.2 >= 0 && n.2 < s.x && shifted[s.index(n.0, n.1, n.2)] == value
                }
                result.data[s.index(z, y, x)] = interior ? value : 0
            }
        }
    }
    return result
}

/// `label<TAB>dice<TAB>hd<TAB>msd` lines.
private func parseValues(_ text: String) -> [Int: [Double]] {
    var values: [Int: [Double]] = [:]
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: "\t")
        if fields.count == 4, let label = Int(fields[0]) { values[label] = fields.dropFirst().map { Double($0) ?? .nan } }
    }
    return values
}

/// Largest |difference| per metric over both tables' labels (inf where a label is in one table only, or one value is
/// finite and the other not; NaN against NaN and equal infinities count as equal).
private func maxAbsDifferences(_ ours: [Int: [Double]], _ theirs: [Int: [Double]]) -> [Double] {
    var worst = [0.0, 0.0, 0.0]
    for label in Set(ours.keys).union(theirs.keys) {
        guard let a = ours[label], let b = theirs[label] else { return [.infinity, .infinity, .infinity] }
        for k in 0..<3 where !(a[k] == b[k] || (a[k].isNaN && b[k].isNaN)) {
            worst[k] = max(worst[k], a[k].isFinite && b[k].isFinite ? abs(a[k] - b[k]) : .infinity)
        }
    }
    return worst
}


import Foundation
import IECore
import IEImage

/// An integer label map (0 = background, 1...65535 structures) on a voxel grid, as InnerEye's multi-label
/// segmentations (`binaries_from_multi_label_array` splits one into a binary mask per class).
public struct LabelMap: Sendable {
    public static let maximumLabel = 65_535
    public var labels: [UInt16]
    public var grid: VoxelGrid

    public init(labels: [UInt16], grid: VoxelGrid) {
        precondition(labels.count == grid.count, "label map has \(labels.count) voxels, grid \(grid.count)")
        self.labels = labels
        self.grid = grid
    }

    /// The label map of a volume read from `path`: every voxel must be an integer 0...65535, else a bad-input
    /// error naming the file and the first offending voxel.
    public init(_ volume: Volume<Float>, path: String) throws {
        var labels = [UInt16](repeating: 0, count: volume.count)
        var bad: (index: Int, value: Float)?
        volume.data.withUnsafeBufferPointer { v in
            labels.withUnsafeMutableBufferPointer { l in
                for i in 0..<v.count {
                    let value = v[i]
                    // Written so that NaN fails the test too; in range, the conversion truncates, so the value
                    // is an integer exactly when it survives the round trip.
                    guard value >= 0, value <= Float(LabelMap.maximumLabel) else {
                        bad = (i, value)
                        return
                    }
                    let label = UInt16(value)
                    guard Float(label) == value else {
                        bad = (i, value)
                        return
                    }
                    l[i] = label
                }
            }
        }
        if let bad {
            let p = volume.position(ofIndex: bad.index)
            throw IEError.badInput("voxel (z=\(p.z), y=\(p.y), x=\(p.x)) has value \(bad.value), expected an integer label "
                                   + "0...\(LabelMap.maximumLabel) (0 is the background)", file: path)
        }
        self.init(labels: labels, grid: VoxelGrid(shape: volume.shape, spacing: volume.spacing))
    }
}

/// Per-label metrics of a prediction label map against a ground-truth label map: for each label L, the
/// SPEC §7 metrics of the binary masks (prediction == L) and (ground truth == L), computed by
/// `SegmentationMetrics.compute(croppedPrediction:...)` on L's bounding box only.
public enum LabelMapMetrics {
    /// Where each label occurs in either map: the bounding box of its voxels in both maps.
    struct Extent {
        var z0 = Int.max, z1 = Int.min, y0 = Int.max, y1 = Int.min, x0 = Int.max, x1 = Int.min

        var box: VoxelBox? { z0 == .max ? nil : VoxelBox(z0: z0, z1: z1, y0: y0, y1: y1, x0: x0, x1: x1) }

        @inline(__always) mutating func add(z: Int, y: Int, xFirst: Int, xLast: Int) {
            if z < z0 { z0 = z }
            if z + 1 > z1 { z1 = z + 1 }
            if y < y0 { y0 = y }
            if y + 1 > y1 { y1 = y + 1 }
            if xFirst < x0 { x0 = xFirst }
            if xLast + 1 > x1 { x1 = xLast + 1 }
        }

        mutating func merge(_ other: Extent) {
            z0 = min(z0, other.z0); z1 = max(z1, other.z1)
            y0 = min(y0, other.y0); y1 = max(y1, other.y1)
            x0 = min(x0, other.x0); x1 = max(x1, other.x1)
        }
    }

    /// The extent of every label value (index = label) over both maps, in one pass split into z slabs over
    /// `threads` threads (merging boxes is order-independent, so the result does not depend on the split).
    static func extents(_ prediction: LabelMap, _ groundTruth: LabelMap, threads: Int) -> [Extent] {
        let grid = prediction.grid
        // At most 8 slabs: each keeps a box per possible label value (3 MB).
        let slabs = max(1, min(threads, grid.nz, 8))
        var perSlab = [[Extent]](repeating: [], count: slabs)
        let lock = NSLock()
        prediction.labels.withUnsafeBufferPointer { p in
            groundTruth.labels.withUnsafeBufferPointer { g in
                DispatchQueue.concurrentPerform(iterations: slabs) { slab in
                    var local = [Extent](repeating: Extent(), count: LabelMap.maximumLabel + 1)
                    for z in (grid.nz * slab / slabs)..<(grid.nz * (slab + 1) / slabs) {
                        for y in 0..<grid.ny {
                            let row = grid.index(z, y, 0)
                            for map in [p, g] {
                                // Runs of one label along x update its box once.
                                var x = 0
                                while x < grid.nx {
                                    let label = map[row + x]
                                    var end = x + 1
                                    while end < grid.nx && map[row + end] == label { end += 1 }
                                    if label != 0 { local[Int(label)].add(z: z, y: y, xFirst: x, xLast: end - 1) }
                                    x = end
                                }
                            }
                        }
                    }
                    lock.lock()
                    perSlab[slab] = local
                    lock.unlock()
                }
            }
        }
        var merged = perSlab[0]
        for other in perSlab.dropFirst() {
            for label in merged.indices { merged[label].merge(other[label]) }
        }
        return merged
    }

    /// Which labels to score.
    public enum Selection: Sendable, Equatable {
        /// These labels (each 1...65535), in this order; a label absent from both maps gives all NaN, as
        /// InnerEye's empty classes.
        case labels([Int])
        /// Every non-zero label present in either map, and these (absent ones give all NaN), ascending.
        case present(including: [Int])
    }

    /// Metrics of the selected labels, with their label values. Labels are spread over `threads` threads, the
    /// largest boxes first; each label is computed by one thread alone, so the values do not depend on the
    /// thread count.
    public static func compute(prediction: LabelMap, groundTruth: LabelMap, selection: Selection, extras: [ExtraMetric] = [],
                               threads: Int = 1) -> [(label: Int, metrics: SegmentationMetrics)] {
        precondition(prediction.grid.shape == groundTruth.grid.shape, "label maps of different shapes")
        let extent = extents(prediction, groundTruth, threads: threads)
        let labels: [Int]
        switch selection {
        case .labels(let list):
            labels = list
        case .present(let including):
            labels = Set(extent.indices.filter { $0 != 0 && extent[$0].box != nil } + including).sorted()
        }
        precondition(labels.allSatisfy { (1...LabelMap.maximumLabel).contains($0) }, "labels outside 1...65535")
        // Distances use the ground truth's spacing (the reference geometry), as for binary masks.
        let grid = groundTruth.grid
        let boxes = labels.map { extent[$0].box }
        let order = labels.indices.sorted { (boxes[$0]?.shape.count ?? 0) > (boxes[$1]?.shape.count ?? 0) }
        var results = [SegmentationMetrics](repeating: SegmentationMetrics.allNaN(extras: extras), count: labels.count)
        let queue = WorkQueue(count: order.count)
        let lock = NSLock()
        prediction.labels.withUnsafeBufferPointer { p in
            groundTruth.labels.withUnsafeBufferPointer { g in
                queue.run(threads: threads) { queue in
                    while let taken = queue.take() {
                        let item = order[taken]
                        guard let box = boxes[item] else { continue }
                        let label = UInt16(labels[item])
                        let a = crop(p, box: box, grid: grid) { $0 == label }
                        let b = crop(g, box: box, grid: grid) { $0 == label }
                        let metrics = SegmentationMetrics.compute(croppedPrediction: a, croppedGroundTruth: b, box: box,
                                                                  imageGrid: grid, extras: extras)
                        lock.lock()
                        results[item] = metrics
                        lock.unlock()
                    }
                }
            }
        }
        return zip(labels, results).map { (label: $0, metrics: $1) }
    }

    /// `test` of every voxel of `map` inside `box`, in (Z, Y, X) order.
    static func crop(_ map: UnsafeBufferPointer<UInt16>, box: VoxelBox, grid: VoxelGrid, _ test: (UInt16) -> Bool) -> [Bool] {
        var out = [Bool](repeating: false, count: box.shape.count)
        var i = 0
        for z in box.z0..<box.z1 {
            for y in box.y0..<box.y1 {
                let start = grid.index(z, y, 0)
                for x in box.x0..<box.x1 {
                    out[i] = test(map[start + x])
                    i += 1
                }
            }
        }
        return out
    }
}

/// Structure names of label values, from a text file with one `<label> <name> [anything]` line per structure
/// (the format of MRIcron's atlas `.nii.txt` files, e.g. `1 Precentral_L 2001`); blank lines are skipped.
public enum LabelNames {
    public static func read(_ path: String) throws -> [Int: String] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw IEError.badInput("cannot read the label names: \(error.localizedDescription)", file: path)
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws -> [Int: String] {
        var names: [Int: String] = [:]
        for (number, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let fields = line.split(whereSeparator: \.isWhitespace)
            if fields.isEmpty { continue }
            guard fields.count >= 2, let label = Int(fields[0]), (1...LabelMap.maximumLabel).contains(label) else {
                throw IEError.badInput("'\(line)', expected '<label 1...\(LabelMap.maximumLabel)> <name>'", file: path, line: number + 1)
            }
            if let previous = names[label] {
                throw IEError.badInput("label \(label) named twice ('\(previous)' and '\(fields[1])')", file: path, line: number + 1)
            }
            names[label] = String(fields[1])
        }
        return names
    }
}

extension MetricsEvaluation {
    /// metrics.csv rows of a prediction label map against a ground-truth label map (SPEC §7 `ie-metrics labels`):
    /// one row per selected label, named by `names` or else by its value, in label order. The two files are read
    /// at the same time when `threads` > 1.
    public static func evaluateLabelMaps(predictionPath: String, groundTruthPath: String, selection: LabelMapMetrics.Selection,
                                         names: [Int: String] = [:], patient: String, extras: [ExtraMetric] = [],
                                         threads: Int = 1, load: VolumeLoader = readNIfTI) throws -> [MetricsRow] {
        let paths = [predictionPath, groundTruthPath]
        var volumes = [Result<Volume<Float>, Error>](repeating: .failure(IEError.badInput("not read")), count: 2)
        let lock = NSLock()
        let readers = threads > 1 ? 2 : 1
        DispatchQueue.concurrentPerform(iterations: readers) { worker in
            for index in stride(from: worker, to: paths.count, by: readers) {
                let result = Result { try load(paths[index]) }
                lock.lock()
                volumes[index] = result
                lock.unlock()
            }
        }
        let prediction = try volumes[0].get(), truth = try volumes[1].get()
        try requireSameGrid(prediction, predictionPath, truth, groundTruthPath)
        let predictionMap = try LabelMap(prediction, path: predictionPath)
        let truthMap = try LabelMap(truth, path: groundTruthPath)
        let scored = LabelMapMetrics.compute(prediction: predictionMap, groundTruth: truthMap, selection: selection,
                                             extras: extras, threads: threads)
        return scored.map { MetricsRow(patient: patient, structure: names[$0.label] ?? String($0.label), metrics: $0.metrics) }
    }
}

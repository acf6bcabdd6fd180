import ArgumentParser
import Foundation
import IECommand
import IECore
import IEEval

struct LabelMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "labels",
        abstract: "Score every label of a prediction label map against a ground-truth label map: one row per label.",
        discussion: """
        Both files hold integer labels 0...65535 (0 is the background) on one grid
        (shape, spacing, origin and direction). Label L is scored as the binary masks
        (prediction == L) against (ground truth == L), as InnerEye splits a
        multi-label segmentation. A label absent from both maps gives an empty (NaN)
        row. Rows are named by --names (lines '<label> <name> ...', as MRIcron's
        atlas .nii.txt files) or by the label value. Labels are spread over --threads
        threads; the values do not depend on it.

        Examples:
          ie-metrics labels --prediction=seg.nii.gz --ground_truth=aal.nii.gz \\
              --names=aal.nii.txt -o metrics.csv
          ie-metrics labels --prediction=seg.nii.gz --ground_truth=gt.nii.gz \\
              --labels=1,2,5 --threads=2
        """)

    @Option(help: "Prediction label map.") var prediction: String
    @Option(name: .customLong("ground_truth"), help: "Ground-truth label map.") var groundTruth: String
    @Option(help: "Labels to score: comma-separated values 1...65535, or 'all' (every label in either map and of --names).")
    var labels: String = "all"
    @Option(help: "Label names: one '<label> <name>' line per structure.") var names: String?
    @Option(help: "Patient id for the rows.") var patient: String = "1"
    @OptionGroup var extra: ExtraColumns
    @OptionGroup var threads: ThreadsOption
    @Option(name: .customShort("o"), help: "metrics.csv destination, '-' for stdout.") var output: String = "-"
    @OptionGroup var log: LogOptions

    /// The --labels list (nil: all).
    func labelList() throws -> [Int]? {
        if labels.trimmingCharacters(in: .whitespaces).lowercased() == "all" { return nil }
        var list: [Int] = []
        for item in labels.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            guard let label = Int(item), (1...LabelMap.maximumLabel).contains(label) else {
                throw ValidationError("--labels: '\(item)', expected 'all' or comma-separated labels 1...\(LabelMap.maximumLabel)")
            }
            if !list.contains(label) { list.append(label) }
        }
        if list.isEmpty { throw ValidationError("--labels=\(labels), expected 'all' or comma-separated labels") }
        return list
    }

    func validate() throws { _ = try labelList() }

    func run() throws {
        log.apply(tool: "ie-metrics")
        let extras = try extra.parsed()
        let names = try names.map(LabelNames.read) ?? [:]
        let selection: LabelMapMetrics.Selection = try labelList().map { .labels($0) } ?? .present(including: Array(names.keys))
        let rows = try MetricsEvaluation.evaluateLabelMaps(
            predictionPath: prediction, groundTruthPath: groundTruth, selection: selection, names: names,
            patient: patient, extras: extras, threads: threads.count())
        try MetricsCSVWriter.write(rows: rows, extras: extras, to: output)
        Log.info("ie-metrics: \(rows.count) labels scored")
    }
}

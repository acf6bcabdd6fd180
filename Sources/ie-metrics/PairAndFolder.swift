import ArgumentParser
import Foundation
import IECommand
import IECore
import IEData
import IEEval
import IERun

struct PairMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pair",
        abstract: "Score one prediction mask against one ground-truth mask: the header and one row.",
        discussion: """
        Examples:
          ie-metrics pair --prediction=p.nii.gz --ground_truth=g.nii.gz
          ie-metrics pair --prediction=p.nii.gz --ground_truth=g.nii.gz \\
              --patient=7 --structure=lung -o metrics.csv
        """)

    @Option(help: "Prediction mask.") var prediction: String
    @Option(name: .customLong("ground_truth"), help: "Ground-truth mask.") var groundTruth: String
    @Option(help: "Structure name for the row (default: the ground-truth file name without .nii[.gz]).") var structure: String?
    @Option(help: "Patient id for the row.") var patient: String = "1"
    @OptionGroup var extra: ExtraColumns
    @Option(name: .customShort("o"), help: "metrics.csv destination, '-' for stdout.") var output: String = "-"
    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply(tool: "ie-metrics")
        let extras = try extra.parsed()
        let metrics = try MetricsEvaluation.evaluate(predictionPath: prediction, groundTruthPath: groundTruth, extras: extras)
        let name = structure ?? MetricsEvaluation.structureName(fromPath: groundTruth)
        try MetricsCSVWriter.write(rows: [MetricsRow(patient: patient, structure: name, metrics: metrics)],
                                   extras: extras, to: output)
    }
}

struct FolderMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "folder",
        abstract: "Score every subject folder <subject:03d>/ of an ie-infer output against a dataset's ground truth.",
        discussion: """
        Writes <output_folder>/metrics.csv and the largest predicted slices as
        thumbnails/<subject:03d>_<structure>_slice_<z:03d>.png.

        Examples:
          ie-metrics folder --prediction_dir=runs/x/epoch_010/Test \\
              --dataset=datasets/HelloWorld/dataset.csv \\
              --structures=region_a,region_b --image_channel=ct
        """)

    @Option(name: .customLong("prediction_dir"), help: "ie-infer output folder holding <subject:03d>/<structure>.nii.gz.")
    var predictionDir: String
    @Option(help: "dataset.csv giving each subject's ground-truth files.") var dataset: String
    @Option(help: "Comma-separated structure (ground-truth channel) names to score.") var structures: String
    @Option(name: .customLong("image_channel"), help: "Dataset channel shown under the thumbnails (default: no image).")
    var imageChannel: String?
    @Option(name: .customLong("output_folder"), help: "Where metrics.csv and thumbnails/ go (default: --prediction_dir).")
    var outputFolder: String?
    @Flag(name: .customLong("no-thumbnails"), help: "Skip the thumbnails.") var noThumbnails = false
    @OptionGroup var extra: ExtraColumns
    @OptionGroup var threads: ThreadsOption
    @Option(name: .customShort("o"), help: "An extra copy of metrics.csv, '-' for stdout.") var output: String?
    @OptionGroup var log: LogOptions

    var structureNames: [String] {
        structures.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        if structureNames.isEmpty { throw ValidationError("--structures=\(structures), expected comma-separated structure names") }
    }

    func run() throws {
        log.apply(tool: "ie-metrics")
        let extras = try extra.parsed()
        let data = try Dataset.load(path: dataset)
        let cases = try MetricsEvaluation.cases(
            predictionFolder: predictionDir, subjects: data.subjects, structures: structureNames,
            groundTruth: { subject, structure in data.row(subject: subject, channel: structure).map(data.absolutePath) },
            image: { subject in imageChannel.flatMap { data.row(subject: subject, channel: $0) }.map(data.absolutePath) })
        let folder = outputFolder ?? predictionDir
        // Inside a run, folder scoring is one more writer of the run: it holds the run's lock (no scoring of files
        // ie-infer is rewriting, no two writers of one metrics.csv), and the aggregates, box plot and outliers of
        // the old metrics go, since this command does not rewrite them (`ie-metrics run` does).
        guard let run = RunDirectory.enclosing(folder) else { return try score(cases, into: folder, extras: extras) }
        try RunLock.process.withLock(run: run.path, tool: "ie-metrics") {
            let rewritten: Set = [RunLayout.metricsFileName, "thumbnails"]
            for name in Set(["Val", "Test", "Train"].flatMap(RunLayout.evaluationFileNames)).subtracting(rewritten) {
                let stale = folder + "/" + name
                if FileManager.default.fileExists(atPath: stale) { try FileManager.default.removeItem(atPath: stale) }
            }
            try score(cases, into: folder, extras: extras)
        }
    }

    private func score(_ cases: [MetricsCase], into folder: String, extras: [ExtraMetric]) throws {
        let rows = try MetricsEvaluation.run(cases: cases, outputFolder: folder, extras: extras,
                                             writePNG: noThumbnails ? nil : MetricsEvaluation.writeThumbnail,
                                             threads: threads.count())
        if let output { try MetricsCSVWriter.write(rows: rows, extras: extras, to: output) }
        Log.info("ie-metrics: wrote \(folder)/metrics.csv (\(cases.count) rows)")
    }
}

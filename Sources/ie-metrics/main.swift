import ArgumentParser
import Foundation
import IECommand
import IECore
import IEData
import IEConfig
import IEEval
import IEReport
import IERun

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-metrics",
        abstract: "Segmentation metrics (Dice, Hausdorff, mean surface distance) as InnerEye's metrics.csv.",
        discussion: """
        Single pair: scores one prediction mask against one ground-truth mask and
        writes the header and one row. Folder: scores every subject folder
        <subject:03d>/ of an ie-infer output against the dataset's ground truth and
        writes <output_folder>/metrics.csv and the largest predicted slices as
        thumbnails/<subject:03d>_<structure>_slice_<z:03d>.png. Masks must be binary
        (0/1) NIfTI files of equal shape and spacing. Distances are in mm between
        voxel centres (SPEC §7); NaN is an empty field, a missing object gives Dice
        0 and inf distances. Extra columns: hd95 (MONAI HD95), assd, nsd@<mm> (surface
        Dice at a tolerance); these use MONAI's surface (the image border counts as
        a boundary), MeanDistance_mm uses SimpleITK's contour (it does not).

        Run: scores a run's epoch folder outputs/epoch_NNN/<Mode>/ (written by
        ie-infer) and adds metrics_aggregates.csv and metrics_boxplot.png there.

        Examples:
          ie-metrics --run=runs/main/main_20261125T101010Z_ab12 --mode=Val
          ie-metrics --prediction=001/lung.nii.gz --ground_truth=gt/lung.nii.gz \\
                     --patient=1 --structure=lung
          ie-metrics --prediction=p.nii.gz --ground_truth=g.nii.gz \\
                     --extra=hd95,assd,nsd@2 -o - | ie-stats aggregate
          ie-metrics --prediction_dir=runs/x/epoch_010/Test \\
                     --dataset=datasets/HelloWorld/dataset.csv \\
                     --structures=region_a,region_b --image_channel=ct
        """)

    @Option(name: .customLong("run"), help: "Run folder (run mode): score outputs/epoch_NNN/<Mode>/.")
    var runFolder: String?

    @Option(help: "Epoch (run mode; default: the run's epochs_to_test).")
    var epoch: Int?

    @Option(help: "Val or Test (run mode).")
    var mode: String = "Test"

    @Option(help: "settings.yml (run mode).")
    var settings: String?

    @Option(help: "Prediction mask (single-pair mode).")
    var prediction: String?

    @Option(name: .customLong("ground_truth"), help: "Ground-truth mask (single-pair mode).")
    var groundTruth: String?

    @Option(help: "Structure name for the row (single-pair mode; default: the ground-truth file name without .nii[.gz]).")
    var structure: String?

    @Option(help: "Patient id for the row (single-pair mode; default 1).")
    var patient: String = "1"

    @Option(name: .customLong("prediction_dir"), help: "ie-infer output folder holding <subject:03d>/<structure>.nii.gz (folder mode).")
    var predictionDir: String?

    @Option(help: "dataset.csv giving each subject's ground-truth files (folder mode).")
    var dataset: String?

    @Option(help: "Comma-separated structure (ground-truth channel) names to score (folder mode).")
    var structures: String?

    @Option(name: .customLong("image_channel"), help: "Dataset channel shown under the thumbnails (folder mode; default: no image).")
    var imageChannel: String?

    @Option(name: .customLong("output_folder"), help: "Where metrics.csv and thumbnails/ go (folder mode; default: --prediction_dir).")
    var outputFolder: String?

    @Flag(name: .customLong("allow_missing"), help: "Run mode: score a split whose segmentations are incomplete; missing subjects become rows with empty values (default: an error).")
    var allowMissing = false

    @Flag(name: .customLong("no-thumbnails"), help: "Skip the thumbnails (folder mode).")
    var noThumbnails = false

    @Option(help: "Extra columns: comma-separated hd95, assd, nsd@<mm>.")
    var extra: String = ""

    @Option(name: .customShort("o"), help: "metrics.csv destination, '-' for stdout (single-pair default '-'; in folder mode an extra copy).")
    var output: String?

    @Flag(help: "Only errors on stderr.")
    var quiet = false

    @Flag(help: "More detail on stderr.")
    var verbose = false

    var isFolderMode: Bool { predictionDir != nil || dataset != nil }

    func validate() throws {
        if runFolder != nil {
            guard ["Val", "Test", "Train"].contains(mode) else { throw ValidationError("--mode=\(mode), expected Val or Test") }
        } else if isFolderMode {
            guard predictionDir != nil, dataset != nil, let structures, !structures.isEmpty else {
                throw ValidationError("folder mode needs --prediction_dir, --dataset and --structures together")
            }
            guard prediction == nil, groundTruth == nil else {
                throw ValidationError("use either --prediction/--ground_truth or --prediction_dir/--dataset, not both")
            }
        } else {
            guard prediction != nil, groundTruth != nil else {
                throw ValidationError("give --prediction and --ground_truth (or --prediction_dir, --dataset and --structures)")
            }
        }
        do { _ = try ExtraMetric.parseList(extra) } catch let error as IEError { throw ValidationError(error.message) }
    }

    func run() throws {
        Log.tool = "ie-metrics"
        Log.level = quiet ? .quiet : verbose ? .verbose : .normal
        let extras = try ExtraMetric.parseList(extra)
        if let runFolder {
            let run = try RunDirectory.open(path: runFolder)
            let settingsValue = try Settings.locate(explicitPath: settings)
            let config = try run.modelConfig(settings: settingsValue)
            try run.performEvaluation(tool: "ie-metrics") {
                for e in epoch.map({ [$0] }) ?? config.epochsToTest {
                    try RunEvaluation.evaluate(run: run, config: config, settings: settingsValue, epoch: e, mode: mode,
                                               extras: extras, thumbnails: !noThumbnails, allowMissing: allowMissing)
                }
            }
        } else if isFolderMode {
            let data = try Dataset.load(path: dataset!)
            let names = structures!.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let cases = try MetricsEvaluation.cases(
                predictionFolder: predictionDir!, subjects: data.subjects, structures: names,
                groundTruth: { subject, structure in data.row(subject: subject, channel: structure).map(data.absolutePath) },
                image: { subject in imageChannel.flatMap { data.row(subject: subject, channel: $0) }.map(data.absolutePath) })
            let folder = outputFolder ?? predictionDir!
            let rows = try MetricsEvaluation.run(cases: cases, outputFolder: folder, extras: extras,
                                                 writePNG: noThumbnails ? nil : MetricsEvaluation.writeThumbnail)
            if let output { try MetricsCSVWriter.write(rows: rows, extras: extras, to: output) }
            Log.info("ie-metrics: wrote \(folder)/metrics.csv (\(cases.count) rows)")
        } else {
            let metrics = try MetricsEvaluation.evaluate(predictionPath: prediction!, groundTruthPath: groundTruth!, extras: extras)
            let name = structure ?? MetricsEvaluation.structureName(fromPath: groundTruth!)
            try MetricsCSVWriter.write(rows: [MetricsRow(patient: patient, structure: name, metrics: metrics)],
                                       extras: extras, to: output ?? "-")
        }
    }
}

runCommand(Metrics.self, tool: "ie-metrics")

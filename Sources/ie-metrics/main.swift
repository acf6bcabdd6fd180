import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IEEval
import IEReport
import IERun

struct Metrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-metrics",
        abstract: "Segmentation metrics (Dice, Hausdorff, mean surface distance) as InnerEye's metrics.csv.",
        discussion: """
        Four subcommands: `run` scores a run's epoch folders written by ie-infer,
        `pair` one prediction mask against one ground-truth mask, `folder` every
        subject folder of an ie-infer output against a dataset's ground truth,
        `labels` every label of a label map against a ground-truth label map.
        Masks must be binary (0/1) NIfTI files of equal shape and spacing
        (label maps: integers 0...65535).
        Distances are in mm between voxel centres (SPEC §7); NaN is an empty field,
        a missing object gives Dice 0 and inf distances. Extra columns: hd95 (MONAI
        HD95), assd, nsd@<mm> (surface Dice at a tolerance); these use MONAI's
        surface (the image border counts as a boundary), MeanDistance_mm uses
        SimpleITK's contour (it does not).

        Examples:
          ie-metrics run --run=runs/main/main_20261125T101010Z_ab12 --mode=Val
          ie-metrics pair --prediction=001/lung.nii.gz \\
              --ground_truth=gt/lung.nii.gz --patient=1 --structure=lung
          ie-metrics pair --prediction=p.nii.gz --ground_truth=g.nii.gz \\
              --extra=hd95,assd,nsd@2 -o - | ie-stats aggregate
          ie-metrics folder --prediction_dir=runs/x/epoch_010/Test \\
              --dataset=datasets/HelloWorld/dataset.csv \\
              --structures=region_a,region_b --image_channel=ct
          ie-metrics labels --prediction=seg.nii.gz --ground_truth=atlas.nii.gz \\
              --names=atlas.nii.txt --threads=2 -o metrics.csv
        """,
        subcommands: [RunMetrics.self, PairMetrics.self, FolderMetrics.self, LabelMetrics.self])
}

/// `--extra=hd95,assd,nsd@2`: the extra metric columns, checked while parsing.
struct ExtraColumns: ParsableArguments {
    @Option(help: "Extra columns: comma-separated hd95, assd, nsd@<mm>.") var extra: String = ""

    func validate() throws {
        do { _ = try ExtraMetric.parseList(extra) } catch let error as IEError { throw ValidationError(error.message) }
    }

    func parsed() throws -> [ExtraMetric] { try ExtraMetric.parseList(extra) }
}

struct RunMetrics: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Score a run's outputs/epoch_NNN/<Mode>/ (written by ie-infer); add metrics_aggregates.csv and "
            + "metrics_boxplot.png there.",
        discussion: """
        Examples:
          ie-metrics run --run=$RUN --mode=Val
          ie-metrics run --run=$RUN --mode=Test --epoch=20 --extra=hd95
        """)

    @OptionGroup var runFolder: RunOption
    @Option(help: "Epoch (default: the run's epochs_to_test).", transform: epochNumber) var epoch: Int?
    @Option(help: "The run's split: Train, Val or Test.") var mode: Mode = .test
    @Flag(name: .customLong("allow_missing"),
          help: "Score a split whose segmentations are incomplete; missing subjects become rows with empty values.")
    var allowMissing = false
    @Flag(name: .customLong("no-thumbnails"), help: "Skip the thumbnails.") var noThumbnails = false
    @OptionGroup var extra: ExtraColumns
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var settings: SettingsOption
    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply(tool: "ie-metrics")
        let extras = try extra.parsed()
        let runDir = try RunDirectory.open(path: runFolder.path)
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        let config = try runDir.modelConfig(settings: settingsValue)
        try runDir.performEvaluation(tool: "ie-metrics") {
            for e in epoch.map({ [$0] }) ?? config.epochsToTest {
                try RunEvaluation.evaluate(run: runDir, config: config, settings: settingsValue, epoch: e, mode: mode.rawValue,
                                           extras: extras, thumbnails: !noThumbnails, allowMissing: allowMissing,
                                           threads: threads.count())
            }
        }
    }
}

// First, before any thread starts: a SIGTERM, SIGINT or SIGHUP stops gnuplot and removes its scratch folder.
TerminationCleanup.install()
runCommand(Metrics.self, tool: "ie-metrics")

import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IENet
import IEPipeline
import IERun

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-evaluate",
        abstract: "Evaluates a trained run: inference, metrics, outliers, comparisons and the report (SPEC §9).",
        discussion: """
        For each of the run's epochs_to_test and each of Train, Val and Test
        (inference_on_train_set, inference_on_val_set, inference_on_test_set,
        non-empty split): inference with
        the epoch's checkpoint, then in outputs/epoch_NNN/<Mode>/ metrics.csv,
        metrics_aggregates.csv, <Mode>_outliers.txt, metrics_boxplot.png and
        thumbnails/; on Test of a run that is not a cross-validation fold, the
        comparison with the config's comparison_runs; last outputs/report.ipynb and
        report.html. The same pipeline runs in `make evaluate`, the Slurm jobs of
        ie-submit and the cross-validation ensemble step (ie-crossval), so a run ends
        with the same files whichever way it was started. A cross-validation parent is
        evaluated by its ensemble step (ie-crossval ensemble --run=PARENT), not here.

        Without --mark_completed the run's status and times are left alone (a failure
        is recorded in run.json as ie-metrics' is); with it (the step after training
        in a Slurm job or a make rule) the run is marked completed, and a failed fold
        fails its parent.

        Examples:
          ie-evaluate --run=$RUN
          ie-evaluate --run=$RUN --mark_completed --threads=8
        """)

    @OptionGroup var runOption: RunOption
    @OptionGroup var settings: SettingsOption
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var precision: PrecisionOption
    @Flag(name: .customLong("mark_completed"), help: "Mark the run completed when the evaluation succeeds.")
    var markCompleted = false
    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply(tool: "ie-evaluate")
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        EngineOptions.fromCommandLine(threads: threads.threads, precision: precision.precision)
        let runDirectory = try RunDirectory.open(path: runOption.path)
        try RunCompletion.evaluate(run: runDirectory, settings: settingsValue, tool: "ie-evaluate", markCompleted: markCompleted)
    }
}

// First, before any thread starts: a SIGTERM, SIGINT or SIGHUP stops gnuplot and removes its scratch folder.
TerminationCleanup.install()
runCommand(Evaluate.self, tool: "ie-evaluate")

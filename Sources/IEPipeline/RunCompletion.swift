import Foundation
import IECore
import IEConfig
import IENet
import IEReport
import IERun
import IETrain

/// The evaluation pipeline of a run (SPEC §9), defined once: for each tested epoch and each of Val and Test,
/// inference → metrics → aggregates, box plot and outliers → baseline comparisons; then the run's report.
/// `ie-evaluate` (and so `make evaluate` and ie-submit's Slurm jobs), `ie-crossval` (its folds and its ensemble
/// step) all call it, so a run ends with the same files whichever way it was started. A classification or
/// regression run (SPEC §13) takes the scalar steps: inference with its model outputs and metrics, then the report.
public enum RunCompletion {
    /// `models`: evaluate these instead of the run's own checkpoint of each epoch (an ensemble). `baselines:
    /// false` skips the comparison_runs step (folds and parents compare in CrossValResults/BaselineComparisons).
    /// `epochs`: default the config's epochs_to_test. `report: false` leaves the report to the caller (the
    /// ensemble step writes it after CrossValResults/).
    public static func evaluate(run: RunDirectory, config: ModelConfig, settings: Settings, models: [UNet3D]? = nil,
                                classifiers: [ImageClassifier]? = nil, baselines: Bool = true, epochs: [Int]? = nil,
                                report: Bool = true) throws {
        for epoch in epochs ?? config.epochsToTest {
            for mode in try RunEvaluation.modes(run: run, config: config) {
                if config.category.isScalar {
                    try ScalarRun.evaluate(run: run, config: config, settings: settings, epoch: epoch, mode: mode, models: classifiers)
                    continue
                }
                try RunPipeline.infer(run: run, config: config, settings: settings, epoch: epoch, mode: mode, models: models)
                try RunEvaluation.evaluate(run: run, config: config, settings: settings, epoch: epoch, mode: mode,
                                           baselines: baselines)
            }
        }
        if report { try writeReport(run) }
    }

    /// The run's report.ipynb and report.html. A step that marks the run completed writes them after doing so:
    /// the report's run table shows run.json, which said "running" while the step worked.
    public static func writeReport(_ run: RunDirectory, epoch: Int? = nil) throws {
        let result = try RunReport.write(run: run.path, epoch: epoch)
        Log.info("report: \(result.htmlPath)" + (result.missing.isEmpty ? "" : " (missing: \(result.missing.joined(separator: ", ")))"))
    }

    /// A cross-validation fold compares with baselines in its parent's CrossValResults, not on its own.
    public static func comparesWithBaselines(_ run: RunDirectory) -> Bool {
        RunIDs.parentAndIndex(of: run.id) == nil
    }

    /// What `ie-evaluate --run=RUN` does for a plain run or a fold: the pipeline under the run's lock, logged to
    /// logs/<tool>.log. `markCompleted` (the step after training in a Slurm job or a make rule) marks the run
    /// completed, keeping its training's start time, and a failure fails a fold's parent as well; without it the
    /// run's status and times are left alone (an evaluation failure is recorded as ie-metrics' is).
    public static func evaluate(run: RunDirectory, settings: Settings, tool: String, markCompleted: Bool) throws {
        let config = try run.modelConfig(settings: settings)
        guard !(config.performCrossValidation && config.crossValidationSplitIndex < 0) else {
            throw IEError.usage("run \(run.id) is a cross-validation parent, expected a plain run or a fold (a parent is "
                                + "evaluated by its ensemble step: ie-crossval ensemble --run=\(run.path))", file: run.runJSON)
        }
        if markCompleted {
            try run.performFailingParent(tool: tool, keepStarted: true) {
                try evaluate(run: run, config: config, settings: settings, baselines: comparesWithBaselines(run), report: false)
            }
            try run.performEvaluation(tool: tool) { try writeReport(run) }
        } else {
            try run.performEvaluation(tool: tool) {
                try evaluate(run: run, config: config, settings: settings, baselines: comparesWithBaselines(run))
            }
        }
    }
}

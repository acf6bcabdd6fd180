import Foundation
import IECore
import IEConfig
import IEPipeline
import IERun
import IETrain

/// The steps of a cross-validation parent (SPEC §10) behind `ie-crossval`: create the fold runs, run the whole
/// cross-validation here (each fold trained and evaluated, one after the other), and the ensemble step.
/// `make -j crossval` and ie-submit's jobs run the same steps, the folds with ie-train and ie-evaluate.
public enum CrossValidationRun {
    /// The fold runs `<parent>_<k>` (created, or opened when they exist).
    public static func folds(parent: RunDirectory, config: ModelConfig, settings: Settings) throws -> [RunDirectory] {
        try CrossValidation.createChildren(parent: parent, config: config, settings: settings)
    }

    /// The last step: the ensemble of the folds, run on Val and Test, and CrossValResults/. Returns the registered
    /// ensemble's model id (also in the parent's run.json as registered_model).
    public static func ensembleStep(parent: RunDirectory, config: ModelConfig, settings: Settings, tool: String) throws -> String {
        _ = try CrossValidation.foldCount(config, run: parent)
        var result: CrossValidationEnsemble.Result?
        try parent.perform(tool: tool) {
            result = try CrossValidationEnsemble.run(parent: parent, config: config, settings: settings, report: false)
        }
        guard let result else { throw IEError.failure("the ensemble step of \(parent.id) wrote no result") }
        // After the parent is completed, so that its report's run table says so.
        try parent.performEvaluation(tool: tool) { try RunCompletion.writeReport(parent, epoch: result.epoch) }
        return result.ensembleModelID
    }

    /// A whole cross-validation here: each fold trained (resuming its autosave) and evaluated, then the ensemble
    /// step. Nil when a stop signal ended a fold's training (the fold stays queued; the same command resumes it).
    public static func runHere(parent: RunDirectory, config: ModelConfig, settings: Settings, tool: String) throws -> String? {
        var stopped = false
        try parent.perform(tool: tool, completes: false) {
            for child in try folds(parent: parent, config: config, settings: settings) {
                let childConfig = try child.modelConfig(settings: settings)
                try child.performFailingParent(tool: "ie-train", completes: false) {
                    guard try RunTraining.trainOrAdopt(run: child, config: childConfig, settings: settings, resume: true) else {
                        stopped = true
                        return
                    }
                    // What ie-evaluate does for a fold (a fold compares with baselines in CrossValResults, not alone).
                    try RunCompletion.evaluate(run: child, config: childConfig, settings: settings, baselines: false, report: false)
                    try child.markCompleted()
                    try RunCompletion.writeReport(child)
                }
                if stopped { return }
            }
        }
        if stopped { return nil }
        return try ensembleStep(parent: parent, config: config, settings: settings, tool: tool)
    }
}

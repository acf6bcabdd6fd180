import Foundation
import IECore
import IEConfig

extension RunDirectory {
    /// Recovering a cross-validation parent (`--run_recovery_id=EXP:PARENT`) continues fold k from the parent's
    /// fold k, which was trained on fold k of the parent's own partition of the subjects. Another number of folds
    /// partitions them differently, so the recovered folds would silently train on other subjects than their
    /// checkpoints saw: refused (exit 2) before anything is written. A run recovering from a plain run or from
    /// one fold (`EXP:PARENT_k`) is not concerned.
    public static func checkRecoveredFoldCount(_ config: ModelConfig, settings: Settings) throws {
        guard let recovery = config.runRecoveryId else { return }
        let source = try RunRecoveryID(parsing: recovery)
        guard source.parent == nil else { return }
        let path = settings.runsDir + "/" + source.experiment + "/" + source.runID
        // A missing source run is reported where its checkpoints are read, with the path that was looked for.
        guard FileManager.default.fileExists(atPath: RunLayout(run: path).runJSON) else { return }
        let sourceRun = try RunDirectory.open(path: path)
        let info = try sourceRun.readInfo()
        let sourceFolds: Int
        if let sourceConfig = try? sourceRun.modelConfig(settings: settings) {
            guard sourceConfig.performCrossValidation, sourceConfig.crossValidationSplitIndex < 0 else { return }
            sourceFolds = sourceConfig.numberOfCrossValidationSplits
        } else {
            // Its config no longer loads (a renamed model, say): its fold runs still tell the count.
            guard !info.children.isEmpty else { return }
            sourceFolds = info.children.count
        }
        let folds = config.numberOfCrossValidationSplits
        guard folds != sourceFolds else { return }
        throw IEError.usage("--run_recovery_id=\(recovery) is a cross-validation parent with \(sourceFolds) folds "
                            + "(number_of_cross_validation_splits=\(sourceFolds)), but this run has "
                            + "number_of_cross_validation_splits=\(folds); expected --number_of_cross_validation_splits=\(sourceFolds) "
                            + "(each fold continues from the same fold of that parent)", file: sourceRun.runJSON)
    }
}

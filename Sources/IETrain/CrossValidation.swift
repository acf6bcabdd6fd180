import Foundation
import IECore
import IEConfig
import IEData
import IERun

/// Cross-validation runs (SPEC §10): a parent run (created by ie-split with number_of_cross_validation_splits=N,
/// holding the ordinary train/val/test split) and N child runs `<parent>_<k>`, each a normal training run on
/// fold k of train+val (SPEC §3, scikit-learn KFold(N, shuffle=True, random_state=0)), test unchanged.
/// A child's config is its parent's plus `--cross_validation_split_index=k`, so its effective seed is
/// random_seed + k (ModelConfig.effectiveRandomSeed) and every later tool of the child sees the same config.
public enum CrossValidation {
    /// The number of folds of a parent's config; an error when the config is no cross-validation parent.
    public static func foldCount(_ config: ModelConfig, run: RunDirectory) throws -> Int {
        guard config.performCrossValidation else {
            throw IEError.usage("run \(run.id) has number_of_cross_validation_splits=\(config.numberOfCrossValidationSplits), "
                                + "expected a cross-validation parent (ie-split --number_of_cross_validation_splits=N, N > 1)", file: run.runJSON)
        }
        guard config.crossValidationSplitIndex < 0 else {
            throw IEError.usage("run \(run.id) is fold \(config.crossValidationSplitIndex), expected the parent run (cross_validation_split_index -1)",
                                file: run.runJSON)
        }
        return config.numberOfCrossValidationSplits
    }

    /// The folder of child k (it may not exist yet).
    public static func childPath(parent: RunDirectory, index: Int) -> String {
        URL(fileURLWithPath: parent.path).deletingLastPathComponent().appendingPathComponent(RunIDs.childRunID(parent: parent.id, index: index)).path
    }

    /// The command line recorded in child k's run.json: the parent's, with the fold appended (later flags win).
    /// Recovering a parent (`--run_recovery_id=EXP:PARENT`) recovers every child: fold k continues from fold k of
    /// that parent (EXP:PARENT_k), which holds the checkpoints.
    static func childCommandLine(parent: RunInfo, folds: Int, index: Int, recovery: String?) -> [String] {
        parent.commandLine + ["--number_of_cross_validation_splits=\(folds)", "--cross_validation_split_index=\(index)"]
            + (recovery.map { ["--run_recovery_id=\($0)"] } ?? [])
    }

    /// `EXP:PARENT_k` when the config recovers from a cross-validation parent EXP:PARENT whose fold k exists.
    static func childRecoveryID(config: ModelConfig, runsDir: String, index: Int) throws -> String? {
        guard let recovery = config.runRecoveryId else { return nil }
        let source = try RunRecoveryID(parsing: recovery)
        guard source.parent == nil else { return nil }
        let child = RunRecoveryID(experiment: source.experiment, runID: RunIDs.childRunID(parent: source.runID, index: index))
        let exists = FileManager.default.fileExists(atPath: "\(runsDir)/\(child.experiment)/\(child.runID)/run.json")
        return exists ? child.description : nil
    }

    /// What a run's training will start from, checked before a tool records its overrides or submits jobs
    /// (ie-crossval, ie-submit; SPEC §1.3): RunPipeline.checkWeightSources for a plain run or a fold (which resume
    /// from their autosave when they have one); for a cross-validation parent, for each fold that has no autosave
    /// yet, recovering a parent's fold k from that parent's fold k.
    public static func checkWeightSources(config: ModelConfig, run: RunDirectory, settings: Settings) throws {
        guard config.performCrossValidation && config.crossValidationSplitIndex < 0 else {
            return try RunPipeline.checkWeightSources(config: config, run: run, settings: settings, resume: true)
        }
        for k in 0..<config.numberOfCrossValidationSplits
        where !FileManager.default.fileExists(atPath: RunLayout(run: childPath(parent: run, index: k)).autosave) {
            var fold = config
            if let recovery = try childRecoveryID(config: config, runsDir: settings.runsDir, index: k) {
                try fold.apply(ConfigOverrides.parse(["--run_recovery_id=\(recovery)"]))
            }
            try RunPipeline.checkWeightSources(config: fold, run: run, settings: settings, resume: false)
        }
    }

    /// Creates the N children of `parent` with their fold splits (train/val/test CSVs, args.txt), or opens the
    /// ones that exist (a child is complete once its dataset.csv is written, so a half-made child is redone).
    /// The parent's recorded overrides (config_overrides.txt) are copied so a child trains what its parent asked.
    @discardableResult
    public static func createChildren(parent: RunDirectory, config: ModelConfig, settings: Settings) throws -> [RunDirectory] {
        let folds = try foldCount(config, run: parent)
        let info = try parent.readInfo()
        let dataset = try Dataset.load(path: parent.datasetCSVPath(config: config, settings: settings))
        let runsDir = URL(fileURLWithPath: parent.path).deletingLastPathComponent().deletingLastPathComponent().path
        let overrides = try? Data(contentsOf: URL(fileURLWithPath: parent.overridesFile))
        var children: [RunDirectory] = []
        for k in 0..<folds {
            let path = childPath(parent: parent, index: k)
            let recovery = try childRecoveryID(config: config, runsDir: settings.runsDir, index: k)
            let child: RunDirectory
            if FileManager.default.fileExists(atPath: RunLayout(run: path).runJSON) {
                child = try RunDirectory.open(path: path)
                if FileManager.default.fileExists(atPath: child.layout.datasetCSV) {
                    children.append(child)
                    continue
                }
            } else {
                child = try RunDirectory.create(runsDir: runsDir, experiment: parent.experiment, model: info.model,
                                                commandLine: childCommandLine(parent: info, folds: folds, index: k, recovery: recovery),
                                                parent: parent, childIndex: k)
            }
            // Recorded overrides come after the command line, so the fold's recovery id goes there too.
            var childOverrides: Data = overrides ?? Data()
            if let recovery { childOverrides += Data("--run_recovery_id=\(recovery)\n".utf8) }
            if !childOverrides.isEmpty { try AtomicFile.write(childOverrides, to: child.overridesFile) }
            let childConfig = try child.modelConfig(settings: settings)
            let split = try Splits.split(dataset, config: childConfig)
            try Splits.write(split, dataset: dataset, to: child.outputs)
            try child.writeArguments(childConfig)
            Log.info("fold \(k): \(split.train.count) train, \(split.val.count) val, \(split.test.count) test subjects -> \(child.path)")
            children.append(child)
        }
        return children
    }

    /// The existing children of a parent, in fold order (from run.json's children, falling back to the folders).
    public static func children(of parent: RunDirectory) throws -> [RunDirectory] {
        let info = try parent.readInfo()
        var byIndex: [Int: RunDirectory] = [:]
        for id in info.children {
            guard let k = RunIDs.parentAndIndex(of: id)?.index else { continue }
            let path = URL(fileURLWithPath: parent.path).deletingLastPathComponent().appendingPathComponent(id).path
            if let run = try? RunDirectory.open(path: path) { byIndex[k] = run }
        }
        return byIndex.keys.sorted().map { byIndex[$0]! }
    }
}

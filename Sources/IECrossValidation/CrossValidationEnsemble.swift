import Foundation
import IECore
import IEConfig
import IEEval
import IENet
import IEPipeline
import IEReport
import IERun
import IETrain

/// The last step of a cross-validation (SPEC §6, §10), run once every child has trained and been evaluated:
/// register the ensemble of the folds' checkpoints, run it on the parent's Val and Test into the parent's
/// epoch_NNN/, copy each fold's and the ensemble's metrics into CrossValResults/<k>/ and ENSEMBLE/, write the
/// CrossValResults statistics files (IEReport.CrossValidationResults over IEEval's statistics) and the report.
public enum CrossValidationEnsemble {
    public struct Result: Sendable {
        public var crossValResults: String
        public var ensembleModelID: String
        public var epoch: Int
    }

    /// `report: false` skips report.ipynb/html (tests that only need CrossValResults).
    @discardableResult
    public static func run(parent: RunDirectory, config: ModelConfig, settings: Settings, report: Bool = true) throws -> Result {
        let folds = try CrossValidation.foldCount(config, run: parent)
        let children = try CrossValidation.children(of: parent)
        guard children.count == folds else {
            throw IEError.usage("run \(parent.id) has \(children.count) of its \(folds) fold runs, expected all (create them with ie-crossval folds --run=PARENT)",
                                file: parent.runJSON)
        }
        let epoch = config.epochsToTest.max() ?? config.numEpochs
        var checkpoints: [String] = []
        for child in children {
            let checkpoint = RunPipeline.checkpointPath(run: child, epoch: epoch)
            guard FileManager.default.fileExists(atPath: checkpoint) else {
                throw IEError.usage("fold run \(child.id) has no epoch-\(epoch) checkpoint, expected every fold trained first", file: checkpoint)
            }
            checkpoints.append(checkpoint)
        }
        for child in children {
            let childConfig = try child.modelConfig(settings: settings)
            for mode in try RunEvaluation.modes(run: child, config: childConfig)
            where !FileManager.default.fileExists(atPath: child.layout.metrics(epoch: epoch, mode: mode)) {
                throw IEError.usage("fold run \(child.id) has no \(mode) metrics for epoch \(epoch), expected ie-evaluate --run=FOLD first",
                                    file: child.outputs)
            }
        }

        if config.category.isScalar {
            try ScalarCrossValidation.write(parent: parent, children: children, config: config, settings: settings,
                                            checkpoints: checkpoints, epoch: epoch, report: report)
            return try register(parent: parent, children: children, config: config, settings: settings,
                                checkpoints: checkpoints, epoch: epoch)
        }

        // The ensemble: every fold's model, averaged posteriors (SPEC §6).
        let members = try checkpoints.map { try ModelLoading.load(checkpointPath: $0) }
        try RunCompletion.evaluate(run: parent, config: config, settings: settings, models: members, baselines: false,
                                   epochs: [epoch], report: false)

        // CrossValResults/<k>/epoch_NNN/<Mode>/ and ENSEMBLE/: the metrics files only (not the images).
        let crossVal = parent.layout.crossValResults
        let epochName = RunLayout.epochFolderName(epoch)
        let subjectRows = try imageChannelRows(datasetPath: parent.layout.datasetCSV, channel: config.imageChannels.first)
        for (k, child) in children.enumerated() {
            try copyResults(from: child.outputs, to: "\(crossVal)/\(k)", epochName: epochName, dataset: subjectRows)
        }
        try copyResults(from: parent.outputs, to: "\(crossVal)/ENSEMBLE", epochName: epochName, dataset: subjectRows)
        try CrossValidationResults.write(crossValResults: crossVal, epoch: epoch)
        do {
            try writeBaselineComparisons(parent: parent, config: config, settings: settings, epoch: epoch)
        } catch {
            // The folds' and ensemble's results stand on their own; a baseline that cannot be compared is reported.
            Log.warning("no CrossValResults/BaselineComparisons: \((error as? IEError)?.description ?? "\(error)")")
        }
        if report { _ = try RunReport.write(run: parent.path, epoch: epoch) }
        return try register(parent: parent, children: children, config: config, settings: settings,
                            checkpoints: checkpoints, epoch: epoch)
    }

    /// Registered last, so that a failed step leaves no ensemble in the registry (each fold registered itself).
    static func register(parent: RunDirectory, children: [RunDirectory], config: ModelConfig, settings: Settings,
                         checkpoints: [String], epoch: Int) throws -> Result {
        let registry = ModelRegistry(settings: settings)
        if let existing = registry.registered(try parent.readInfo().registeredModel, holding: checkpoints) {
            Log.info("the \(children.count)-fold ensemble is already registered as \(existing.id)")
            return Result(crossValResults: parent.layout.crossValResults, ensembleModelID: existing.id, epoch: epoch)
        }
        let registered = try registry.register(name: config.name, config: config, checkpoints: checkpoints,
                                               sourceRunIds: children.map { $0.recoveryID.description })
        try parent.update { $0.registeredModel = registered.id }
        Log.info("registered the \(children.count)-fold ensemble as \(registered.id) in \(registered.folder)")
        return Result(crossValResults: parent.layout.crossValResults, ensembleModelID: registered.id, epoch: epoch)
    }

    /// dataset.csv reduced to the rows of the first image channel: one row per subject, whose seriesId and
    /// institutionId are the scan's (the statistics join one seriesId per subject; mask and label rows may carry
    /// their own series ids).
    static func imageChannelRows(datasetPath: String, channel: String?) throws -> String {
        var table = try CSVTable.read(path: datasetPath)
        if let channel, let column = table.columnIndex("channel") {
            table.rows = table.rows.filter { $0.count > column && $0[column] == channel }
        }
        return table.serialized()
    }

    /// Copies `<outputs>/<epochName>/{Val,Test}/{metrics.csv,metrics_aggregates.csv}` and writes dataset.csv.
    static func copyResults(from outputs: String, to folder: String, epochName: String, dataset: String) throws {
        for mode in ["Val", "Test"] {
            for file in [RunLayout.metricsFileName, RunLayout.aggregatesFileName] {
                let source = "\(outputs)/\(epochName)/\(mode)/\(file)"
                guard let data = FileManager.default.contents(atPath: source) else { continue }
                try AtomicFile.write(data, to: "\(folder)/\(epochName)/\(mode)/\(file)")
            }
        }
        try AtomicFile.write(dataset, to: RunLayout(outputs: folder).datasetCSV)
    }

    /// CrossValResults/BaselineComparisons/ for the config's comparison_runs: the ensemble's Test Dice against each
    /// baseline run (Wilcoxon, MetricsAcrossAllRuns.csv, scatterplots), as IEReport's baseline comparison writes it.
    static func writeBaselineComparisons(parent: RunDirectory, config: ModelConfig, settings: Settings, epoch: Int) throws {
        let comparisons = try config.comparisonRuns()
        guard !comparisons.isEmpty else { return }
        // The folder plays the ensemble's outputs folder: epoch_NNN/Test/ gets the comparison files, <name>/ each baseline.
        let ensembleOutputs = parent.layout.crossValResults + "/BaselineComparisons"
        try copyResults(from: parent.outputs, to: ensembleOutputs, epochName: RunLayout.epochFolderName(epoch),
                        dataset: imageChannelRows(datasetPath: parent.layout.datasetCSV, channel: config.imageChannels.first))
        let baselines = try comparisons.map { comparison -> BaselineComparison.Baseline in
            let run = try RunDirectory.open(runsDir: settings.runsDir, recoveryID: RunRecoveryID(parsing: comparison.runRecoveryId))
            return .init(name: comparison.name, run: run.path)
        }
        try BaselineComparison.run(outputs: ensembleOutputs, epoch: epoch, baselines: baselines)
    }
}

import Foundation
import IECore
import IEConfig
import IEData
import IEEval
import IERun

/// The metrics step of a run (SPEC §7, §9): for one epoch and mode, `metrics.csv`, `metrics_aggregates.csv`,
/// `<Mode>_outliers.txt`, `metrics_boxplot.png` and `thumbnails/` in `outputs/epoch_NNN/<Mode>/`, from
/// ie-infer's per-subject masks and the dataset's ground truth; on Test, the comparison with comparison_runs.
public enum RunEvaluation {
    /// The modes the config asks for (inference_on_train_set, inference_on_val_set, inference_on_test_set) whose
    /// split is not empty, in InnerEye's order (Train, Val, Test).
    public static func modes(run: RunDirectory, config: ModelConfig) throws -> [String] {
        var modes: [String] = []
        if config.inferenceOnTrainSet, try !run.splitSubjects("train").isEmpty { modes.append("Train") }
        if config.inferenceOnValSet, try !run.splitSubjects("val").isEmpty { modes.append("Val") }
        if config.inferenceOnTestSet, try !run.splitSubjects("test").isEmpty { modes.append("Test") }
        return modes
    }

    /// `metrics_boxplot.png`: Dice (top) and HausdorffDistance_mm (bottom) per structure, one panel each
    /// (non-finite distances, where one mask is empty, are left out).
    public static func boxPlot(_ records: [MetricsRecord], structures: [String], mode: String, epoch: Int) throws -> Data {
        func values(_ keyPath: KeyPath<MetricsRecord, Double>) -> (String, String) -> [Double] {
            { structure, _ in records.filter { $0.structure == structure }.map { $0[keyPath: keyPath] } }
        }
        return try Plots.boxPlots([
            .init(categories: structures, series: [mode], values: values(\.dice),
                  title: "Dice per structure, \(mode), epoch \(epoch)", yLabel: "Dice", yRange: (0, 1)),
            .init(categories: structures, series: [mode], values: values(\.hausdorffDistance),
                  title: "HausdorffDistance_mm per structure, \(mode), epoch \(epoch)", yLabel: "HausdorffDistance_mm"),
        ])
    }

    /// `baselines: false` skips the comparison_runs step (cross-validation folds and parents compare in
    /// CrossValResults/BaselineComparisons instead).
    public static func evaluate(run: RunDirectory, config: ModelConfig, settings: Settings, epoch: Int, mode: String,
                                extras: [ExtraMetric] = [], thumbnails: Bool = true, baselines: Bool = true,
                                allowMissing: Bool = false, threads: Int = 1) throws {
        let layout = run.layout
        let folder = layout.modeFolder(epoch: epoch, mode: mode)
        guard FileManager.default.fileExists(atPath: folder) else {
            throw IEError.usage("no inference results, expected ie-infer --run=\(run.path) --epoch=\(epoch) --mode=\(mode) first", file: folder)
        }
        let dataset = try Dataset.load(path: run.datasetCSVPath(config: config, settings: settings))
        let subjects = try run.splitSubjects(mode.lowercased())
        let missing = MetricsEvaluation.missingSubjects(in: folder, subjects: subjects)
        if let first = missing.first {
            let what = "\(missing.count) of the \(subjects.count) \(mode) subjects have no segmentation (first: \(first))"
            guard allowMissing else {
                throw IEError.badInput("\(what), expected ie-infer's output for every subject of the split (rerun ie-infer, "
                                       + "or pass --allow_missing to score the others and record the missing ones)", file: folder)
            }
            Log.warning("\(what): recorded in metrics.csv as rows with empty values (--allow_missing)")
        }
        let missingRows = missing.flatMap { subject in
            config.groundTruthIds.map { MetricsRow(patient: subject, structure: $0, metrics: .allNaN(extras: extras)) }
        }
        let imageChannel = config.imageChannels.first
        let cases = try MetricsEvaluation.cases(
            predictionFolder: folder, subjects: subjects, structures: config.groundTruthIds,
            groundTruth: { subject, structure in dataset.row(subject: subject, channel: structure).map(dataset.absolutePath) },
            image: { subject in imageChannel.flatMap { dataset.row(subject: subject, channel: $0) }.map(dataset.absolutePath) })
        let rows = try MetricsEvaluation.run(cases: cases, outputFolder: folder, extras: extras,
                                             writePNG: thumbnails ? MetricsEvaluation.writeThumbnail : nil,
                                             missingRows: missingRows, threads: threads)
        let file = try MetricsFile.read(path: layout.metrics(epoch: epoch, mode: mode))
        try AtomicFile.write(MetricsAggregates.csv(file.records, totalPatients: config.allowIncompleteLabels),
                             to: layout.aggregates(epoch: epoch, mode: mode))
        try AtomicFile.write(OutlierReport.text(file.records, hasHausdorffDistance: file.hasHausdorffDistance,
                                                hasSeriesAndInstitution: file.hasSeriesId && file.hasInstitutionId),
                             to: layout.outliers(epoch: epoch, mode: mode))
        if Gnuplot.executable() != nil {
            try AtomicFile.write(try boxPlot(file.records, structures: config.groundTruthIds, mode: mode, epoch: epoch),
                                 to: layout.boxPlot(epoch: epoch, mode: mode))
        } else {
            Log.warning("gnuplot not found: metrics_boxplot.png not drawn (apt-get install gnuplot-nox)")
        }
        Log.info("ie-metrics: \(mode) epoch \(epoch): \(rows.count) rows in \(layout.metrics(epoch: epoch, mode: mode))")
        let comparisons = try config.comparisonRuns()
        if baselines && mode == "Test" && !comparisons.isEmpty {
            let baselines = try comparisons.map { entry -> BaselineComparison.Baseline in
                let source = try RunDirectory.open(runsDir: settings.runsDir, recoveryID: RunRecoveryID(parsing: entry.runRecoveryId))
                return BaselineComparison.Baseline(name: entry.name, run: source.path)
            }
            let result = try BaselineComparison.run(outputs: run.outputs, epoch: epoch, baselines: baselines,
                                                    drawPlots: Gnuplot.executable() != nil)
            Log.info("ie-metrics: compared with \(comparisons.map(\.name).joined(separator: ", ")): \(result.wilcoxonPath)")
        }
    }
}

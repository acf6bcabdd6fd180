import Foundation
import IECore
import IEEval

/// SPEC §9 comparison_runs: compares this run's Test Dice with baseline runs, as InnerEye's
/// compare_scores_against_baselines did.
public enum BaselineComparison {
    public static let wilcoxonFileName = "BaselineComparisonWilcoxonSignedRankTestResults.txt"
    public static let metricsFileName = "MetricsAcrossAllRuns.csv"
    public static let currentName = "CURRENT"

    public struct Baseline: Sendable {
        /// Short name from comparison_runs (`name: run_recovery_id`).
        public var name: String
        /// The baseline's run folder (or its outputs folder).
        public var run: String
        /// The baseline epoch to use; nil = its best validation epoch (or highest epoch folder).
        public var epoch: Int?

        public init(name: String, run: String, epoch: Int? = nil) {
            self.name = name
            self.run = run
            self.epoch = epoch
        }
    }

    public struct Result: Sendable {
        public var wilcoxonPath: String
        public var metricsAcrossAllRunsPath: String
        public var scatterplotPaths: [String]
        /// Where each baseline's metrics were copied (outputs/<name>/epoch_NNN/Test/metrics.csv).
        public var copiedMetricsPaths: [String]
    }

    /// Writes into `outputs/epoch_NNN/Test/`: BaselineComparisonWilcoxonSignedRankTestResults.txt,
    /// MetricsAcrossAllRuns.csv (with pandas' index column, as InnerEye) and scatterplots/<A>_vs_<B>.png; and
    /// copies each baseline's Test metrics.csv (and dataset.csv) under outputs/<name>/epoch_MMM/.
    @discardableResult
    public static func run(outputs: String, epoch: Int, baselines: [Baseline], drawPlots: Bool = true) throws -> Result {
        let layout = RunLayout(outputs: outputs)
        let testFolder = layout.modeFolder(epoch: epoch, mode: "Test")
        let currentMetricsPath = layout.metrics(epoch: epoch, mode: "Test")
        guard FileManager.default.fileExists(atPath: currentMetricsPath) else {
            throw IEError.badInput("missing, expected this run's Test metrics before comparing with baselines",
                                   file: currentMetricsPath)
        }
        func dataset(_ folder: String) throws -> CSVTable? {
            let path = RunLayout(outputs: folder).datasetCSV
            return FileManager.default.fileExists(atPath: path) ? try CSVTable.read(path: path) : nil
        }
        var inputs = [MetricsAcrossRuns.Input(split: currentName, mode: "Test",
                                              metrics: try MetricsFile.read(path: currentMetricsPath),
                                              dataset: try dataset(outputs))]
        var copied: [String] = []
        for baseline in baselines {
            if baseline.name.isEmpty || baseline.name.contains("/") || baseline.name == currentName {
                throw IEError.usage("comparison run name '\(baseline.name)' is not usable, expected a short name "
                                    + "without '/' other than \(currentName)")
            }
            let baselineLayout = RunLayout.locate(baseline.run)
            let baselineOutputs = baselineLayout.outputs
            guard let baselineEpoch = baseline.epoch ?? EpochChoice.bestEpoch(baselineOutputs) else {
                throw IEError.badInput("no epoch_NNN folder, expected a baseline run with Test results", file: baselineOutputs)
            }
            let source = baselineLayout.metrics(epoch: baselineEpoch, mode: "Test")
            guard let metricsData = FileManager.default.contents(atPath: source) else {
                throw IEError.badInput("missing, expected the baseline's Test metrics", file: source)
            }
            let copy = RunLayout(outputs: "\(outputs)/\(baseline.name)")
            let target = copy.metrics(epoch: baselineEpoch, mode: "Test")
            try AtomicFile.write(metricsData, to: target)
            copied.append(target)
            let baselineDataset = try dataset(baselineOutputs)
            if let data = FileManager.default.contents(atPath: baselineLayout.datasetCSV) {
                try AtomicFile.write(data, to: copy.datasetCSV)
            }
            inputs.append(MetricsAcrossRuns.Input(split: baseline.name, mode: "Test",
                                                  metrics: try MetricsFile.parse(table: CSVTable.parse(metricsData, source: source)),
                                                  dataset: baselineDataset))
        }
        let csv = try MetricsAcrossRuns.csv(inputs, withIndex: true)
        let metricsPath = "\(testFolder)/\(metricsFileName)"
        try AtomicFile.write(Data(csv.utf8), to: metricsPath)

        let all = try MetricsFile.parse(text: csv, source: metricsPath)
        var scores = ScoresByRun()
        scores.add(all, defaultRun: currentName)
        let results = WilcoxonComparison.run(scores, against: [currentName])
        let wilcoxonPath = "\(testFolder)/\(wilcoxonFileName)"
        try AtomicFile.write(Data(WilcoxonComparison.text(results).utf8), to: wilcoxonPath)

        var scatterPaths: [String] = []
        if drawPlots {
            for (x, y) in scatterPairs(runs: Array(scores.runs.keys), against: [currentName]) {
                let png = try Plots.scatterPlot(x: scores.runs[x]!, y: scores.runs[y]!, xName: x, yName: y)
                let name = "\(x.replacingOccurrences(of: ":", with: "_"))_vs_\(y.replacingOccurrences(of: ":", with: "_")).png"
                let path = "\(testFolder)/scatterplots/\(name)"
                try AtomicFile.write(png, to: path)
                scatterPaths.append(path)
            }
        }
        return Result(wilcoxonPath: wilcoxonPath, metricsAcrossAllRunsPath: metricsPath,
                      scatterplotPaths: scatterPaths, copiedMetricsPaths: copied)
    }

    /// InnerEye's create_scatterplots pairing: sorted runs; a pair with neither run in `against` is skipped;
    /// the `against` run goes on the y axis.
    public static func scatterPairs(runs: [String], against: [String]?) -> [(x: String, y: String)] {
        let sorted = runs.sorted()
        var pairs: [(String, String)] = []
        for (i, run1) in sorted.enumerated() {
            for run2 in sorted[(i + 1)...] {
                if let against, !against.isEmpty, !against.contains(run2) {
                    if !against.contains(run1) { continue }
                    pairs.append((run2, run1))
                } else {
                    pairs.append((run1, run2))
                }
            }
        }
        return pairs
    }
}

import Foundation
import IECore
import IEEval

/// SPEC §10's statistics files of a cross-validation parent, written into `CrossValResults/` from its
/// `0/ ... N-1/ ENSEMBLE/` folders, as InnerEye's plot_cross_validation did for a run without comparison runs.
public enum CrossValidationResults {
    public struct Result: Sendable {
        public var writtenFiles: [String]
    }

    /// Split folders of CrossValResults: integer names in numeric order, then ENSEMBLE.
    public static func splitFolders(_ crossValResults: String) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: crossValResults)) ?? []
        return names.filter { name in
            var isDirectory: ObjCBool = false
            return (Int(name) != nil || name == "ENSEMBLE")
                && FileManager.default.fileExists(atPath: "\(crossValResults)/\(name)", isDirectory: &isDirectory)
                && isDirectory.boolValue
        }.sorted { (Int($0) ?? Int.max, $0) < (Int($1) ?? Int.max, $1) }
    }

    /// Writes MetricsAcrossAllRuns.csv, ResultsByModeAndStructure.csv, ResultsByMode.csv, `<metric>_<Mode>_splits*.png`, `<Mode>_outliers.txt`,
    /// CrossValidationWilcoxonSignedRankTestResults.txt (all splits against each other on Test),
    /// CrossValidationMannWhitneyTestResults.txt (institutions, Test) and scatterplots/<A>_vs_<B>.png.
    /// `dataset` is the parent's dataset.csv (used when a split folder has none).
    @discardableResult
    public static func write(crossValResults: String, epoch: Int? = nil, dataset: String? = nil,
                             outlierRange: Double = 3, drawPlots: Bool = true) throws -> Result {
        let splits = splitFolders(crossValResults)
        guard !splits.isEmpty else {
            throw IEError.badInput("no split folders (0, 1, ..., ENSEMBLE), expected a CrossValResults folder",
                                   file: crossValResults)
        }
        var inputs: [MetricsAcrossRuns.Input] = []
        for split in splits {
            let folder = "\(crossValResults)/\(split)"
            let own = RunLayout.locate(folder).datasetCSV
            let datasetPath = FileManager.default.fileExists(atPath: own) ? own : dataset
            inputs += try MetricsAcrossRuns.inputs(runs: [(split, folder)], epoch: epoch, datasetOverride: datasetPath)
        }
        // InnerEye concatenated all Test frames, then all Val frames.
        inputs.sort { ($0.mode == "Test" ? 0 : 1) < ($1.mode == "Test" ? 0 : 1) }
        var written: [String] = []
        func put(_ data: Data, _ name: String) throws {
            let path = "\(crossValResults)/\(name)"
            try AtomicFile.write(data, to: path)
            written.append(path)
        }
        let csv = try MetricsAcrossRuns.csv(inputs, withIndex: false)
        try put(Data(csv.utf8), "MetricsAcrossAllRuns.csv")
        let all = try MetricsFile.parse(text: csv, source: "\(crossValResults)/MetricsAcrossAllRuns.csv")
        try put(Data(ResultsBreakdown.csv(all.records, byStructure: true).utf8), "ResultsByModeAndStructure.csv")
        try put(Data(ResultsBreakdown.csv(all.records, byStructure: false).utf8), "ResultsByMode.csv")

        if drawPlots {
            for plot in try Plots.crossValidationBoxPlots(all.records, epochLabel: epoch.map(String.init) ?? "") {
                try put(plot.png, plot.name)
            }
        }
        for mode in ["Test", "Val"] {
            let rows = all.records.filter { $0.mode == mode }
            if rows.isEmpty { continue }
            try put(Data(OutlierReport.text(rows, hasHausdorffDistance: all.hasHausdorffDistance,
                                            hasSeriesAndInstitution: true, range: outlierRange).utf8),
                    "\(mode)_outliers.txt")
        }
        var scores = ScoresByRun()
        scores.add(all, defaultRun: "", subset: "test")
        let runs = Array(scores.runs.keys)
        let wilcoxon = WilcoxonComparison.run(scores, against: runs)
        try put(Data(WilcoxonComparison.text(wilcoxon).utf8), "CrossValidationWilcoxonSignedRankTestResults.txt")
        let mannWhitney = MannWhitneyComparison.run(all, by: { $0.institutionId }, mode: "test")
        try put(Data(MannWhitneyComparison.text(mannWhitney).utf8), "CrossValidationMannWhitneyTestResults.txt")
        if drawPlots {
            for (x, y) in BaselineComparison.scatterPairs(runs: runs, against: runs) {
                let png = try Plots.scatterPlot(x: scores.runs[x]!, y: scores.runs[y]!, xName: x, yName: y)
                try put(png, "scatterplots/\(x)_vs_\(y).png")
            }
        }
        return Result(writtenFiles: written)
    }
}

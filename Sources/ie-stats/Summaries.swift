import ArgumentParser
import Foundation
import IECommand
import IECore
import IEEval

struct Aggregate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "metrics_aggregates.csv (per structure count, mean, std, min, max) from metrics.csv.",
        discussion: """
        Examples:
          ie-stats aggregate epoch_010/Test/metrics.csv
          ie-metrics pair --prediction=p.nii.gz --ground_truth=g.nii.gz \\
              | ie-stats aggregate -o metrics_aggregates.csv
        """)

    @Argument(help: "metrics.csv files ('-' = stdin, the default); rows of all files are pooled.")
    var inputs: [String] = ["-"]
    @OptionGroup var out: OutputOption

    func run() throws {
        var records: [MetricsRecord] = []
        for path in inputs { records += try MetricsFile.read(path: path).records }
        try out.write(MetricsAggregates.csv(records))
    }
}

struct AcrossRuns: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "across-runs",
        abstract: "MetricsAcrossAllRuns.csv from the Test/Val metrics of several runs.",
        discussion: """
        Each RUN is [NAME=]PATH: a run folder (with outputs/), an outputs folder or a
        CrossValResults/<k> folder. NAME (default: the folder name) fills the split
        column. The epoch is --epoch, else each run's best validation epoch. seriesId
        and institutionId come from the run's dataset.csv.

        Examples:
          ie-stats across-runs CrossValResults/0 CrossValResults/1 \\
              CrossValResults/ENSEMBLE
          ie-stats across-runs CURRENT=runs/exp/run_a BASE=runs/exp/run_b --index \\
              -o MetricsAcrossAllRuns.csv
        """)

    @Argument(help: "Runs as [NAME=]PATH.") var runs: [String]
    @Option(help: "Epoch folder to read (default: best validation epoch of each run).", transform: epochNumber) var epoch: Int?
    @Option(help: "dataset.csv to join instead of each run's own.") var dataset: String?
    @Flag(help: "Write pandas' unnamed index column first (as InnerEye's baseline comparison file).")
    var index = false
    @OptionGroup var out: OutputOption

    func validate() throws {
        if runs.isEmpty { throw ValidationError("give at least one RUN") }
    }

    func run() throws {
        let parsed = runs.map { arg -> (name: String, path: String) in
            if let eq = arg.firstIndex(of: "="), !arg[..<eq].contains("/") {
                return (String(arg[..<eq]), String(arg[arg.index(after: eq)...]))
            }
            let trimmed = arg.hasSuffix("/") ? String(arg.dropLast()) : arg
            return ((trimmed as NSString).lastPathComponent, arg)
        }
        let inputs = try MetricsAcrossRuns.inputs(runs: parsed, epoch: epoch, datasetOverride: dataset)
        try out.write(MetricsAcrossRuns.csv(inputs, withIndex: index))
    }
}

struct Outliers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "<Mode>_outliers.txt: subjects with Dice < mean - R sd or Hausdorff > mean + R sd.",
        discussion: """
        The mode comes from the file's mode (or data_split) column, else --mode. With
        several modes,
        --output-dir writes one <Mode>_outliers.txt each.

        Examples:
          ie-stats outliers MetricsAcrossAllRuns.csv --output-dir CrossValResults
          ie-stats outliers epoch_010/Test/metrics.csv --mode=Test --range=2
        """)

    @Argument(help: "Metrics CSV files ('-' = stdin).") var inputs: [String] = ["-"]
    @Option(help: "Number of standard deviations from the mean (InnerEye's outlier_range).") var range: Double = 3
    @Option(help: "Mode of rows without a mode column: Train, Val or Test.") var mode: Mode = .test
    @Option(help: "Write <Mode>_outliers.txt files into this folder.") var outputDir: String?
    @OptionGroup var out: OutputOption

    func validate() throws {
        if !(range >= 0 && range.isFinite) { throw ValidationError("--range=\(range), expected a finite number of standard deviations >= 0") }
    }

    func run() throws {
        var byMode: [(String, [MetricsRecord])] = []
        var hasHausdorff = true, hasSeriesAndInstitution = true
        for path in inputs {
            let file = try MetricsFile.read(path: path)
            hasHausdorff = hasHausdorff && file.hasHausdorffDistance
            hasSeriesAndInstitution = hasSeriesAndInstitution && file.hasSeriesId && file.hasInstitutionId
            for r in file.records {
                let m = r.mode ?? mode.rawValue
                if let i = byMode.firstIndex(where: { $0.0 == m }) { byMode[i].1.append(r) } else { byMode.append((m, [r])) }
            }
        }
        if let outputDir {
            for (m, records) in byMode {
                try AtomicFile.write(Data(OutlierReport.text(records, hasHausdorffDistance: hasHausdorff,
                                                             hasSeriesAndInstitution: hasSeriesAndInstitution,
                                                             range: range).utf8),
                                     to: (outputDir as NSString).appendingPathComponent(RunLayout.outliersFileName(mode: m)))
            }
            return
        }
        guard byMode.count <= 1 else {
            throw IEError.usage("the input holds several modes (\(byMode.map { $0.0 }.joined(separator: ", "))), "
                                + "expected --output-dir to write one <Mode>_outliers.txt each")
        }
        try out.write(OutlierReport.text(byMode.first?.1 ?? [], hasHausdorffDistance: hasHausdorff,
                                         hasSeriesAndInstitution: hasSeriesAndInstitution, range: range))
    }
}

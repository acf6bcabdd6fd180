import ArgumentParser
import Foundation
import IECore
import IEEval

/// Where a subcommand's text goes: stdout, or a file written atomically.
struct OutputOption: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: "Output file (default: stdout; '-' is stdout).")
    var output: String = "-"

    func write(_ text: String) throws {
        if output == "-" {
            try StandardStream.write(text)
        } else {
            try AtomicFile.write(Data(text.utf8), to: output)
        }
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, csv
}

struct Stats: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-stats",
        abstract: "Statistics on per-subject segmentation metrics (SPEC §8).",
        discussion: """
        Reads metrics.csv / MetricsAcrossAllRuns.csv files ('-' = stdin) and writes
        text or CSV to stdout or -o.

        Examples:
          ie-metrics ... -o - | ie-stats aggregate
          ie-stats aggregate outputs/epoch_100/Test/metrics.csv -o metrics_aggregates.csv
          ie-stats across-runs CrossValResults/0 CrossValResults/1 CrossValResults/ENSEMBLE -o MetricsAcrossAllRuns.csv
          ie-stats outliers MetricsAcrossAllRuns.csv --output-dir CrossValResults
          ie-stats wilcoxon baseline/metrics.csv new/metrics.csv --names=BASE,NEW
          ie-stats wilcoxon MetricsAcrossAllRuns.csv --against=ENSEMBLE
          ie-stats mannwhitney MetricsAcrossAllRuns.csv --by=institutionId
        """,
        subcommands: [Aggregate.self, AcrossRuns.self, Outliers.self, Wilcoxon.self, MannWhitney.self,
                      Breakdown.self])
}

struct Aggregate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "metrics_aggregates.csv (per structure count, mean, std, min, max) from metrics.csv.",
        discussion: """
        Examples:
          ie-stats aggregate epoch_010/Test/metrics.csv
          ie-metrics --model=Prostate ... -o - | ie-stats aggregate -o metrics_aggregates.csv
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
        Each RUN is [NAME=]PATH: a run folder (with outputs/), an outputs folder or a CrossValResults/<k>
        folder. NAME (default: the folder name) fills the split column. The epoch is --epoch, else each run's
        best validation epoch. seriesId and institutionId come from the run's dataset.csv.

        Examples:
          ie-stats across-runs CrossValResults/0 CrossValResults/1 CrossValResults/ENSEMBLE
          ie-stats across-runs CURRENT=runs/exp/run_a BASE=runs/exp/run_b --index -o MetricsAcrossAllRuns.csv
        """)

    @Argument(help: "Runs as [NAME=]PATH.") var runs: [String]
    @Option(help: "Epoch folder to read (default: best validation epoch of each run).") var epoch: Int?
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
        The mode comes from the file's mode (or data_split) column, else --mode. With several modes,
        --output-dir writes one <Mode>_outliers.txt each.

        Examples:
          ie-stats outliers MetricsAcrossAllRuns.csv --output-dir CrossValResults
          ie-stats outliers epoch_010/Test/metrics.csv --mode=Test --range=2
        """)

    @Argument(help: "Metrics CSV files ('-' = stdin).") var inputs: [String] = ["-"]
    @Option(help: "Number of standard deviations from the mean (InnerEye's outlier_range).") var range: Double = 3
    @Option(help: "Mode of rows without a mode column.") var mode: String = "Test"
    @Option(help: "Write <Mode>_outliers.txt files into this folder.") var outputDir: String?
    @OptionGroup var out: OutputOption

    func validate() throws {
        if range < 0 { throw ValidationError("--range must be >= 0") }
    }

    func run() throws {
        var byMode: [(String, [MetricsRecord])] = []
        var hasHausdorff = true, hasSeriesAndInstitution = true
        for path in inputs {
            let file = try MetricsFile.read(path: path)
            hasHausdorff = hasHausdorff && file.hasHausdorffDistance
            hasSeriesAndInstitution = hasSeriesAndInstitution && file.hasSeriesId && file.hasInstitutionId
            for r in file.records {
                let m = r.mode ?? mode
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

struct Wilcoxon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Paired Wilcoxon signed-rank tests of runs per structure (Dice).",
        discussion: """
        Inputs are metrics CSVs. A file with a split column contributes one run per split; any other file is
        one run, named by --names or its path. Pairs: all against all, or each run against --against.
        Subjects pair on seriesId when present, else Patient.
        --method=innereye (default): InnerEye's test, z deflated by 1.25 (2 for skin/external), one-sided p;
        WORSE if p < threshold/2, BETTER if p > 1 - threshold/2.
        --method=exact|approx: two-sided test as scipy.stats.wilcoxon; verdict when p < threshold.

        Examples:
          ie-stats wilcoxon old/metrics.csv new/metrics.csv --names=OLD,NEW
          ie-stats wilcoxon MetricsAcrossAllRuns.csv --against=ENSEMBLE --subset=test
          ie-stats wilcoxon a.csv b.csv --method=exact --adjust=holm --format=csv
        CSV columns: Structure,N,Mean1,Mean2,N1>2,N2>1,Median1,Median2,W,z,p,verdict (with Run1,Run2 first
        when there are several pairs).
        """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case innereye, exact, approx }
    enum Adjust: String, ExpressibleByArgument, CaseIterable { case none, holm }

    @Argument(help: "Metrics CSV files ('-' = stdin).") var inputs: [String]
    @Option(help: "Comma-separated run names for files without a split column.") var names: String?
    @Option(help: "Comma-separated runs to compare every other run against.") var against: String?
    @Option(help: "Rows of this mode only (test, val, train, all).") var subset: String = "test"
    @Option(help: "Comma-separated structures to leave out.") var exclude: String = ""
    @Option(help: "innereye, exact or approx.") var method: Method = .innereye
    @Option(help: "P-value adjustment over structures (exact/approx): none or holm.") var adjust: Adjust = .none
    @Option(help: "Significance threshold (two-tailed).") var threshold: Double = 0.05
    @Flag(help: "InnerEye method: no deflation of z.") var raw = false
    @Option(help: "text (InnerEye's layout) or csv.") var format: OutputFormat = .text
    @OptionGroup var out: OutputOption

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one metrics CSV") }
        if adjust == .holm && method == .innereye {
            throw ValidationError("--adjust=holm needs --method=exact or --method=approx")
        }
    }

    func run() throws {
        let runNames = names.map { $0.split(separator: ",").map(String.init) } ?? []
        var scores = ScoresByRun()
        var plainIndex = 0
        for path in inputs {
            let file = try MetricsFile.read(path: path)
            var name = path
            if !file.hasSplit {
                if plainIndex < runNames.count { name = runNames[plainIndex] }
                plainIndex += 1
            }
            scores.add(file, defaultRun: name, subset: file.hasMode ? subset : "all",
                       excluding: Set(exclude.split(separator: ",").map(String.init)))
        }
        let results = WilcoxonComparison.run(
            scores, against: against.map { $0.split(separator: ",").map(String.init) },
            method: WilcoxonComparison.Method(rawValue: method.rawValue)!, raw: raw, threshold: threshold,
            holm: adjust == .holm)
        switch format {
        case .text:
            try out.write(WilcoxonComparison.text(results))
        case .csv:
            try out.write(WilcoxonComparison.csv(results))
        }
    }
}

struct MannWhitney: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mannwhitney",
        abstract: "Unpaired Mann-Whitney U tests between groups (institutions) per structure and split.",
        discussion: """
        Groups with at least 10 values for a structure are compared pairwise; rows are sorted by p.
        --method=asymptotic (default, scipy with tie and continuity correction) or exact (small samples
        without ties).

        Examples:
          ie-stats mannwhitney MetricsAcrossAllRuns.csv --by=institutionId
          ie-stats mannwhitney MetricsAcrossAllRuns.csv --mode=val --format=csv
        """)

    @Argument(help: "Metrics CSV files ('-' = stdin).") var inputs: [String] = ["-"]
    @Option(help: "Grouping column: institutionId, seriesId or split.") var by: String = "institutionId"
    @Option(help: "Rows of this mode only.") var mode: String = "test"
    @Option(help: "asymptotic or exact.") var method: MannWhitneyU.Method = .asymptotic
    @Option(help: "text (InnerEye's layout) or csv.") var format: OutputFormat = .text
    @OptionGroup var out: OutputOption

    func validate() throws {
        if !["institutionId", "seriesId", "split"].contains(by) {
            throw ValidationError("--by must be institutionId, seriesId or split")
        }
    }

    func run() throws {
        var results: [MannWhitneySplitResult] = []
        for path in inputs {
            let file = try MetricsFile.read(path: path)
            if by == "institutionId" && !file.hasInstitutionId {
                throw IEError.badInput("no institutionId column, expected MetricsAcrossAllRuns.csv", file: path, line: 1)
            }
            let key: (MetricsRecord) -> String? = by == "institutionId" ? { $0.institutionId }
                : by == "seriesId" ? { $0.seriesId } : { $0.split }
            results += MannWhitneyComparison.run(file, by: key, mode: mode, method: method)
        }
        switch format {
        case .text: try out.write(MannWhitneyComparison.text(results))
        case .csv: try out.write(MannWhitneyComparison.csv(results))
        }
    }
}

extension MannWhitneyU.Method: ExpressibleByArgument {}

struct Breakdown: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ResultsByMode.csv / ResultsByModeAndStructure.csv: mean, median, min, max of Dice.",
        discussion: """
        Examples:
          ie-stats breakdown MetricsAcrossAllRuns.csv -o ResultsByMode.csv
          ie-stats breakdown MetricsAcrossAllRuns.csv --by-structure -o ResultsByModeAndStructure.csv
        """)

    @Argument(help: "Metrics CSV files with a mode column ('-' = stdin).") var inputs: [String] = ["-"]
    @Flag(help: "Group by mode and structure.") var byStructure = false
    @OptionGroup var out: OutputOption

    func run() throws {
        var records: [MetricsRecord] = []
        for path in inputs { records += try MetricsFile.read(path: path).records }
        try out.write(ResultsBreakdown.csv(records, byStructure: byStructure))
    }
}

runTool("ie-stats") {
    do {
        var command = try Stats.parseAsRoot()
        try command.run()
    } catch let error as IEError {
        throw error
    } catch {
        // Parser outcomes: --help exits 0 with the help text; other parse errors are usage errors (exit 2).
        if Stats.exitCode(for: error).rawValue == 0 {
            try StandardStream.write(Stats.fullMessage(for: error) + "\n")
            exit(0)
        }
        throw IEError.usage(Stats.message(for: error) + "; see ie-stats --help")
    }
}

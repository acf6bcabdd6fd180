import ArgumentParser
import Foundation
import IECommand
import IECore
import IEEval

struct Wilcoxon: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Paired Wilcoxon signed-rank tests of runs per structure (Dice).",
        discussion: """
        Inputs are metrics CSVs. A file with a split column contributes one run per
        split; any other file is one run, named by --names or its path. Pairs: all
        against all, or each run against --against. Subjects pair on seriesId when
        present, else Patient.
        --method=innereye (default): InnerEye's test, z deflated by 1.25 (2 for
        skin/external), one-sided p; WORSE if p < threshold/2, BETTER if p > 1 -
        threshold/2.
        --method=exact|approx: two-sided test as scipy.stats.wilcoxon; verdict when p <
        threshold.

        Examples:
          ie-stats wilcoxon old/metrics.csv new/metrics.csv --names=OLD,NEW
          ie-stats wilcoxon MetricsAcrossAllRuns.csv --against=ENSEMBLE --subset=test
          ie-stats wilcoxon a.csv b.csv --method=exact --adjust=holm --format=csv

        CSV columns: Structure,N,Mean1,Mean2,N1>2,N2>1,Median1,Median2,W,z,p,verdict
        (with Run1,Run2 first when there are several pairs).
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
        if !(threshold > 0 && threshold < 1) { throw ValidationError("--threshold=\(threshold), expected a significance level between 0 and 1") }
        if adjust == .holm && method == .innereye {
            throw ValidationError("--adjust=holm needs --method=exact or --method=approx")
        }
    }

    func run() throws {
        let runNames = names.map { $0.split(separator: ",").map(String.init) } ?? []
        var scores = ScoresByRun()
        var plainIndex = 0
        var runsFound: [String] = []
        for path in inputs {
            let file = try MetricsFile.read(path: path)
            var name = path
            if !file.hasSplit {
                if plainIndex < runNames.count { name = runNames[plainIndex] }
                plainIndex += 1
            }
            // The runs as SPEC §8 finds them (a split column: one run per split; else the file), before --subset
            // or --exclude narrow the rows: those leave a comparison with nothing to compare, not a wrong command.
            let runs = file.hasSplit ? file.records.map { $0.split ?? name } : [name]
            for run in runs where !runsFound.contains(run) { runsFound.append(run) }
            scores.add(file, defaultRun: name, subset: file.hasMode ? subset : "all",
                       excluding: Set(exclude.split(separator: ",").map(String.init)))
        }
        // One run compares with nothing: "not enough data points" and exit 0 would hide a forgotten file.
        guard runsFound.count >= 2 else {
            let found = runsFound.first.map { "one run (\($0))" } ?? "no run"
            throw IEError.usage("the inputs hold \(found), expected at least two runs to compare: two metrics CSVs, "
                                + "or a file with a split column")
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
        Groups with at least 10 values for a structure are compared pairwise; rows are
        sorted by p.
        --method=asymptotic (default, scipy with tie and continuity correction) or
        exact (scipy's method='exact'; the asymptotic p above 40000 pairs n1 x n2).

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
          ie-stats breakdown MetricsAcrossAllRuns.csv --by-structure \\
              -o ResultsByModeAndStructure.csv
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

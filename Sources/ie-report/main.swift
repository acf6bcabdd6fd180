import ArgumentParser
import Foundation
import IECommand
import IECore
import IEReport

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-report",
        abstract: "Writes outputs/report.ipynb and outputs/report.html of a run (SPEC §11).",
        discussion: """
        The report holds, per mode (Test, Val, Train when present), the per-structure
        describe tables, the 20 worst subjects by each metric with an is_outlier
        column and box plots; the training curves; baseline comparisons; and for
        cross-validation parents (CrossValResults/) the per-fold and ensemble
        comparison. It uses the epoch with the best mean validation Dice
        (Val/epoch_metrics.csv), else the highest epoch_NNN folder. Plots are drawn by
        gnuplot (pngcairo). The notebook opens rendered with no kernel; run from its
        folder, every cell recomputes its table or plot from the run's CSV files
        (pandas, matplotlib). The HTML page embeds its images.

        --baseline=NAME=RUN (repeatable) first compares this run's Test Dice with
        baseline runs (SPEC §9 comparison_runs):
        BaselineComparisonWilcoxonSignedRankTestResults.txt, MetricsAcrossAllRuns.csv
        and scatterplots/ in epoch_NNN/Test, the baseline metrics copied to
        outputs/NAME/epoch_MMM/. --cross-validation first writes the statistics files
        of outputs/CrossValResults/ (SPEC §10) from its 0/ ... N-1/ and ENSEMBLE/
        folders.

        Examples:
          ie-report --run=runs/Prostate/Prostate_20260101T120000Z_ab12
          ie-report --run=RUN \\
              --baseline=OLD=runs/Prostate/Prostate_20251201T090000Z_cd34
          ie-report --run=runs/Prostate/PARENT_RUN --epoch=100
          ie-report --run=RUN --output_folder=/tmp/report
        """)

    @Option(name: .customLong("run"), help: "Run folder (or its outputs folder).") var runFolder: String
    @Option(help: "Epoch folder to report (default: best validation epoch).", transform: epochNumber) var epoch: Int?
    @Option(name: [.customLong("output_folder"), .customLong("output-dir")],
            help: "Write the two files here instead of the run's outputs folder.") var outputDir: String?
    @Option(help: "Baseline run as NAME=RUN_FOLDER to compare with first (repeatable).") var baseline: [String] = []
    @Flag(help: "Write the CrossValResults/ statistics files first (cross-validation parent).")
    var crossValidation = false
    @OptionGroup var log: LogOptions

    /// The --baseline values as (NAME, RUN_FOLDER).
    func baselines() throws -> [BaselineComparison.Baseline] {
        try baseline.map { b in
            guard let eq = b.firstIndex(of: "="), eq != b.startIndex else {
                throw ValidationError("--baseline=\(b), expected NAME=RUN_FOLDER")
            }
            return .init(name: String(b[..<eq]), run: String(b[b.index(after: eq)...]))
        }
    }

    func validate() throws { _ = try baselines() }

    func run() throws {
        log.apply(tool: "ie-report")
        let outputs = RunReport.outputsFolder(runFolder)
        if crossValidation {
            let layout = RunLayout(outputs: outputs)
            let dataset = layout.datasetCSV
            try CrossValidationResults.write(crossValResults: layout.crossValResults,
                                             dataset: FileManager.default.fileExists(atPath: dataset) ? dataset : nil)
        }
        if !baseline.isEmpty {
            guard let e = epoch ?? RunReport.bestEpoch(outputs) else {
                throw IEError.badInput("no epoch_NNN folder, expected Test results to compare with baselines", file: outputs)
            }
            try BaselineComparison.run(outputs: outputs, epoch: e, baselines: try baselines())
        }
        try RunReport.requireReportable(outputs: outputs, epoch: epoch, given: runFolder)
        let result = try RunReport.write(run: runFolder, outputFolder: outputDir, epoch: epoch)
        if !log.quiet {
            StandardStream.writeBestEffort("ie-report: wrote \(result.notebookPath) and \(result.htmlPath)\n")
            if !result.missing.isEmpty {
                StandardStream.writeBestEffort("ie-report: missing: \(result.missing.joined(separator: ", "))\n")
            }
        }
    }
}

// First, before any thread starts: a SIGTERM, SIGINT or SIGHUP stops gnuplot and removes its scratch folder.
TerminationCleanup.install()
runCommand(Report.self, tool: "ie-report")

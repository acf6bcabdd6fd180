import ArgumentParser
import Foundation
import IECommand
import IECore
import IEEval

/// Where a subcommand's text goes: stdout, or a file written atomically.
struct OutputOption: ParsableArguments {
    @Option(name: [.short, .customLong("output")], help: "Output file (default: stdout; '-' is stdout).")
    var output: String = "-"

    func write(_ text: String) throws {
        if output == "-" {
            // On a stream the text is lines, so a shell prompt or the next tool does not run on after it. A file
            // keeps its bytes: InnerEye writes "There were not enough data points ..." without a newline.
            try StandardStream.write(text.isEmpty || text.hasSuffix("\n") ? text : text + "\n")
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
          ie-metrics pair --prediction=p.nii.gz --ground_truth=g.nii.gz \\
              | ie-stats aggregate
          ie-stats aggregate outputs/epoch_100/Test/metrics.csv \\
              -o metrics_aggregates.csv
          ie-stats across-runs CrossValResults/0 CrossValResults/1 \\
              CrossValResults/ENSEMBLE -o MetricsAcrossAllRuns.csv
          ie-stats outliers MetricsAcrossAllRuns.csv --output-dir CrossValResults
          ie-stats wilcoxon baseline/metrics.csv new/metrics.csv --names=BASE,NEW
          ie-stats wilcoxon MetricsAcrossAllRuns.csv --against=ENSEMBLE
          ie-stats mannwhitney MetricsAcrossAllRuns.csv --by=institutionId
        """,
        subcommands: [Aggregate.self, AcrossRuns.self, Outliers.self, Wilcoxon.self, MannWhitney.self,
                      Breakdown.self])
}

runCommand(Stats.self, tool: "ie-stats")

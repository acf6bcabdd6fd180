import ArgumentParser
import Foundation
import IECommand
import IECore
import IERun
import IESlurm

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-status",
        abstract: "Show the state of runs: status, Slurm job and its state, epoch and last training loss.",
        discussion: """
        One line per run, then one per cross-validation fold of it: the status in
        run.json, the Slurm job ie-submit recorded and its state from squeue (when
        the Slurm tools are here), the last completed epoch and its training loss
        (outputs/Train/epoch_metrics.csv).

        Examples:
          ie-status runs/main/main_20261125T101010Z_ab12
          ie-status $PARENT $OTHER_RUN
        """)

    @Argument(help: "Run folders (runs/<experiment>/<run_id>).") var runs: [String]

    func validate() throws {
        if runs.isEmpty { throw ValidationError("no run given, expected one or more run folders") }
    }

    func run() throws {
        Log.tool = "ie-status"
        let listing = try RunStatusReport.lines(for: runs.map { try RunDirectory.open(path: $0) })
        if let warning = listing.warning { Log.warning(warning) }
        try StandardStream.write(RunStatusReport.text(listing.lines))
    }
}

runCommand(Status.self, tool: "ie-status")

import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IENet
import IERun
import IETrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-train",
        abstract: "Train a model config's UNet3D in a run folder (checkpoints, epoch metrics, resume).",
        discussion: """
        The run folder comes from ie-split (which writes the train/val/test split CSVs). Any model parameter can be
        overridden as --<name>=<value>; overrides given here are recorded in the run for the later tools.
        SIGTERM or SIGUSR1 stop training at the next batch boundary; the autosave then holds the last completed
        epoch and the exit status is 143, so Slurm can requeue the job and `--resume` continues it.

        Examples:
          RUN=$(ie-split --model=HelloWorld) && ie-train --run=$RUN
          ie-train --run=$RUN --num_epochs=20 --l_rate=3e-4 --threads=2
          ie-train --run=$RUN --resume                       # continue a killed run from its autosave
          ie-train --run=$NEW --run_recovery_id=main:main_20261125T101010Z_ab12 --start_epoch=10
          ie-train --run=$NEW --no-train --local_weights_path=model.ckpt   # evaluate given weights only
        """)

    @Option(name: .customLong("run"), help: "The run folder (runs/<experiment>/<run_id>) created by ie-split.") var runFolder: String
    @Option(help: "settings.yml (default: $IE_SETTINGS, ./settings.yml, built-in defaults).") var settings: String?
    @Flag(help: "Continue from the run's autosave.ckpt when there is one.") var resume = false
    @Option(help: "Threads for the GEMMs (default: $OMP_NUM_THREADS or all cores).") var threads: Int?
    @Flag(help: "Only errors.") var quiet = false
    @Flag(help: "More detail.") var verbose = false

    static var overrides: [String] = []

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads=\(threads), expected a positive integer") }
    }

    func run() throws {
        Log.tool = "ie-train"
        Log.level = quiet ? .quiet : verbose ? .verbose : .normal
        let settingsValue = try Settings.locate(explicitPath: settings)
        let runDir = try RunDirectory.open(path: runFolder)
        let config = try RunPipeline.config(run: runDir, settings: settingsValue, extra: Train.overrides, record: true)
        let env = ProcessInfo.processInfo.environment
        setThreads(threads ?? env["OMP_NUM_THREADS"].flatMap(Int.init) ?? ProcessInfo.processInfo.activeProcessorCount)
        StopSignal.install()
        var finished = true
        try runDir.perform(tool: "ie-train", completes: false) {
            if config.train {
                finished = try RunPipeline.train(run: runDir, config: config, settings: settingsValue, resume: resume)
            } else {
                try RunPipeline.adoptWeights(run: runDir, config: config, settings: settingsValue)
            }
        }
        if finished {
            try runDir.markCompleted()
        } else {
            // Queued, not failed: the job is meant to come back (Slurm requeue, or the same command with --resume).
            try runDir.update { $0.status = .queued }
            Foundation.exit(stoppedBySignalExitCode)
        }
    }
}

runCommand(Train.self, tool: "ie-train") { Train.overrides = $0 }

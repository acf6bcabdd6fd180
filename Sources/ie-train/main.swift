import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IEDistributed
import IENet
import IERun
import IETrain

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-train",
        abstract: "Train one run: a model config's UNet3D in a run folder (checkpoints, epoch metrics, resume).",
        discussion: """
        The run folder comes from ie-split (which writes the train/val/test split
        CSVs and alone chooses the subjects: a split parameter given here must keep
        the run's value). Any other model parameter can be overridden as
        --<name>=<value> (or --<name> <value>); overrides are recorded in the run
        for the later tools once training starts. SIGTERM, SIGUSR1, Ctrl-C (SIGINT;
        a second one stops at once) or SIGHUP (a closed terminal; not under nohup)
        stop training at the next batch boundary; the autosave then holds the last
        completed epoch and the exit status is 143, so Slurm can requeue the job
        and `--resume` continues it.
        Launched as MPI ranks (mpirun, or the srun step
        of an ie-submit job) it trains data-parallel; rank 0 writes the run.

        ie-train trains only: ie-evaluate evaluates a run, ie-crossval runs a
        cross-validation parent, ie-submit submits to Slurm, ie-status shows runs.

        Examples:
          RUN=$(ie-split --model=HelloWorld) && ie-train --run=$RUN
          ie-train --run=$RUN --num_epochs=20 --l_rate=3e-4 --threads=2
          ie-train --run=$RUN --resume          # continue from the autosave
          ie-train --run=$NEW --start_epoch=10 \\
              --run_recovery_id=main:main_20260101T120000Z_1a2b
          ie-train --run=$NEW --no-train --local_weights_path=model.ckpt
          mpirun -np 2 ie-train --run=$RUN --threads=1   # 2 MPI ranks (DDP)
          ie-train --run=$RUN --print_config    # parameters, values, sources
        """)

    @OptionGroup var runFolder: RunOption
    @Flag(help: "Continue from the run's autosave.ckpt when there is one.") var resume = false
    @Flag(name: .customLong("print_config"), help: "Print every model parameter, its value and its source; train nothing.")
    var printConfig = false
    @OptionGroup var settings: SettingsOption
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var log: LogOptions
    @OptionGroup var parameters: ModelParameters

    func run() throws {
        log.apply(tool: "ie-train")
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        let runDir = try RunDirectory.open(path: runFolder.path)
        let extra = try parameters.flags()
        let config = try runDir.modelConfig(settings: settingsValue, extra: extra)
        if printConfig { return try StandardStream.write(ConfigListing.text(config)) }
        // Checked before anything is written.
        try RunTraining.checkTrainable(config, run: runDir)
        try RunDirectory.checkRecoveredFoldCount(config, settings: settingsValue)
        try RunTraining.checkNotTrainedBefore(config, run: runDir, resume: resume)
        try RunPipeline.checkWeightSources(config: config, run: runDir, settings: settingsValue, resume: resume)
        let rank = Distributed.launchedRank()
        guard rank == 0 else { return try trainAsWorker(runDir, settingsValue, extra: extra, rank: rank) }
        // One writer per run: held before the run's files are written (the recorded overrides included).
        try RunLock.process.withLock(run: runDir.path, tool: "ie-train") {
            let config = try runDir.modelConfig(settings: settingsValue, extra: extra)
            StopSignal.install()
            EngineOptions.fromCommandLine(threads: threads.threads, precision: precision.precision)
            var finished = true
            try runDir.performFailingParent(tool: "ie-train", completes: false) {
                // The overrides are recorded once checked, as training or adopting starts (SPEC §1.3).
                finished = try RunTraining.trainOrAdopt(run: runDir, config: config, settings: settingsValue, resume: resume,
                                                        beforeActing: { try runDir.recordOverrides(extra) })
            }
            guard finished else {
                // Queued, not failed: the job is meant to come back (Slurm requeue, or the same command with --resume).
                Foundation.exit(stoppedBySignalExitCode)
            }
            try runDir.markCompleted()
        }
    }

    /// MPI ranks above 0 train their shards and write nothing of the run (rank 0 records the overrides).
    func trainAsWorker(_ runDir: RunDirectory, _ settingsValue: Settings, extra: [String], rank: Int) throws {
        Log.linePrefix = "[rank \(rank)] "
        let config = try runDir.modelConfig(settings: settingsValue, extra: extra)
        StopSignal.install()
        EngineOptions.fromCommandLine(threads: threads.threads, precision: precision.precision)
        guard try RunTraining.trainAsWorkerRank(run: runDir, config: config, settings: settingsValue, resume: resume) else {
            Foundation.exit(stoppedBySignalExitCode)
        }
    }
}

runCommand(Train.self, tool: "ie-train")

import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IENet
import IERun
import IETrain
import IECluster
import IEDistributed

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-train",
        abstract: "Train a model config's UNet3D in a run folder (checkpoints, epoch metrics, resume).",
        discussion: """
        The run folder comes from ie-split (which writes the train/val/test split
        CSVs). Any model parameter can be overridden as --<name>=<value>; overrides
        given here are recorded in the run for the later tools. SIGTERM or SIGUSR1
        stop training at the next batch boundary; the autosave then holds the last
        completed epoch and the exit status is 143, so Slurm can requeue the job
        and `--resume` continues it.

        Examples:
          RUN=$(ie-split --model=HelloWorld) && ie-train --run=$RUN
          ie-train --run=$RUN --num_epochs=20 --l_rate=3e-4 --threads=2
          ie-train --run=$RUN --resume          # continue from the autosave
          ie-train --run=$NEW --run_recovery_id=main:<run_id> --start_epoch=10
          ie-train --run=$NEW --no-train --local_weights_path=model.ckpt
          mpirun -np 2 ie-train --run=$RUN --threads=1   # 2 MPI ranks (DDP)

        Cross-validation (SPEC §10): a run made by `ie-split
        --number_of_cross_validation_splits=N` is a parent; `ie-train --run=PARENT`
        creates its N fold runs <PARENT>_<k>, trains and evaluates them one after
        the other, then builds the ensemble and CrossValResults/. `make -j2
        crossval` runs the folds in parallel with --folds_only, --evaluate per fold
        and --ensemble.
          RUN=$(ie-split --model=HelloWorld --number_of_cross_validation_splits=2)
          ie-train --run=$RUN

        Slurm: --slurm submits instead (a plain run: one job; a parent: a job array
        of the folds plus an afterok job for the ensemble), with --cluster=PARTITION
        and the settings.yml slurm: block. With --num_nodes=K a job takes K whole
        nodes, trains with one MPI rank per node (srun --mpi=pmix, all cores of
        each node), then evaluates on one node (--evaluate_only). --status shows
        each run's state, Slurm job, epoch and last loss.
          ie-train --run=$RUN --slurm --cluster=debug
          ie-train --run=$RUN --slurm --num_nodes=4
          ie-train --status $RUN
        """)

    @Option(name: .customLong("run"), help: "The run folder (runs/<experiment>/<run_id>) created by ie-split.") var runFolder: String?
    @Option(help: "Show the state, Slurm job, epoch and last loss of a run and its cross-validation folds.") var status: String?
    @Flag(name: .customLong("folds_only"), help: "Cross-validation parent: create the fold runs, print their folders, train nothing.") var foldsOnly = false
    @Flag(help: "Cross-validation parent: the ensemble and CrossValResults/ step (every fold trained and evaluated).") var ensemble = false
    @Flag(help: "After training, run inference and metrics on Val and Test (what a Slurm job or a make fold does).") var evaluate = false
    @Flag(name: .customLong("evaluate_only"), help: "Only inference and metrics on Val and Test of the trained run, then mark it completed.") var evaluateOnly = false
    @Option(help: "settings.yml (default: $IE_SETTINGS, ./settings.yml, built-in defaults).") var settings: String?
    @Flag(help: "Continue from the run's autosave.ckpt when there is one.") var resume = false
    @Option(help: "Threads for the GEMMs (default: $OMP_NUM_THREADS or all cores).") var threads: Int?
    @Flag(help: "Only errors.") var quiet = false
    @Flag(help: "More detail.") var verbose = false

    static var overrides: [String] = []

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads=\(threads), expected a positive integer") }
        if (runFolder == nil) == (status == nil) { throw ValidationError("give --run=RUN (or --status RUN), expected one of them") }
        if evaluate && evaluateOnly { throw ValidationError("--evaluate and --evaluate_only together, expected one of them") }
    }

    func run() throws {
        Log.tool = "ie-train"
        Log.level = quiet ? .quiet : verbose ? .verbose : .normal
        if let status {
            try StandardStream.write(RunStatusReport.text(try RunStatusReport.lines(for: RunDirectory.open(path: status))))
            return
        }
        let settingsValue = try Settings.locate(explicitPath: settings)
        let runDir = try RunDirectory.open(path: runFolder!)
        // Submission flags are checked before anything is written, and never recorded in the run.
        let fullConfig = try runDir.modelConfig(settings: settingsValue, extra: Train.overrides)
        try ClusterTraining.checkNumNodes(fullConfig)
        try RunDirectory.checkRecoveredFoldCount(fullConfig, settings: settingsValue)
        let submit = try ClusterTraining.submissionOptions(run: runDir, fullConfig: fullConfig, settings: settingsValue)
        let rank = Distributed.launchedRank()
        guard rank == 0 else { return try train(runDir, settingsValue, submit: submit, rank: rank) }
        // One writer per run: held before the run's files are written (the recorded overrides included).
        try RunLock.process.withLock(run: runDir.path, tool: "ie-train") {
            try train(runDir, settingsValue, submit: submit, rank: rank)
        }
    }

    func train(_ runDir: RunDirectory, _ settingsValue: Settings, submit: SlurmJobOptions?, rank: Int) throws {
        let extra = ClusterTraining.separateSubmissionFlags(Train.overrides).rest
        let config = try runDir.modelConfig(settings: settingsValue, extra: extra, record: true)
        EngineOptions.fromCommandLine(threads: threads)
        StopSignal.install()
        var request = ClusterTraining.Request()
        (request.foldsOnly, request.ensemble, request.evaluate, request.resume) = (foldsOnly, ensemble, evaluate, resume)
        request.evaluateOnly = evaluateOnly
        (request.threads, request.settingsFile) = (threads, settings)
        switch try ClusterTraining.handle(run: runDir, config: config, settings: settingsValue, submit: submit, request: request) {
        case .handled: return
        case .stopped: Foundation.exit(stoppedBySignalExitCode)
        case .trainHere: break
        }
        if rank > 0 {
            Log.linePrefix = "[rank \(rank)] "
            guard try ClusterTraining.trainAsWorkerRank(run: runDir, config: config, settings: settingsValue, resume: resume) else {
                Foundation.exit(stoppedBySignalExitCode)
            }
            return
        }
        var finished = true
        try ClusterTraining.performFailingParent(run: runDir, completes: false) {
            finished = try ClusterTraining.trainAndEvaluate(run: runDir, config: config, settings: settingsValue,
                                                            resume: resume, evaluate: evaluate)
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

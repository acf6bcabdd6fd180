import Foundation
import IECore
import IEConfig
import IEDistributed
import IEPipeline
import IERun
import IETrain

/// What ie-train does beyond training one run here (issue 6), kept out of its main.swift:
/// `--slurm` submission, cross-validation parents (create the folds, run them here one after the other, or the
/// ensemble step alone), `--evaluate` after training, and the `num_nodes` check.
public enum ClusterTraining {
    /// The options of ie-train that select these paths.
    public struct Request: Sendable {
        public var foldsOnly = false
        public var ensemble = false
        public var evaluate = false
        public var evaluateOnly = false
        public var resume = false
        public var threads: Int?
        public var settingsFile: String?
        public init() {}
    }

    public enum Outcome: Sendable, Equatable {
        /// Nothing special: ie-train trains the run itself.
        case trainHere
        /// Done (submitted, folds created, ensemble written, or a whole local cross-validation run).
        case handled
        /// A stop signal (TERM/USR1) interrupted a local cross-validation; exit 143.
        case stopped
    }

    /// `--slurm` / `--no-slurm` / `--slurm=<bool>` / `--cluster=P` (also `--cluster P`) are submission options:
    /// they are taken out of the overrides a run records, so the jobs themselves never submit again.
    public static func separateSubmissionFlags(_ overrides: [String]) -> (submission: [String], rest: [String]) {
        var submission: [String] = [], rest: [String] = []
        var i = 0
        while i < overrides.count {
            let arg = overrides[i]
            let body = arg.drop(while: { $0 == "-" })
            let name = body.split(separator: "=", maxSplits: 1).first.map(String.init) ?? ""
            if ["slurm", "no-slurm", "cluster"].contains(name) {
                submission.append(arg)
                if name == "cluster", !body.contains("="), i + 1 < overrides.count, !overrides[i + 1].hasPrefix("--") {
                    submission.append(overrides[i + 1])
                    i += 1
                }
            } else {
                rest.append(arg)
            }
            i += 1
        }
        return (submission, rest)
    }

    /// True when this process runs inside a job that ie-train submitted (it must never submit again).
    public static var insideSubmittedJob: Bool { ProcessInfo.processInfo.environment["IE_SLURM_JOB"] != nil }

    /// Whether this build has the MPI gradient reducer (libopenmpi-dev was present when it was built).
    public static var builtWithOpenMPI: Bool { Distributed.mpiAvailable }

    /// `num_nodes` > 1 is data-parallel training over MPI ranks: it needs a build with Open MPI and either a
    /// Slurm submission (`--slurm`: one rank per node), a launch as MPI ranks (the job's srun step, or mpirun by
    /// hand), or the one-node evaluation step of such a job. Anything else is refused before anything is written.
    public static func checkNumNodes(_ config: ModelConfig, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let nodes = config.numNodes
        guard nodes != 1 else { return }
        guard nodes > 1 else { throw IEError.usage("num_nodes=\(nodes), expected a positive number of nodes") }
        guard builtWithOpenMPI else {
            throw IEError.usage("num_nodes=\(nodes) needs Open MPI, and this toolbox was built without libopenmpi-dev, "
                                + "expected num_nodes=1 (or install libopenmpi-dev and rebuild)")
        }
        let ranks = Distributed.launchedRanks(environment: environment)
        if config.slurm || environment["IE_SLURM_JOB"] != nil || ranks > 1 {
            if ranks > 1 && ranks != nodes {
                Log.warning("num_nodes=\(nodes) but launched as \(ranks) MPI ranks: training runs data-parallel over the \(ranks) ranks")
            }
            return
        }
        throw IEError.usage("num_nodes=\(nodes) trains on \(nodes) nodes through Slurm, expected --slurm (or num_nodes=1 here; "
                            + "or launch the ranks yourself: mpirun -np \(nodes) ie-train --run=RUN)")
    }

    /// Validates a submission before anything is written (exit 2 on a bad set-up). `fullConfig` is the config
    /// with the submission flags, which only it carries.
    /// A refused set-up marks the run failed with the reason (recordFailedSubmission) and writes nothing else.
    public static func submissionOptions(run: RunDirectory, fullConfig: ModelConfig, settings: Settings) throws -> SlurmJobOptions? {
        guard fullConfig.slurm, !insideSubmittedJob else { return nil }
        let options = SlurmJobOptions(settings: settings.slurm, cluster: fullConfig.cluster, nodes: fullConfig.numNodes)
        do { try Slurm.checkSetup(options: options) } catch {
            recordFailedSubmission(run: run, error: error)
            throw error
        }
        return options
    }

    /// A submission that fails leaves its run, and the fold runs it created, `failed` with the reason: no job will
    /// ever run them, so they must not stay `queued` (issue 10). Runs that a job started, or that finished, keep
    /// their state: only the submission failed.
    static func recordFailedSubmission(run: RunDirectory, error: Error) {
        let text = "ie-train --slurm: " + ((error as? IEError)?.description ?? "\(error)")
        var runs = [run]
        if let info = try? run.readInfo() {
            let folder = URL(fileURLWithPath: run.path).deletingLastPathComponent()
            runs += info.children.compactMap { try? RunDirectory.open(path: folder.appendingPathComponent($0).path) }
        }
        for r in runs {
            try? r.update { info in
                guard info.status == .queued || info.status == .failed else { return }
                info.status = .failed
                info.error = text
            }
        }
    }

    /// Handles submission and cross-validation parents; `.trainHere` for an ordinary training run.
    public static func handle(run: RunDirectory, config: ModelConfig, settings: Settings, submit: SlurmJobOptions?,
                              request: Request) throws -> Outcome {
        let isParent = config.performCrossValidation && config.crossValidationSplitIndex < 0
        if request.foldsOnly || request.ensemble {
            guard isParent else { _ = try CrossValidation.foldCount(config, run: run); return .handled }
        }
        if request.evaluateOnly {
            guard !isParent else {
                throw IEError.usage("--evaluate_only on a cross-validation parent, expected a fold or a plain run (the parent's "
                                    + "evaluation is --ensemble)")
            }
            // The evaluation step of a (multi-node) training job: the run's times stay its training's.
            try performFailingParent(run: run, keepStarted: true) {
                try RunCompletion.evaluate(run: run, config: config, settings: settings,
                                           baselines: RunCompletion.comparesWithBaselines(run))
            }
            return .handled
        }
        let invocation = SlurmSubmission.Invocation.current(settingsFile: request.settingsFile ?? settings.file, threads: request.threads)
        if let submit {
            do {
                try self.submit(run: run, config: config, settings: settings, options: submit, invocation: invocation, isParent: isParent)
            } catch {
                recordFailedSubmission(run: run, error: error)
                throw error
            }
            return .handled
        }
        guard isParent else { return .trainHere }
        if request.foldsOnly {
            for child in try CrossValidation.createChildren(parent: run, config: config, settings: settings) { try StandardStream.write(child.path + "\n") }
            return .handled
        }
        if request.ensemble {
            try runEnsembleStep(parent: run, config: config, settings: settings)
            return .handled
        }
        // A whole cross-validation here, one fold after the other (make -j crossval runs them in parallel).
        var stopped = false
        try run.perform(tool: "ie-train", completes: false) {
            let children = try CrossValidation.createChildren(parent: run, config: config, settings: settings)
            for child in children {
                let childConfig = try child.modelConfig(settings: settings)
                try child.perform(tool: "ie-train", completes: false) {
                    guard try trainAndEvaluate(run: child, config: childConfig, settings: settings, resume: true, evaluate: true) else {
                        stopped = true
                        return
                    }
                }
                if stopped { return }
            }
        }
        if stopped { return .stopped }
        try runEnsembleStep(parent: run, config: config, settings: settings)
        return .handled
    }

    /// Submits a plain run (one job) or a cross-validation parent (its folds as a job array, then the ensemble job).
    static func submit(run: RunDirectory, config: ModelConfig, settings: Settings, options: SlurmJobOptions,
                       invocation: SlurmSubmission.Invocation, isParent: Bool) throws {
        if isParent {
            let children = try CrossValidation.createChildren(parent: run, config: config, settings: settings)
            let submitted = try SlurmSubmission.submitCrossValidation(parent: run, children: children, options: options,
                                                                      invocation: invocation)
            Log.info("submitted \(children.count) folds as job array \(submitted.trainingJob) and the ensemble as job "
                     + "\(submitted.ensembleJob ?? "?") (afterok); follow with: ie-train --status \(run.path)")
            try StandardStream.write(submitted.trainingJob + " " + (submitted.ensembleJob ?? "") + "\n")
        } else {
            let submitted = try SlurmSubmission.submitRun(run, options: options, invocation: invocation)
            Log.info("submitted job \(submitted.trainingJob); follow with: ie-train --status \(run.path)")
            try StandardStream.write(submitted.trainingJob + "\n")
        }
    }

    /// The last step of a cross-validation; prints the registered ensemble's model id on stdout (it is also in
    /// the parent's run.json as registered_model), for `--model_id=` of ie-infer, ie-ensemble and ie-train.
    static func runEnsembleStep(parent: RunDirectory, config: ModelConfig, settings: Settings) throws {
        var result: CrossValidationEnsemble.Result?
        try parent.perform(tool: "ie-train") {
            result = try CrossValidationEnsemble.run(parent: parent, config: config, settings: settings)
        }
        if let result { try StandardStream.write(result.ensembleModelID + "\n") }
    }

    /// `run.perform(tool: "ie-train")` for a run that may be a cross-validation fold: a fold that fails fails its
    /// parent as well, since the parent's ensemble step will never run (Slurm cancels its afterok job; make
    /// stops), so the parent must not stay `queued`. Rerunning the fold and the ensemble step completes it again.
    public static func performFailingParent(run: RunDirectory, completes: Bool = true, keepStarted: Bool = false,
                                            _ body: () throws -> Void) throws {
        try run.performFailingParent(tool: "ie-train", completes: completes, keepStarted: keepStarted, body)
    }

    /// An MPI rank above 0 of data-parallel training: trains its shards of every batch and writes nothing of the
    /// run (rank 0 writes checkpoints, logs and run.json, and evaluates). False when a stop signal ended it.
    public static func trainAsWorkerRank(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool) throws -> Bool {
        guard config.train else { return true }
        return try RunPipeline.train(run: run, config: config, settings: settings, resume: resume)
    }

    /// Trains (or, with train false, adopts the given weights as the run's checkpoint), then, when asked,
    /// evaluates Val/Test, and marks the run completed. A stop signal leaves the run queued (it is meant to come
    /// back: a Slurm requeue or --resume) and returns false.
    public static func trainAndEvaluate(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool,
                                        evaluate: Bool) throws -> Bool {
        if config.train {
            guard try RunPipeline.train(run: run, config: config, settings: settings, resume: resume) else {
                try run.update { $0.status = .queued }
                return false
            }
        } else {
            try RunPipeline.adoptWeights(run: run, config: config, settings: settings)
        }
        if evaluate {
            try RunCompletion.evaluate(run: run, config: config, settings: settings,
                                       baselines: RunCompletion.comparesWithBaselines(run))
        }
        try run.markCompleted()
        return true
    }
}

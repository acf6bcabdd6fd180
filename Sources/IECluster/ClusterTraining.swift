import Foundation
import IECore
import IEConfig
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

    /// Package.swift defines IE_HAS_MPI when libopenmpi-dev was present (ie-train itself does not link MPI).
    static var builtWithOpenMPI: Bool {
        #if IE_HAS_MPI
        return true
        #else
        return false
        #endif
    }

    /// Multi-node data-parallel training is not wired into the training loop yet: refuse clearly, saying whether
    /// this build has MPI at all.
    public static func checkNumNodes(_ config: ModelConfig) throws {
        guard config.numNodes <= 1 else {
            if !builtWithOpenMPI {
                throw IEError.usage("num_nodes=\(config.numNodes) needs Open MPI, and this toolbox was built without libopenmpi-dev, "
                                    + "expected num_nodes=1 (or install libopenmpi-dev and rebuild)")
            }
            throw IEError.usage("num_nodes=\(config.numNodes): submitting multi-node jobs is not implemented yet; data-parallel "
                                + "training runs when ie-train is launched as MPI ranks (mpirun -np K ie-train --run=RUN, or srun "
                                + "--mpi=pmix inside an allocation), expected num_nodes=1")
        }
    }

    /// Validates a submission before anything is written (exit 2 on a bad set-up). `fullConfig` is the config
    /// with the submission flags, which only it carries.
    public static func submissionOptions(fullConfig: ModelConfig, settings: Settings) throws -> SlurmJobOptions? {
        guard fullConfig.slurm, !insideSubmittedJob else { return nil }
        let options = SlurmJobOptions(settings: settings.slurm, cluster: fullConfig.cluster)
        try Slurm.checkSetup(options: options)
        return options
    }

    /// Handles submission and cross-validation parents; `.trainHere` for an ordinary training run.
    public static func handle(run: RunDirectory, config: ModelConfig, settings: Settings, submit: SlurmJobOptions?,
                              request: Request) throws -> Outcome {
        let isParent = config.performCrossValidation && config.crossValidationSplitIndex < 0
        if request.foldsOnly || request.ensemble {
            guard isParent else { _ = try CrossValidation.foldCount(config, run: run); return .handled }
        }
        let invocation = SlurmSubmission.Invocation.current(settingsFile: request.settingsFile ?? settings.file, threads: request.threads)
        if let submit {
            if isParent {
                let children = try CrossValidation.createChildren(parent: run, config: config, settings: settings)
                let submitted = try SlurmSubmission.submitCrossValidation(parent: run, children: children, options: submit,
                                                                          invocation: invocation)
                Log.info("submitted \(children.count) folds as job array \(submitted.trainingJob) and the ensemble as job "
                         + "\(submitted.ensembleJob ?? "?") (afterok); follow with: ie-train --status \(run.path)")
                print(submitted.trainingJob + " " + (submitted.ensembleJob ?? ""))
            } else {
                let submitted = try SlurmSubmission.submitRun(run, options: submit, invocation: invocation)
                Log.info("submitted job \(submitted.trainingJob); follow with: ie-train --status \(run.path)")
                print(submitted.trainingJob)
            }
            return .handled
        }
        guard isParent else { return .trainHere }
        if request.foldsOnly {
            for child in try CrossValidation.createChildren(parent: run, config: config, settings: settings) { print(child.path) }
            return .handled
        }
        if request.ensemble {
            try run.perform(tool: "ie-train") {
                try CrossValidationEnsemble.run(parent: run, config: config, settings: settings)
            }
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
        try run.perform(tool: "ie-train") {
            try CrossValidationEnsemble.run(parent: run, config: config, settings: settings)
        }
        return .handled
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
            // A cross-validation fold compares with baselines in its parent's CrossValResults, not on its own.
            let isFold = RunIDs.parentAndIndex(of: run.id) != nil
            try RunCompletion.evaluate(run: run, config: config, settings: settings, baselines: !isFold)
        }
        try run.markCompleted()
        return true
    }
}

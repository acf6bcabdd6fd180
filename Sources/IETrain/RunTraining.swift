import Foundation
import IECore
import IEConfig
import IEDistributed
import IERun

/// Training one run, as `ie-train` does it and as `ie-crossval` does it for each fold: the checks made before
/// anything is written, training (or, with train false, adopting given weights), and the status a run is left in.
public enum RunTraining {
    /// Whether this build has the MPI gradient reducer (libopenmpi-dev was present when it was built).
    public static var builtWithOpenMPI: Bool { Distributed.mpiAvailable }

    /// True when this process runs inside a job that ie-submit wrote.
    public static func insideSubmittedJob(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment["IE_SLURM_JOB"] != nil
    }

    /// `num_nodes` > 1 needs a build with Open MPI (for ie-submit and ie-train alike).
    public static func checkNodeCount(_ nodes: Int) throws {
        guard nodes != 1 else { return }
        guard nodes > 1 else { throw IEError.usage("num_nodes=\(nodes), expected a positive number of nodes") }
        guard builtWithOpenMPI else {
            throw IEError.usage("num_nodes=\(nodes) needs Open MPI, and this toolbox was built without libopenmpi-dev, "
                                + "expected num_nodes=1 (or install libopenmpi-dev and rebuild)")
        }
    }

    /// What ie-train refuses before anything is written: a cross-validation parent (ie-crossval trains its
    /// folds), `slurm=true` outside a submitted job (ie-submit submits), and `num_nodes` > 1 unless launched as
    /// MPI ranks (a job's srun step, or mpirun by hand).
    public static func checkTrainable(_ config: ModelConfig, run: RunDirectory,
                                      environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        if config.performCrossValidation && config.crossValidationSplitIndex < 0 {
            throw IEError.usage("run \(run.id) is a cross-validation parent (number_of_cross_validation_splits="
                                + "\(config.numberOfCrossValidationSplits)), expected a plain run or a fold: train its folds with "
                                + "ie-crossval --run=\(run.path) (or ie-submit --run=\(run.path))", file: run.runJSON)
        }
        if config.slurm && !insideSubmittedJob(environment) {
            throw IEError.usage("slurm=true: ie-train trains here, expected ie-submit --run=\(run.path) to submit it to Slurm "
                                + "(or --no-slurm)")
        }
        try checkNumNodes(config, environment: environment)
    }

    /// Training without `--resume` starts at epoch 1 and would write its checkpoints over the ones a run already
    /// holds (a completed run's, a stopped run's autosave), leaving a mixture of two trainings: refused, naming
    /// what the run holds. Adopting weights (`--no-train`) writes only its own epoch and is not affected.
    public static func checkNotTrainedBefore(_ config: ModelConfig, run: RunDirectory, resume: Bool) throws {
        guard config.train, !resume else { return }
        let folder = run.layout.checkpoints
        let autosave = FileManager.default.fileExists(atPath: run.layout.autosave) ? ["autosave.ckpt"] : []
        let names = autosave + RunPipeline.savedEpochCheckpoints(in: folder)
        guard !names.isEmpty else { return }
        let status = (try? run.readInfo().status.rawValue).map { ", status \($0)" } ?? ""
        throw IEError.usage("run \(run.id) already holds checkpoints (\(names.joined(separator: ", "))\(status)), expected --resume to "
                            + "continue from its autosave (with a larger --num_epochs to train further), or a new run from ie-split",
                            file: folder)
    }

    /// `num_nodes` > 1 is data-parallel training over MPI ranks: ie-train must be launched as those ranks.
    public static func checkNumNodes(_ config: ModelConfig, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        let nodes = config.numNodes
        try checkNodeCount(nodes)
        guard nodes > 1 else { return }
        let ranks = Distributed.launchedRanks(environment: environment)
        if insideSubmittedJob(environment) || ranks > 1 {
            if ranks > 1 && ranks != nodes {
                Log.warning("num_nodes=\(nodes) but launched as \(ranks) MPI ranks: training runs data-parallel over the \(ranks) ranks")
            }
            return
        }
        throw IEError.usage("num_nodes=\(nodes) trains on \(nodes) nodes, expected ie-submit --run=RUN --num_nodes=\(nodes) "
                            + "(or num_nodes=1 here; or launch the ranks yourself: mpirun -np \(nodes) ie-train --run=RUN)")
    }

    /// Trains (or, with train false, adopts the given weights as the run's checkpoint). False when a stop
    /// signal ended training: the run is then left queued (it is meant to come back: a Slurm requeue or --resume).
    /// `beforeActing` runs once the weights to start from are checked (RunPipeline.checkWeightSources) and, when
    /// training, everything is loaded, just before the first epoch: ie-train records its overrides there, so a call
    /// that fails on them leaves no record.
    public static func trainOrAdopt(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool,
                                    beforeActing: () throws -> Void = {}) throws -> Bool {
        try RunPipeline.checkWeightSources(config: config, run: run, settings: settings, resume: resume)
        if config.train {
            guard try RunPipeline.train(run: run, config: config, settings: settings, resume: resume, beforeTraining: beforeActing) else {
                try run.update { $0.status = .queued }
                return false
            }
        } else {
            try beforeActing()
            try RunPipeline.adoptWeights(run: run, config: config, settings: settings)
        }
        return true
    }

    /// An MPI rank above 0 of data-parallel training: trains its shards of every batch and writes nothing of the
    /// run (rank 0 writes checkpoints, logs and run.json). False when a stop signal ended it.
    public static func trainAsWorkerRank(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool) throws -> Bool {
        guard config.train else { return true }
        return try RunPipeline.train(run: run, config: config, settings: settings, resume: resume)
    }
}

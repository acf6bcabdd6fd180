import Foundation
import IECore
import IEConfig
import IERun
import IETrain

/// What `ie-submit --run=RUN` does: checks the set-up before anything is written, then submits a plain run or
/// a fold (one job) or a cross-validation parent (its folds, created here, as a job array, then the ensemble job).
public enum Submission {
    /// The job options from settings.yml's slurm: block, `--cluster` (else the config's `cluster`) and num_nodes,
    /// checked against the cluster. A refused set-up marks the run failed with the reason and writes nothing else.
    public static func options(run: RunDirectory, config: ModelConfig, settings: Settings, cluster: String?) throws -> SlurmJobOptions {
        let options = SlurmJobOptions(settings: settings.slurm, cluster: cluster ?? config.cluster, nodes: config.numNodes)
        do {
            try RunTraining.checkNodeCount(config.numNodes)
            try CrossValidation.checkWeightSources(config: config, run: run, settings: settings)
            try Slurm.checkSetup(options: options)
        } catch {
            recordFailedSubmission(run: run, error: error)
            throw error
        }
        return options
    }

    /// Submits the run; prints the job ids on stdout (a parent: the array's, then the ensemble job's).
    public static func submit(run: RunDirectory, config: ModelConfig, settings: Settings, options: SlurmJobOptions,
                              invocation: SlurmSubmission.Invocation) throws {
        do {
            if config.performCrossValidation && config.crossValidationSplitIndex < 0 {
                let children = try CrossValidation.createChildren(parent: run, config: config, settings: settings)
                let submitted = try SlurmSubmission.submitCrossValidation(parent: run, children: children, options: options,
                                                                          invocation: invocation)
                Log.info("submitted \(children.count) folds as job array \(submitted.trainingJob) and the ensemble as job "
                         + "\(submitted.ensembleJob ?? "?") (afterok); follow with: ie-status \(run.path)")
                try StandardStream.write(submitted.trainingJob + " " + (submitted.ensembleJob ?? "") + "\n")
            } else {
                let submitted = try SlurmSubmission.submitRun(run, options: options, invocation: invocation)
                Log.info("submitted job \(submitted.trainingJob); follow with: ie-status \(run.path)")
                try StandardStream.write(submitted.trainingJob + "\n")
            }
        } catch {
            recordFailedSubmission(run: run, error: error)
            throw error
        }
    }

    /// A submission that fails leaves its run, and the fold runs it created, `failed` with the reason: no job will
    /// ever run them, so they must not stay `queued` (issue 10). Runs that a job started, or that finished, keep
    /// their state: only the submission failed.
    static func recordFailedSubmission(run: RunDirectory, error: Error) {
        let text = "ie-submit: " + ((error as? IEError)?.description ?? "\(error)")
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
}

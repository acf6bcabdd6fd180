import Foundation
import IECore
import IEConfig
import IERun

/// `ie-submit` (SPEC §10): a plain run or a fold is one job (ie-train, then `ie-evaluate --mark_completed`); a
/// cross-validation parent is a job array (task k trains and evaluates fold k) plus one job with
/// `--dependency=afterok:<array>` for `ie-crossval ensemble`. Jobs are requeueable; the batch shell forwards
/// USR1/TERM to ie-train, which writes its autosave and exits 143; ie-train always runs with `--resume`, so a
/// requeued job (SLURM_RESTART_COUNT > 0) or a resubmitted run continues from its autosave. Logs go to the run's
/// logs/; job ids to run.json.
public enum SlurmSubmission {
    public struct Submitted: Sendable {
        /// The training job (a plain run) or the fold array (cross-validation).
        public var trainingJob: String
        /// The ensemble job of a cross-validation, nil for a plain run.
        public var ensembleJob: String?
    }

    /// Everything a job needs to call the toolbox again: the folder of its executables and the absolute
    /// settings path.
    public struct Invocation: Sendable {
        public var binFolder: String
        public var settingsFile: String?
        public var threads: Int?

        public init(binFolder: String, settingsFile: String?, threads: Int? = nil) {
            self.binFolder = binFolder
            self.settingsFile = settingsFile
            self.threads = threads
        }

        /// The folder of the executable that is running now (so jobs use the same build).
        public static func current(settingsFile: String?, threads: Int?) -> Invocation {
            let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            return Invocation(binFolder: URL(fileURLWithPath: exe).deletingLastPathComponent().path,
                              settingsFile: settingsFile.map { URL(fileURLWithPath: $0).standardizedFileURL.path },
                              threads: threads)
        }

        /// A toolbox executable of this build, shell-quoted.
        func tool(_ name: String) -> String { quote(binFolder + "/" + name) }

        var fixedArguments: String {
            var a: [String] = []
            if let settingsFile { a.append("--settings=\(settingsFile)") }
            if let threads { a.append("--threads=\(threads)") }
            return a.map(quote).joined(separator: " ")
        }
    }

    static func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

    /// The batch script of one training job. `runExpression` is a shell word giving the run folder (for an array
    /// it involves $SLURM_ARRAY_TASK_ID). The shell waits with `wait` (bash runs traps only between commands),
    /// forwards USR1/TERM to the running step, and after a USR1 (time limit near) requeues its own job.
    /// With `nodes` > 1 training is one MPI rank per node (`srun --mpi=pmix`, Debian's Open MPI works with pmix
    /// only), each rank using all cores of its node; evaluation then runs as a plain process on the first node.
    public static func trainingScript(runExpression: String, invocation: Invocation, nodes: Int = 1) -> String {
        let fixed = invocation.fixedArguments
        let header: String
        let launch: String
        if nodes > 1 {
            header = """
            # Written by ie-submit: data-parallel training on \(nodes) nodes, one MPI rank per node (resuming from the
            # autosave after a requeue), then ie-evaluate on this node alone.
            export IE_SLURM_JOB=1
            # The GEMM threads: every core of the (whole) node, unless the submitter chose.
            if [ -z "${OMP_NUM_THREADS:-}" ] && [ -n "${SLURM_CPUS_ON_NODE:-}" ]; then export OMP_NUM_THREADS=$SLURM_CPUS_ON_NODE; fi
            """
            // srun does not inherit the job's --cpus-per-task since Slurm 22.05: give each rank its node's CPUs.
            launch = "srun --mpi=pmix --ntasks-per-node=1 --cpus-per-task=\"${SLURM_CPUS_ON_NODE:-1}\" --kill-on-bad-exit=1 \\\n    "
        } else {
            header = """
            # Written by ie-submit: ie-train (resuming from the autosave after a requeue), then ie-evaluate.
            export IE_SLURM_JOB=1
            # The GEMM threads: the job's CPUs, not the whole node's, unless the submitter chose.
            if [ -z "${OMP_NUM_THREADS:-}" ] && [ -n "${SLURM_CPUS_PER_TASK:-}" ]; then export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi
            """
            launch = ""
        }
        return """
        #!/bin/bash
        \(header)
        run=\(runExpression)
        # ie-train continues from the run's autosave whenever there is one: after a requeue, and when a stopped or
        # failed run is submitted again (it refuses to train a run over its checkpoints without --resume).
        if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
            echo "ie-submit job: requeued (restart $SLURM_RESTART_COUNT), resuming $run from its autosave"
        fi
        requeue=0
        child=""
        trap 'requeue=1; [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null' USR1
        trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
        # Runs one command in the background and waits for it, so that the traps run while it works.
        step() {
            "$@" &
            child=$!
            while kill -0 "$child" 2>/dev/null; do wait "$child"; done
            wait "$child"
        }
        step \(launch)\(invocation.tool("ie-train")) --run="$run" --resume \(fixed)
        rc=$?
        if [ "$rc" -eq 0 ]; then
            step \(invocation.tool("ie-evaluate")) --run="$run" --mark_completed \(fixed)
            rc=$?
        fi
        # After the time-limit USR1: ie-train stops with 143; ie-evaluate, which has no handler, ends with 138
        # (128 + USR1) and its outputs are written atomically. Either way the next attempt resumes or re-evaluates.
        if { [ "$rc" -eq 143 ] || [ "$rc" -eq 138 ]; } && [ "$requeue" -eq 1 ]; then
            echo "ie-submit job: stopped before the time limit; requeueing job $SLURM_JOB_ID"
            scontrol requeue "$SLURM_JOB_ID"
        fi
        exit "$rc"

        """
    }

    /// The batch script of the ensemble step of a cross-validation parent.
    public static func ensembleScript(parent: String, invocation: Invocation) -> String {
        """
        #!/bin/bash
        # Written by ie-submit: the cross-validation ensemble and CrossValResults, after every fold succeeded.
        export IE_SLURM_JOB=1
        exec \(invocation.tool("ie-crossval")) ensemble --run=\(quote(parent)) \(invocation.fixedArguments)

        """
    }

    /// Submits a plain run: one job.
    public static func submitRun(_ run: RunDirectory, options: SlurmJobOptions, invocation: Invocation) throws -> Submitted {
        let script = trainingScript(runExpression: quote(run.path), invocation: invocation, nodes: options.nodes)
        let id = try Slurm.submit(script: script, arguments: options.sbatchArguments(jobName: run.id, output: run.logs + "/slurm-%j.out"))
        try AtomicFile.write(script, to: run.logs + "/slurm-train.sh")
        try run.update { $0.slurmJobId = id; $0.status = .queued; $0.error = nil }
        return Submitted(trainingJob: id, ensembleJob: nil)
    }

    /// Submits a cross-validation: the children must exist. The array element k trains `<parent>_<k>`.
    public static func submitCrossValidation(parent: RunDirectory, children: [RunDirectory], options: SlurmJobOptions,
                                             invocation: Invocation) throws -> Submitted {
        let experimentDir = URL(fileURLWithPath: parent.path).deletingLastPathComponent().path
        let runExpression = quote(parent.path + "_") + "\"$SLURM_ARRAY_TASK_ID\""
        let foldScript = trainingScript(runExpression: runExpression, invocation: invocation, nodes: options.nodes)
        let arrayID = try Slurm.submit(script: foldScript, arguments: options.sbatchArguments(
            jobName: parent.id + "_folds", output: "\(experimentDir)/\(parent.id)_%a/logs/slurm-%A_%a.out",
            more: ["--array=0-\(children.count - 1)"]))
        let ensembleScript = ensembleScript(parent: parent.path, invocation: invocation)
        var ensembleOptions = options
        ensembleOptions.nodes = 1  // inference always runs on one node
        let ensembleID: String
        do {
            ensembleID = try Slurm.submit(script: ensembleScript, arguments: ensembleOptions.sbatchArguments(
                jobName: parent.id + "_ensemble", output: parent.logs + "/slurm-%j.out",
                more: ["--dependency=afterok:\(arrayID)", "--kill-on-invalid-dep=yes"]))
        } catch {
            Slurm.cancel(arrayID)
            throw error
        }
        try AtomicFile.write(foldScript, to: parent.logs + "/slurm-folds.sh")
        try AtomicFile.write(ensembleScript, to: parent.logs + "/slurm-ensemble.sh")
        for (k, child) in children.enumerated() {
            try child.update { $0.slurmJobId = "\(arrayID)_\(k)"; $0.status = .queued; $0.error = nil }
        }
        try parent.update { $0.slurmJobId = ensembleID; $0.status = .queued; $0.error = nil }
        return Submitted(trainingJob: arrayID, ensembleJob: ensembleID)
    }
}

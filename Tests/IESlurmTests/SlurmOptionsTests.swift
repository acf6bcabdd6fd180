import Foundation
import XCTest
import IESlurm
import IEConfig
import IECore
import IETrain

/// The pieces of ie-submit that need no cluster: time limits, sbatch options, batch scripts, the num_nodes checks.
final class SlurmOptionsTests: XCTestCase {
    func testTimeLimitsInEverySbatchFormat() {
        XCTAssertEqual(SlurmJobOptions.seconds(ofTimeLimit: "30"), 30 * 60)
        XCTAssertEqual(SlurmJobOptions.seconds(ofTimeLimit: "30:15"), 30 * 60 + 15)
        XCTAssertEqual(SlurmJobOptions.seconds(ofTimeLimit: "24:00:00"), 24 * 3600)
        XCTAssertEqual(SlurmJobOptions.seconds(ofTimeLimit: "2-12"), (2 * 24 + 12) * 3600)
        XCTAssertEqual(SlurmJobOptions.seconds(ofTimeLimit: "1-02:03"), ((24 + 2) * 60 + 3) * 60)
        XCTAssertEqual(SlurmJobOptions.seconds(ofTimeLimit: "1-02:03:04"), ((24 + 2) * 60 + 3) * 60 + 4)
        XCTAssertNil(SlurmJobOptions.seconds(ofTimeLimit: "UNLIMITED"))
        XCTAssertNil(SlurmJobOptions.seconds(ofTimeLimit: ""))
        XCTAssertNil(SlurmJobOptions.seconds(ofTimeLimit: "1:2:3:4"))
    }

    func testSbatchArgumentsFromSettingsAndCluster() {
        var settings = SlurmSettings()
        settings.partition = "gpu"
        settings.account = "lab"
        settings.time = "01:00:00"
        settings.cpusPerTask = 8
        settings.mem = "32G"
        settings.extra = ["--gres=gpu:1"]
        let options = SlurmJobOptions(settings: settings, cluster: "debug")
        XCTAssertEqual(options.partition, "debug", "--cluster wins over settings.yml")
        let arguments = options.sbatchArguments(jobName: "run1", output: "/r/logs/slurm-%j.out", more: ["--array=0-1"])
        XCTAssertEqual(arguments, ["--parsable", "--job-name=run1", "--output=/r/logs/slurm-%j.out", "--open-mode=append", "--requeue",
                                   "--signal=B:USR1@120", "--time=01:00:00", "--cpus-per-task=8", "--mem=32G",
                                   "--partition=debug", "--account=lab", "--gres=gpu:1", "--array=0-1"])
    }

    /// Requests are checked against what sinfo reports (`sinfo -h -N -o "%N|%P|%c|%m"`: one line per node and
    /// partition, `*` marking the default), before any submission; unset requests are left to the cluster.
    func testRequestsAreCheckedAgainstTheNodesSinfoReports() throws {
        let sinfo = "n1|debug*|2|23000\nn2|debug*|2|23000\ng1|gpu|16|64000\n"
        let cluster = SlurmPartitions(sinfoOutput: sinfo)
        XCTAssertEqual(cluster.names, ["debug", "gpu"])
        XCTAssertEqual(cluster.defaultPartition, "debug")
        XCTAssertEqual(cluster.nodes["debug"]?.map(\.cpus), [2, 2])
        XCTAssertEqual(SlurmPartitions.mebibytes(ofMemory: "64G"), 65536)
        XCTAssertEqual(SlurmPartitions.mebibytes(ofMemory: "500"), 500)
        XCTAssertEqual(SlurmPartitions.mebibytes(ofMemory: "1.5T"), 1_572_864)
        XCTAssertEqual(SlurmPartitions.mebibytes(ofMemory: "2048K"), 2)
        XCTAssertNil(SlurmPartitions.mebibytes(ofMemory: "lots"))

        // The shipped settings.yml asks for nothing: it fits any partition, the default one when none is named.
        let shipped = SlurmJobOptions(settings: SlurmSettings())
        XCTAssertNil(shipped.time); XCTAssertNil(shipped.cpusPerTask); XCTAssertNil(shipped.mem)
        XCTAssertNoThrow(try cluster.check(shipped))
        XCTAssertEqual(shipped.sbatchArguments(jobName: "j", output: "o").filter { $0.hasPrefix("--mem") || $0.hasPrefix("--cpus") || $0.hasPrefix("--time") }, [])

        var settings = SlurmSettings()
        settings.cpusPerTask = 16
        settings.mem = "62G"
        XCTAssertNoThrow(try cluster.check(SlurmJobOptions(settings: settings, cluster: "gpu")))
        settings.mem = "64G"   // 65536 MiB: more than the gpu node's 64000
        XCTAssertThrowsError(try cluster.check(SlurmJobOptions(settings: settings, cluster: "gpu")))
        // The case: 16 CPUs and 64G on a partition whose nodes have 2 CPUs and 23000 MiB.
        XCTAssertThrowsError(try cluster.check(SlurmJobOptions(settings: settings, cluster: "debug"))) { error in
            let text = (error as? IEError)?.description ?? ""
            XCTAssertEqual((error as? IEError)?.code, .usage)
            XCTAssertTrue(text.contains("16 CPUs per task (slurm.cpus_per_task)") && text.contains("64G of memory (slurm.mem)")
                          && text.contains("partition 'debug' has 2 nodes with at most 2 CPUs and 23000M"), text)
        }
        XCTAssertThrowsError(try cluster.check(SlurmJobOptions(settings: SlurmSettings(), cluster: "gpu", nodes: 2))) { error in
            XCTAssertTrue("\(error)".contains("num_nodes=2 nodes"), "\(error)")
        }
        XCTAssertNoThrow(try cluster.check(SlurmJobOptions(settings: SlurmSettings(), cluster: "debug", nodes: 2)))
        XCTAssertThrowsError(try cluster.check(SlurmJobOptions(settings: SlurmSettings(), cluster: "gpu2"))) { error in
            XCTAssertTrue("\(error)".contains("unknown partition 'gpu2' (closest: gpu)"), "\(error)")
        }
        XCTAssertThrowsError(try SlurmPartitions(sinfoOutput: "g1|gpu|16|64000\n").check(SlurmJobOptions(settings: SlurmSettings()))) { error in
            XCTAssertTrue("\(error)".contains("no default partition"), "\(error)")
        }
    }

    func testSignalMarginStaysBelowATenthOfShortTimeLimits() {
        var settings = SlurmSettings()
        settings.time = "10"            // 10 minutes: 60 s margin
        XCTAssertEqual(SlurmJobOptions(settings: settings).signalMarginSeconds, 60)
        settings.time = "1"             // 1 minute: never below 10 s
        XCTAssertEqual(SlurmJobOptions(settings: settings).signalMarginSeconds, 10)
        settings.time = "2-00:00:00"
        XCTAssertEqual(SlurmJobOptions(settings: settings).signalMarginSeconds, 120)
    }

    func testTrainingScriptForwardsSignalsResumesAndRequeues() {
        let invocation = SlurmSubmission.Invocation(binFolder: "/opt/ie", settingsFile: "/p/settings.yml", threads: 2)
        let script = SlurmSubmission.trainingScript(runExpression: "'/runs/e/p_'\"$SLURM_ARRAY_TASK_ID\"", invocation: invocation)
        XCTAssertTrue(script.hasPrefix("#!/bin/bash\n"))
        XCTAssertTrue(script.contains("export IE_SLURM_JOB=1"), "jobs never submit again")
        XCTAssertTrue(script.contains("run='/runs/e/p_'\"$SLURM_ARRAY_TASK_ID\""))
        XCTAssertTrue(script.contains("if [ \"${SLURM_RESTART_COUNT:-0}\" -gt 0 ]; then\n    echo \"ie-submit job: requeued"))
        XCTAssertTrue(script.contains("trap 'requeue=1; [ -n \"$child\" ] && kill -USR1 \"$child\" 2>/dev/null' USR1"))
        XCTAssertTrue(script.contains("trap '[ -n \"$child\" ] && kill -TERM \"$child\" 2>/dev/null' TERM"))
        XCTAssertTrue(script.contains("step '/opt/ie/ie-train' --run=\"$run\" --resume '--settings=/p/settings.yml' '--threads=2'\n"))
        // The agreed evaluation step after training (REDESIGN): ie-evaluate marks the run completed.
        XCTAssertTrue(script.contains("if [ \"$rc\" -eq 0 ]; then\n    step '/opt/ie/ie-evaluate' --run=\"$run\" --mark_completed "
                                      + "'--settings=/p/settings.yml' '--threads=2'\n"), script)
        XCTAssertTrue(script.contains("    \"$@\" &\n    child=$!\n    while kill -0 \"$child\" 2>/dev/null; do wait \"$child\"; done"))
        XCTAssertFalse(script.contains("srun"), "one node: ie-train runs in the batch step itself")
        XCTAssertTrue(script.contains("scontrol requeue \"$SLURM_JOB_ID\""))
        let ensemble = SlurmSubmission.ensembleScript(parent: "/runs/e/it's", invocation: invocation)
        XCTAssertTrue(ensemble.contains("exec '/opt/ie/ie-crossval' ensemble --run='/runs/e/it'\\''s' '--settings=/p/settings.yml' '--threads=2'"),
                      ensemble)
    }

    /// num_nodes=K: K whole nodes, one task each; training is an `srun --mpi=pmix` step over all of them, then
    /// evaluation runs on the batch node only. The ensemble job of a cross-validation stays on one node.
    func testMultiNodeJobsTakeWholeNodesAndTrainWithOneRankPerNode() {
        var settings = SlurmSettings()
        settings.cpusPerTask = 4
        let options = SlurmJobOptions(settings: settings, cluster: "debug", nodes: 3)
        let arguments = options.sbatchArguments(jobName: "run1", output: "/r/slurm-%j.out")
        XCTAssertEqual(Array(arguments.suffix(4)), ["--partition=debug", "--nodes=3", "--ntasks-per-node=1", "--exclusive"])
        XCTAssertTrue(arguments.contains("--requeue") && arguments.contains("--cpus-per-task=4"))
        XCTAssertFalse(SlurmJobOptions(settings: settings).sbatchArguments(jobName: "r", output: "o").contains { $0.hasPrefix("--nodes") })

        let invocation = SlurmSubmission.Invocation(binFolder: "/opt/ie", settingsFile: "/p/s.yml", threads: nil)
        let script = SlurmSubmission.trainingScript(runExpression: "'/runs/e/r'", invocation: invocation, nodes: 3)
        XCTAssertTrue(script.contains("""
        step srun --mpi=pmix --ntasks-per-node=1 --cpus-per-task="${SLURM_CPUS_ON_NODE:-1}" --kill-on-bad-exit=1 \\
            '/opt/ie/ie-train' --run="$run" --resume '--settings=/p/s.yml'
        rc=$?
        if [ "$rc" -eq 0 ]; then
            step '/opt/ie/ie-evaluate' --run="$run" --mark_completed '--settings=/p/s.yml'
        """), script)
        XCTAssertTrue(script.contains("export OMP_NUM_THREADS=$SLURM_CPUS_ON_NODE"), "a rank uses every core of its node")
        XCTAssertEqual(script.components(separatedBy: "srun ").count, 2, "one srun step: training; evaluation runs on one node")
        XCTAssertTrue(script.contains("scontrol requeue \"$SLURM_JOB_ID\""))
    }

    /// num_nodes > 1 needs MPI, and ie-train launched as MPI ranks (by hand, or a job's srun step); slurm=true
    /// and a cross-validation parent are refused by ie-train, which trains one run here.
    func testTrainingChecksNumNodesSlurmAndParents() throws {
        func config(_ flags: [String]) throws -> ModelConfig { try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(flags)) }
        let two = try config(["--num_nodes=2"])
        XCTAssertNoThrow(try RunTraining.checkNumNodes(try config(["--num_nodes=1"]), environment: [:]))
        for environment in [["IE_SLURM_JOB": "1"], ["OMPI_COMM_WORLD_SIZE": "2"], ["PMIX_RANK": "1", "SLURM_NTASKS": "2"]] {
            if RunTraining.builtWithOpenMPI {
                XCTAssertNoThrow(try RunTraining.checkNumNodes(two, environment: environment), "\(environment)")
            } else {
                XCTAssertThrowsError(try RunTraining.checkNumNodes(two, environment: environment)) {
                    XCTAssertTrue("\($0)".contains("libopenmpi-dev"), "\($0)")
                }
            }
        }
        XCTAssertThrowsError(try RunTraining.checkNumNodes(two, environment: ["PATH": "/usr/bin"])) { error in
            XCTAssertEqual((error as? IEError)?.code, .usage)
            XCTAssertTrue("\(error)".contains("num_nodes=2") && "\(error)".contains("ie-submit"), "\(error)")
        }
        XCTAssertThrowsError(try RunTraining.checkNodeCount(0)) { XCTAssertEqual(($0 as? IEError)?.code, .usage) }
    }

    /// The scripts are valid bash (bash -n).
    func testScriptsParseAsBash() throws {
        let invocation = SlurmSubmission.Invocation(binFolder: "/opt/ie", settingsFile: nil, threads: nil)
        for script in [SlurmSubmission.trainingScript(runExpression: "'/r'", invocation: invocation),
                       SlurmSubmission.trainingScript(runExpression: "'/r'", invocation: invocation, nodes: 2),
                       SlurmSubmission.ensembleScript(parent: "/r", invocation: invocation)] {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("ie-script-\(UUID().uuidString).sh")
            try script.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let bash = Process()
            bash.executableURL = URL(fileURLWithPath: "/bin/bash")
            bash.arguments = ["-n", file.path]
            try bash.run()
            bash.waitUntilExit()
            XCTAssertEqual(bash.terminationStatus, 0, script)
        }
    }
    /// A Slurm client tool that does not answer (a controller down, a hung NFS home) is stopped after the time
    /// limit and reported naming the tool and IE_SLURM_TIMEOUT, instead of hanging ie-submit or a cron job for good;
    /// sbatch's message warns that the job may still have been queued. A tool that answers in time is unaffected.
    func testAHungSlurmToolIsStoppedAfterTheTimeLimit() throws {
        let folder = NSTemporaryDirectory() + "ie-slurm-timeout-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        for (tool, body) in [("sinfo", "sleep 60"), ("sbatch", "exec sleep 60"), ("squeue", "echo 42")] {
            let path = folder + "/" + tool
            try "#!/bin/sh\n\(body)\n".write(toFile: path, atomically: false, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }
        let oldPath = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        setenv("PATH", folder + ":" + oldPath, 1)
        defer { setenv("PATH", oldPath, 1) }
        for tool in ["sinfo", "sbatch"] {
            let start = Date()
            XCTAssertThrowsError(try Slurm.run(tool, [], timeout: 1)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("\(tool) did not answer within 1 s"), text)
                XCTAssertTrue(text.contains("IE_SLURM_TIMEOUT"), text)
                XCTAssertEqual(text.contains("may still have been queued"), tool == "sbatch", text)
            }
            XCTAssertLessThan(Date().timeIntervalSince(start), 15, "\(tool) was not stopped")
        }
        let answered = try Slurm.run("squeue", [], timeout: 5)
        XCTAssertEqual(answered.status, 0)
        XCTAssertEqual(answered.stdout, "42\n")
    }
}

import Foundation
import XCTest

/// The local Slurm cluster of tools/start-local-slurm.sh, started when sbatch is missing or the controller does
/// not answer (root only), and stopped after the tests if they started it. The tests start it as 2 nodes on this
/// machine (SLURM_LOCAL_NODES=2, the CPUs split between them), so that multi-node jobs run too.
enum LocalSlurm {
    nonisolated(unsafe) static var startedByTests = false

    static func responding() -> Bool {
        guard let result = try? HPCTest.run("sinfo", ["-h", "-o", "%t"]), result.status == 0 else { return false }
        return result.stdout.split(separator: "\n").contains { ["idle", "mix", "alloc"].contains(String($0)) }
    }

    static func ensureRunning() throws {
        if responding() { return }
        guard getuid() == 0 else {
            throw XCTSkip("no responding Slurm cluster and not root: tools/start-local-slurm.sh needs root to install and start one")
        }
        var environment = ProcessInfo.processInfo.environment
        environment["SLURM_LOCAL_NODES"] = "2"
        var start = try HPCTest.run(HPCTest.checkout + "/tools/start-local-slurm.sh", [], environment: environment)
        if start.status != 0 && start.stderr.contains("needs a private mount namespace") {
            // A system without mount namespaces (a chroot) runs one node: the 2-node test then skips and says why.
            environment["SLURM_LOCAL_NODES"] = "1"
            start = try HPCTest.run(HPCTest.checkout + "/tools/start-local-slurm.sh", [], environment: environment)
        }
        guard start.status == 0, start.stdout.contains("slurm ready") else {
            throw IEStringError("tools/start-local-slurm.sh failed (\(start.status)): \(start.stderr.suffix(1500))")
        }
        startedByTests = true
    }

    /// Nodes of the partition `debug` (0 when sinfo does not answer).
    static func nodeCount() -> Int {
        guard let result = try? HPCTest.run("sinfo", ["-h", "-p", "debug", "-o", "%D"]), result.status == 0 else { return 0 }
        return Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    }

    /// Waits until no slurmstepd of `job` is left on this machine. A step's daemons tear down for a few seconds
    /// after the job is requeued; Slurm's own delay (cred_expire) covers that, but a test that starts the
    /// requeued job at once would find the old step's PMIx socket still there.
    static func waitForStepDaemons(of job: String, timeout: TimeInterval = 30) {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline && processRunning(commandContaining: "slurmstepd: [\(job).") {
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    /// Whether a process of this machine has a command line (arguments joined by spaces) containing `text`; read
    /// from /proc, so that the tests need no procps.
    static func processRunning(commandContaining text: String) -> Bool {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.contains { pid in
            guard pid.allSatisfy(\.isNumber), let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
            return String(decoding: bytes.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self).contains(text)
        }
    }

    /// Waits for the first autosave of `run` (training is under way), then interrupts `job`.
    static func interruptAfterFirstAutosave(run: String, job: String, _ interrupt: (String) throws -> Void) throws {
        let autosave = run + "/outputs/checkpoints/autosave.ckpt"
        let deadline = Date().addingTimeInterval(180)
        while !FileManager.default.fileExists(atPath: autosave) {
            guard Date() < deadline else { throw IEStringError("no autosave in \(run) after 180 s") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        try interrupt(job)
    }

    /// A requeued job waits cred_expire+1 s before it may run again; once it is PENDING (and the old step's
    /// daemons are gone), StartTime=now lets it run at once.
    static func startRequeuedJobNow(_ job: String) {
        let pendingDeadline = Date().addingTimeInterval(30)
        while state(job) != "PENDING" && Date() < pendingDeadline { Thread.sleep(forTimeInterval: 0.1) }
        Thread.sleep(forTimeInterval: 2.5)
        waitForStepDaemons(of: job)
        _ = try? HPCTest.run("scontrol", ["update", "JobId=\(job)", "StartTime=now"])
    }

    static func stopIfStarted() {
        guard startedByTests else { return }
        _ = try? HPCTest.run(HPCTest.checkout + "/tools/stop-local-slurm.sh", [])
        startedByTests = false
    }

    /// Jobs (ids or `<array>_<k>`) still pending or running; nil when squeue did not answer (a busy controller
    /// can time out: that must not look like "all done").
    static func active(_ ids: [String]) -> [String]? {
        guard let result = try? HPCTest.run("squeue", ["-h", "-r", "-o", "%i|%T", "-j", ids.joined(separator: ",")]),
              result.status == 0 else { return nil }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    static func state(_ id: String) -> String? {
        active([id])?.first.flatMap { $0.split(separator: "|").last.map(String.init) }
    }

    /// Polls squeue every 0.2 s (sbatch --wait polls far more coarsely) until none of `ids` is queued or running.
    static func waitUntilDone(_ ids: [String], timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while active(ids)?.isEmpty != true {
            if Date() > deadline {
                throw IEStringError("Slurm jobs \(ids) still queued after \(Int(timeout)) s: \(active(ids) ?? ["squeue does not answer"])")
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
    }
}

/// A bad ie-submit set-up is one clear error with exit status 2, and nothing in the runs folder changes.
final class SlurmSetupErrorTests: XCTestCase {
    override class func tearDown() {
        LocalSlurm.stopIfStarted()
        super.tearDown()
    }

    func testNoSbatchOnPathIsOneUsageErrorAndWritesNothing() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject()
        defer { try? FileManager.default.removeItem(atPath: project) }
        let parent = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2"])
        let before = HPCTest.snapshot(project)
        let emptyPath = project + "/empty-bin"
        try FileManager.default.createDirectory(atPath: emptyPath, withIntermediateDirectories: true)
        let result = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings.yml", "--run=\(parent)"],
                                     in: project, environment: ["PATH": emptyPath, "HOME": project])
        XCTAssertEqual(result.status, 2, result.stderr)
        let lines = result.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one error line:\n\(result.stderr)")
        XCTAssertTrue(result.stderr.hasPrefix("ie-submit: error:") && result.stderr.contains("sbatch is not on PATH"), result.stderr)
        var after = HPCTest.snapshot(project)
        after["empty-bin"] = before["empty-bin"]
        HPCTest.assertOnlyMarkedFailed(parent: parent, project: project, before: before, after: after, reason: "sbatch is not on PATH")
    }

    /// --num_nodes above 1 trains through ie-submit (or as MPI ranks someone launched): ie-train alone refuses it
    /// before anything is written, and so is a job that needs more nodes than the partition has.
    func testNumNodesWithoutSlurmOrBeyondThePartitionIsOneUsageErrorAndWritesNothing() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject()
        defer { try? FileManager.default.removeItem(atPath: project) }
        let run = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments)
        let before = HPCTest.snapshot(project)
        let result = try HPCTest.run(bin + "/ie-train", ["--settings=\(project)/settings.yml", "--run=\(run)", "--num_nodes=2"], in: project)
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("num_nodes=2") && result.stderr.contains("expected ie-submit"), result.stderr)
        XCTAssertEqual(HPCTest.snapshot(project), before, "nothing written or changed")

        try LocalSlurm.ensureRunning()
        let tooMany = LocalSlurm.nodeCount() + 1
        let beyond = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings.yml", "--run=\(run)", "--num_nodes=\(tooMany)"],
                                     in: project)
        XCTAssertEqual(beyond.status, 2, beyond.stderr)
        XCTAssertEqual(beyond.stderr.split(separator: "\n").count, 1, beyond.stderr)
        XCTAssertTrue(beyond.stderr.contains("num_nodes=\(tooMany)"), beyond.stderr)
        HPCTest.assertOnlyMarkedFailed(parent: run, project: project, before: before, after: HPCTest.snapshot(project),
                                       reason: "num_nodes=\(tooMany)")
    }

    func testUnknownPartitionIsOneUsageErrorAndWritesNothing() throws {
        try LocalSlurm.ensureRunning()
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject()
        defer { try? FileManager.default.removeItem(atPath: project) }
        let parent = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2"])
        let before = HPCTest.snapshot(project)
        for flags in [["--cluster=nosuchpartition"], ["--cluster", "nosuchpartition"]] {
            let result = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings.yml", "--run=\(parent)"] + flags, in: project)
            XCTAssertEqual(result.status, 2, result.stderr)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "one error line:\n\(result.stderr)")
            XCTAssertTrue(result.stderr.contains("unknown partition 'nosuchpartition'") && result.stderr.contains("debug"), result.stderr)
        }
        HPCTest.assertOnlyMarkedFailed(parent: parent, project: project, before: before, after: HPCTest.snapshot(project),
                                       reason: "unknown partition 'nosuchpartition'")
        // The settings' partition is used when there is no --cluster (settings.yml of the test says debug: change it).
        let settings = try String(contentsOfFile: project + "/settings.yml", encoding: .utf8)
        try settings.replacingOccurrences(of: "partition: debug", with: "partition: gpu")
            .write(toFile: project + "/settings-gpu.yml", atomically: true, encoding: .utf8)
        let result = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings-gpu.yml", "--run=\(parent)"], in: project)
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("unknown partition 'gpu'"), result.stderr)

        // Requests no node of the partition can hold (here far more memory and CPUs than the node has): checked
        // against sinfo, one message naming what was asked and what the partition has.
        for (asked, field) in [("mem: 100000G", "slurm.mem"), ("cpus_per_task: 4096", "slurm.cpus_per_task")] {
            let key = asked.hasPrefix("mem") ? "mem: 1G" : "cpus_per_task: 1"
            try settings.replacingOccurrences(of: key, with: asked).write(toFile: project + "/settings-big.yml", atomically: true, encoding: .utf8)
            let big = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings-big.yml", "--run=\(parent)"], in: project)
            XCTAssertEqual(big.status, 2, big.stderr)
            XCTAssertEqual(big.stderr.split(separator: "\n").count, 1, "one error line:\n\(big.stderr)")
            XCTAssertTrue(big.stderr.contains(field) && big.stderr.contains("partition 'debug' has"), big.stderr)
        }
        var after = HPCTest.snapshot(project)
        after["settings-gpu.yml"] = nil
        after["settings-big.yml"] = nil
        HPCTest.assertOnlyMarkedFailed(parent: parent, project: project, before: before, after: after, reason: "slurm.cpus_per_task")
    }
}

/// Runs on the real local cluster: a cross-validation as a job array + afterok job, and a requeue in mid-training.
final class SlurmClusterTests: XCTestCase {
    override class func tearDown() {
        LocalSlurm.stopIfStarted()
        super.tearDown()
    }

    func testSlurmCrossValidationArrayAndEnsembleJob() throws {
        try LocalSlurm.ensureRunning()
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject()
        defer { try? FileManager.default.removeItem(atPath: project) }
        let parent = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2"])
        let submit = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings.yml", "--run=\(parent)",
                                                          "--cluster=debug", "--threads=1"], in: project)
        XCTAssertEqual(submit.status, 0, submit.stderr)
        let ids = submit.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        XCTAssertEqual(ids.count, 2, "array and ensemble job ids: \(submit.stdout)")
        guard ids.count == 2 else { return }
        let (array, ensemble) = (ids[0], ids[1])
        // Recorded at submission (a running job later records its own SLURM_JOB_ID).
        XCTAssertEqual(try HPCTest.json(parent + "/run.json")["slurm_job_id"] as? String, ensemble)
        for k in 0..<2 {
            XCTAssertEqual(try HPCTest.json("\(parent)_\(k)/run.json")["slurm_job_id"] as? String, "\(array)_\(k)")
        }
        XCTAssertFalse(((try? String(contentsOfFile: "\(parent)_0/outputs/config_overrides.txt", encoding: .utf8)) ?? "").contains("cluster"),
                       "the submission's --cluster is not recorded in the runs")

        try LocalSlurm.waitUntilDone([array, ensemble], timeout: 300)
        for k in 0..<2 {
            let child = "\(parent)_\(k)"
            XCTAssertEqual(try HPCTest.json(child + "/run.json")["status"] as? String, "completed", "fold \(k)")
            let log = child + "/logs/slurm-\(array)_\(k).out"
            XCTAssertTrue(FileManager.default.fileExists(atPath: log), "the fold's Slurm log is in its logs/")
            XCTAssertTrue(FileManager.default.fileExists(atPath: child + "/outputs/epoch_002/Test/metrics.csv"))
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: parent + "/logs/slurm-\(ensemble).out"))
        XCTAssertEqual(try HPCTest.json(parent + "/run.json")["status"] as? String, "completed",
                       (try? String(contentsOfFile: parent + "/logs/slurm-\(ensemble).out", encoding: .utf8)) ?? "")
        for file in ["MetricsAcrossAllRuns.csv", "Dice_Test_Splits.png", "Val_outliers.txt", "Test_outliers.txt",
                     "CrossValidationWilcoxonSignedRankTestResults.txt", "CrossValidationMannWhitneyTestResults.txt",
                     "ENSEMBLE/epoch_002/Test/metrics.csv", "1/epoch_002/Val/metrics.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: parent + "/outputs/CrossValResults/" + file), file)
        }
        let status = try HPCTest.run(bin + "/ie-status", [parent])
        XCTAssertEqual(status.status, 0, status.stderr)
        XCTAssertEqual(status.stdout.split(separator: "\n").filter { $0.contains("completed") }.count, 3, status.stdout)
    }

    /// The same run trained and evaluated by one Slurm job (ie-submit: ie-train, then ie-evaluate --mark_completed)
    /// and here (ie-train, then ie-evaluate, as make train does) ends with the same files under outputs/, and the
    /// same bytes in each (same seed, split and thread count), apart from the report, which names its run (id, times),
    /// and the training logs' seconds column.
    func testSlurmAndLocalRunsEndWithTheSameFiles() throws {
        try LocalSlurm.ensureRunning()
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject()
        defer { try? FileManager.default.removeItem(atPath: project) }
        let slurm = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments)
        let local = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments)
        let settings = "--settings=\(project)/settings.yml"
        let submit = try HPCTest.run(bin + "/ie-submit", [settings, "--run=\(slurm)", "--cluster=debug", "--threads=1"], in: project)
        XCTAssertEqual(submit.status, 0, submit.stderr)
        for (tool, extra) in [("ie-train", [String]()), ("ie-evaluate", ["--mark_completed"])] {
            let result = try HPCTest.run(bin + "/" + tool, [settings, "--run=\(local)", "--threads=1"] + extra, in: project)
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        try LocalSlurm.waitUntilDone([submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)], timeout: 300)
        let fm = FileManager.default
        func files(_ run: String) -> [String] {
            (fm.enumerator(atPath: run + "/outputs")?.allObjects as? [String] ?? [])
                .filter { var d: ObjCBool = false; return fm.fileExists(atPath: run + "/outputs/" + $0, isDirectory: &d) && !d.boolValue }
                .sorted()
        }
        let slurmFiles = files(slurm), localFiles = files(local)
        XCTAssertEqual(slurmFiles, localFiles)
        XCTAssertTrue(localFiles.contains("epoch_002/Test/Test_outliers.txt") && localFiles.contains("report.html"), "\(localFiles)")
        // epoch_metrics.csv's `seconds` column is the one time-dependent field of the training logs.
        func withoutSeconds(_ path: String) -> [[Substring]] {
            let rows = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            guard let column = rows.first?.firstIndex(of: "seconds") else { return rows }
            return rows.map { row in row.enumerated().filter { $0.offset != column }.map(\.element) }
        }
        for file in localFiles where !file.hasPrefix("report.") {
            if file.hasSuffix("epoch_metrics.csv") {
                XCTAssertEqual(withoutSeconds(slurm + "/outputs/" + file), withoutSeconds(local + "/outputs/" + file), file)
                continue
            }
            XCTAssertEqual(fm.contents(atPath: slurm + "/outputs/" + file), fm.contents(atPath: local + "/outputs/" + file), file)
        }
        XCTAssertEqual(try HPCTest.json(slurm + "/run.json")["status"] as? String, "completed")
    }

    /// A classification run submitted to Slurm (SPEC §13: the same ie-train + ie-evaluate job) trains, evaluates and
    /// writes its report like a segmentation run.
    func testSlurmTrainsAndEvaluatesAClassificationRun() throws {
        try LocalSlurm.ensureRunning()
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject()
        defer { try? FileManager.default.removeItem(atPath: project) }
        let synth = try HPCTest.run(bin + "/ie-synth", ["--output_folder=\(project)/datasets/HelloClassification",
                                                        "--kind=classification", "--subjects=24", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try HPCTest.run(bin + "/ie-split", ["--settings=\(project)/settings.yml", "--model=HelloClassification",
                                                        "--num_epochs=2"], in: project)
        XCTAssertEqual(split.status, 0, split.stderr)
        let run = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let submit = try HPCTest.run(bin + "/ie-submit", ["--settings=\(project)/settings.yml", "--run=\(run)", "--cluster=debug",
                                                          "--threads=1"], in: project)
        XCTAssertEqual(submit.status, 0, submit.stderr)
        try LocalSlurm.waitUntilDone([submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)], timeout: 300)
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["status"] as? String, "completed")
        for file in ["checkpoints/epoch_002.ckpt", "Val/model_outputs.csv", "epoch_002/Test/model_outputs.csv",
                     "epoch_002/Test/metrics.csv", "report.html"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/" + file), file)
        }
    }

    /// `scontrol requeue` while the job trains: the job comes back with SLURM_RESTART_COUNT=1, resumes from its
    /// autosave, and its final weights equal an uninterrupted run's (same seed, split and thread count) bit for bit.
    func testRequeueMidTrainingResumesToIdenticalWeights() throws {
        try interruptedJobEndsWithUninterruptedWeights(interruption: "scontrol requeue") { job in
            let requeue = try HPCTest.run("scontrol", ["requeue", job])
            XCTAssertEqual(requeue.status, 0, requeue.stderr)
        }
    }

    /// The time-limit path: Slurm's `--signal=B:USR1@margin` reaches the batch shell (here sent at once with
    /// `scancel --batch --signal=USR1`), ie-train writes its autosave and exits 143, the job requeues itself and resumes.
    func testTimeLimitSignalRequeuesAndResumesToIdenticalWeights() throws {
        try interruptedJobEndsWithUninterruptedWeights(interruption: "USR1 to the batch shell", expectSelfRequeue: true) { job in
            let signal = try HPCTest.run("scancel", ["--batch", "--signal=USR1", job])
            XCTAssertEqual(signal.status, 0, signal.stderr)
        }
    }

    /// The time-limit signal can also come while the job evaluates: ie-evaluate has no handler and ends with status
    /// 138 (128 + USR1); the job requeues itself all the same, and the second attempt (training already complete)
    /// evaluates and completes the run.
    func testTimeLimitSignalDuringEvaluationRequeuesAndCompletes() throws {
        try LocalSlurm.ensureRunning()
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 24)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let settings = "--settings=\(project)/settings.yml"
        let run = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments)
        let train = try HPCTest.run(bin + "/ie-train", [settings, "--run=\(run)", "--threads=1", "--quiet"], in: project)
        XCTAssertEqual(train.status, 0, train.stderr)
        let submit = try HPCTest.run(bin + "/ie-submit", [settings, "--run=\(run)", "--cluster=debug", "--threads=1"], in: project)
        XCTAssertEqual(submit.status, 0, submit.stderr)
        let job = submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // The job's ie-train finds training complete at once; signal while its ie-evaluate runs.
        let deadline = Date().addingTimeInterval(120)
        while !LocalSlurm.processRunning(commandContaining: "ie-evaluate --run=\(run)") {
            guard Date() < deadline else { throw IEStringError("job \(job) never ran ie-evaluate") }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let signal = try HPCTest.run("scancel", ["--batch", "--signal=USR1", job])
        XCTAssertEqual(signal.status, 0, signal.stderr)
        LocalSlurm.startRequeuedJobNow(job)
        try LocalSlurm.waitUntilDone([job], timeout: 300)
        let slurmLog = (try? String(contentsOfFile: run + "/logs/slurm-\(job).out", encoding: .utf8)) ?? ""
        let context = String(slurmLog.suffix(2000))
        XCTAssertTrue(slurmLog.contains("stopped before the time limit; requeueing job \(job)"), context)
        XCTAssertTrue(slurmLog.contains("requeued (restart 1)"), context)
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["status"] as? String, "completed", context)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/epoch_002/Test/metrics.csv"), context)
    }

    func interruptedJobEndsWithUninterruptedWeights(interruption: String, expectSelfRequeue: Bool = false,
                                                    interrupt: (String) throws -> Void) throws {
        try LocalSlurm.ensureRunning()
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 12)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let epochs = 8
        let arguments = ["--num_epochs=\(epochs)", "--crop_size=16,48,48", "--test_crop_size=16,48,48", "--train_batch_size=1",
                         "--epochs_to_test=\(epochs)", "--no-inference_on_val_set"]
        let settings = "--settings=\(project)/settings.yml"
        let (requeued, reference, job) = try submitWithTwin(project: project, arguments: arguments, submission: ["--cluster=debug"])

        // Requeue once the first epoch's autosave exists and training is still going.
        try LocalSlurm.interruptAfterFirstAutosave(run: requeued, job: job, interrupt)
        let trainedBeforeRequeue = try epochRows(requeued)
        XCTAssertLessThan(trainedBeforeRequeue, epochs, "the \(interruption) came before training finished")

        LocalSlurm.startRequeuedJobNow(job)

        // Meanwhile the uninterrupted reference run, here, with the same thread count.
        let local = try HPCTest.run(bin + "/ie-train", [settings, "--run=\(reference)", "--threads=1", "--quiet"], in: project)
        XCTAssertEqual(local.status, 0, local.stderr)
        try LocalSlurm.waitUntilDone([job], timeout: 300)

        let slurmLog = (try? String(contentsOfFile: requeued + "/logs/slurm-\(job).out", encoding: .utf8)) ?? ""
        XCTAssertTrue(slurmLog.contains("requeued (restart 1)"), "the job ran again with SLURM_RESTART_COUNT=1:\n\(slurmLog.suffix(2000))")
        if expectSelfRequeue {
            XCTAssertTrue(slurmLog.contains("stopped before the time limit; requeueing job \(job)"), slurmLog.suffix(2000).description)
        }
        let trainLog = (try? String(contentsOfFile: requeued + "/logs/ie-train.log", encoding: .utf8)) ?? ""
        XCTAssertTrue(trainLog.contains("resuming from"), "the second attempt resumed from the autosave")
        XCTAssertEqual(try HPCTest.json(requeued + "/run.json")["status"] as? String, "completed", slurmLog.suffix(1500).description)
        XCTAssertEqual(try epochRows(requeued), epochs)

        let name = String(format: "epoch_%03d.ckpt", epochs)
        let a = try HPCTest.checkpointTensors(requeued + "/outputs/checkpoints/" + name)
        let b = try HPCTest.checkpointTensors(reference + "/outputs/checkpoints/" + name)
        XCTAssertGreaterThan(a.tensors.count, 100_000)
        XCTAssertTrue(a.tensors == b.tensors, "final weights and optimizer state equal bit for bit")
        let tensorNames = a.header.keys.filter { $0 != "__metadata__" }.sorted()
        XCTAssertEqual(tensorNames, b.header.keys.filter { $0 != "__metadata__" }.sorted())
        XCTAssertTrue(FileManager.default.fileExists(atPath: requeued + "/outputs/epoch_\(String(format: "%03d", epochs))/Test/metrics.csv"),
                      "the job evaluated after training")
    }

    /// `ie-submit --num_nodes=2` on the 2-node local cluster: one job, training as an `srun --mpi=pmix` step with one
    /// rank on each node, stopped mid-training by the time-limit signal, requeued and resumed, then evaluated on
    /// one node. Its final weights and optimizer state equal bit for bit those of an uninterrupted 2-rank run
    /// started with mpirun here (same seed, shards and threads); DataParallelTests relates 2 ranks to 1 process.
    func testTwoNodeJobTrainsDataParallelResumesAndEvaluatesOnOneNode() throws {
        try LocalSlurm.ensureRunning()
        guard LocalSlurm.nodeCount() >= 2 else {
            throw XCTSkip("the running Slurm cluster has one node; stop it (tools/stop-local-slurm.sh) and the tests start a 2-node one")
        }
        let mpirun = "/usr/bin/mpirun"
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: mpirun), "tools/start-local-slurm.sh installs openmpi-bin")
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 12)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let epochs = 8
        let arguments = ["--num_epochs=\(epochs)", "--crop_size=16,32,32", "--test_crop_size=16,48,48", "--train_batch_size=2",
                         "--epochs_to_test=\(epochs)"]
        let settings = "--settings=\(project)/settings.yml"
        let (multiNode, reference, job) = try submitWithTwin(project: project, arguments: arguments, submission: ["--num_nodes=2"])
        try LocalSlurm.interruptAfterFirstAutosave(run: multiNode, job: job) { job in
            let signal = try HPCTest.run("scancel", ["--batch", "--signal=USR1", job])
            XCTAssertEqual(signal.status, 0, signal.stderr)
        }
        XCTAssertLessThan(try epochRows(multiNode), epochs, "the signal came before training finished")
        LocalSlurm.startRequeuedJobNow(job)

        // Meanwhile the uninterrupted reference: 2 ranks under mpirun on this machine.
        let local = try HPCTest.run(mpirun, ["--allow-run-as-root", "--oversubscribe", "-np", "2", bin + "/ie-train", settings,
                                             "--run=\(reference)", "--threads=1", "--quiet"], in: project)
        XCTAssertEqual(local.status, 0, local.stderr)
        try LocalSlurm.waitUntilDone([job], timeout: 300)

        let slurmLog = (try? String(contentsOfFile: multiNode + "/logs/slurm-\(job).out", encoding: .utf8)) ?? ""
        let context = String(slurmLog.suffix(3000))
        XCTAssertEqual(try HPCTest.json(multiNode + "/run.json")["status"] as? String, "completed", context)
        XCTAssertTrue(slurmLog.contains("stopped before the time limit; requeueing job \(job)"), context)
        XCTAssertTrue(slurmLog.contains("requeued (restart 1)"), context)
        // Both attempts ran one rank on each of two different nodes.
        let nodes = slurmLog.split(separator: "\n").compactMap { line -> String? in
            guard let range = line.range(of: " of 2 on node ") else { return nil }
            return String(line[range.upperBound...].prefix(while: { $0 != "," }))
        }
        XCTAssertEqual(nodes.count, 4, context)
        XCTAssertEqual(Set(nodes).count, 2, "ranks on two nodes: \(nodes)")
        XCTAssertTrue(slurmLog.contains("[rank 1] data parallel: rank 1 of 2"), context)
        XCTAssertEqual(try epochRows(multiNode), epochs)
        for mode in ["Val", "Test"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: multiNode + "/outputs/epoch_008/\(mode)/metrics.csv"), mode)
        }
        XCTAssertEqual(slurmLog.components(separatedBy: "ie-metrics: Test epoch 8").count - 1, 1, "evaluated once, on one node")

        let name = String(format: "epoch_%03d.ckpt", epochs)
        let a = try HPCTest.checkpointTensors(multiNode + "/outputs/checkpoints/" + name)
        let b = try HPCTest.checkpointTensors(reference + "/outputs/checkpoints/" + name)
        XCTAssertGreaterThan(a.tensors.count, 100_000)
        XCTAssertTrue(a.tensors == b.tensors, "2-node job (signalled, requeued, resumed) == uninterrupted 2-rank mpirun, bit for bit")
        XCTAssertEqual(a.header.keys.sorted(), b.header.keys.sorted())
    }

    /// Two runs split alike; the first is submitted with `ie-submit --threads=1` + `submission`, the second is
    /// left for an uninterrupted reference. Returns both folders and the job id.
    func submitWithTwin(project: String, arguments: [String], submission: [String]) throws
        -> (submitted: String, reference: String, job: String) {
        let submitted = try HPCTest.split(project: project, arguments: arguments)
        let reference = try HPCTest.split(project: project, arguments: arguments)
        let submit = try HPCTest.run(try HPCTest.binFolder() + "/ie-submit",
                                     ["--settings=\(project)/settings.yml", "--run=\(submitted)", "--threads=1"] + submission,
                                     in: project)
        guard submit.status == 0 else { throw IEStringError("ie-submit failed (\(submit.status)): \(submit.stderr)") }
        return (submitted, reference, submit.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    func epochRows(_ run: String) throws -> Int {
        let path = run + "/outputs/Train/epoch_metrics.csv"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        return max(0, text.split(separator: "\n").count - 1)
    }
}

import Foundation
import XCTest
import IERun

/// What scripts and cron jobs rely on (SPEC §1.3, §8, §10, §11): exit codes and streams, `--version`, one bounded
/// squeue call in ie-status, and nothing left behind when a signal stops a tool that draws plots.
final class ScriptingContractTests: XCTestCase {
    static let tools = ["split", "train", "infer", "ensemble", "evaluate", "metrics", "stats", "report", "synth", "models",
                        "crossval", "submit", "status"]

    /// Every tool answers `--version` with `ie-<tool> <version>` on stdout and exit 0, also where every other
    /// argument is a model parameter (ie-split, ie-train: a parameter `version` does not exist).
    func testVersionOnEveryTool() throws {
        let runner = try ToolRunner(name: "version")
        defer { runner.remove() }
        var commands = Self.tools.map { ($0, ["--version"]) }
        commands += [("train", ["--run=no/such/run", "--version"]), ("split", ["--model=HelloWorld", "--num_epochs=2", "--version"]),
                     ("stats", ["wilcoxon", "--version"])]
        for (tool, arguments) in commands {
            let result = try runner.run(tool, arguments)
            XCTAssertEqual(result.status, 0, "ie-\(tool) \(arguments): \(result.stderr)")
            XCTAssertEqual(result.stdout, "ie-\(tool) 0.1.0\n", "ie-\(tool) \(arguments)")
            XCTAssertEqual(result.stderr, "", "ie-\(tool) \(arguments)")
        }
        XCTAssertFalse(runner.exists("runs"), "ie-split --version makes no run")
    }

    /// A tool with subcommands given none is a usage error (exit 2, one line on stderr naming them); --help is not.
    func testMissingSubcommandIsAUsageError() throws {
        let runner = try ToolRunner(name: "subcommand")
        defer { runner.remove() }
        for (tool, first) in [("stats", "aggregate"), ("metrics", "run")] {
            let missing = try runner.run(tool, [])
            XCTAssertEqual(missing.status, 2, "ie-\(tool): \(missing.stderr)")
            XCTAssertEqual(missing.stdout, "")
            XCTAssertTrue(missing.stderr.hasPrefix("ie-\(tool): error: ") && missing.stderr.contains(first)
                          && missing.stderr.contains(", expected") && missing.stderr.split(separator: "\n").count == 1, missing.stderr)
            let help = try runner.run(tool, ["--help"])
            XCTAssertEqual(help.status, 0, help.stderr)
            XCTAssertTrue(help.stdout.contains("USAGE:"), help.stdout)
        }
    }

    static let metricsHeader = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n"

    /// `ie-stats wilcoxon` compares runs: inputs holding fewer than two are exit 2 naming what was found. The
    /// "not enough data points" sentence ends its line on stdout, while `-o FILE` keeps InnerEye's file bytes
    /// (written without a newline: SPEC §8).
    func testWilcoxonNeedsTwoRunsAndEndsItsLineOnStdout() throws {
        let runner = try ToolRunner(name: "wilcoxon")
        defer { runner.remove() }
        let rows = (1...3).map { "\($0),lung,0.\($0 + 5),1.0,0.5\n" }.joined()
        try (Self.metricsHeader + rows).write(toFile: runner.path("a.csv"), atomically: true, encoding: .utf8)
        try (Self.metricsHeader + rows).write(toFile: runner.path("b.csv"), atomically: true, encoding: .utf8)
        let one = try runner.run("stats", ["wilcoxon", "a.csv"])
        XCTAssertEqual(one.status, 2, one.stderr)
        XCTAssertEqual(one.stdout, "")
        XCTAssertTrue(one.stderr.hasPrefix("ie-stats: error: ") && one.stderr.contains("one run (a.csv)")
                      && one.stderr.contains("expected at least two runs") && one.stderr.split(separator: "\n").count == 1, one.stderr)
        // A split column holds its runs: one split is one run, two splits are two.
        let splitHeader = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,split\n"
        try (splitHeader + rows.split(separator: "\n").map { $0 + ",0\n" }.joined())
            .write(toFile: runner.path("one-split.csv"), atomically: true, encoding: .utf8)
        try (splitHeader + rows.split(separator: "\n").flatMap { [$0 + ",0\n", $0 + ",1\n"] }.joined())
            .write(toFile: runner.path("two-splits.csv"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try runner.run("stats", ["wilcoxon", "one-split.csv"]).status, 2)
        let sentence = "There were not enough data points for any statistically meaningful comparisons."
        for arguments in [["a.csv", "b.csv"], ["two-splits.csv"]] {
            let two = try runner.run("stats", ["wilcoxon"] + arguments)
            XCTAssertEqual(two.status, 0, two.stderr)
            XCTAssertEqual(two.stdout, sentence + "\n", "\(arguments)")
        }
        let file = try runner.run("stats", ["wilcoxon", "a.csv", "b.csv", "-o", "out.txt"])
        XCTAssertEqual(file.status, 0, file.stderr)
        XCTAssertEqual(try String(contentsOfFile: runner.path("out.txt"), encoding: .utf8), sentence)
    }

    /// A metrics file that cannot be read says why and what was expected (exit 3).
    func testStatsSaysWhyAFileCannotBeRead() throws {
        let runner = try ToolRunner(name: "unreadable")
        defer { runner.remove() }
        for (path, reason) in [("/dev/null", "empty"), (runner.folder, "is a directory"), (runner.path("missing.csv"), "No such file")] {
            let result = try runner.run("stats", ["aggregate", path])
            XCTAssertEqual(result.status, 3, "\(path): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("ie-stats: error: \(path)") && result.stderr.contains(reason)
                          && result.stderr.contains(", expected") && result.stderr.split(separator: "\n").count == 1, result.stderr)
        }
    }

    /// Pipes given as file arguments (`<(...)` process substitution, /dev/stdin, a named pipe) are read like files,
    /// so two pipelines can be compared without temporary files.
    func testStatsReadsPipesGivenAsFiles() throws {
        let runner = try ToolRunner(name: "pipes")
        defer { runner.remove() }
        try "Patient,Structure,Dice\n1,liver,0.5\n2,liver,0.7\n".write(toFile: runner.path("m.csv"), atomically: true, encoding: .utf8)
        let fifo = runner.path("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let direct = try runner.run("stats", ["aggregate", runner.path("m.csv")])
        XCTAssertEqual(direct.status, 0, direct.stderr)
        for command in ["\"$IE/ie-stats\" aggregate <(cat m.csv)", "cat m.csv | \"$IE/ie-stats\" aggregate /dev/stdin",
                        "(cat m.csv > fifo &) ; \"$IE/ie-stats\" aggregate fifo"] {
            let result = try runner.shell(command)
            XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
            XCTAssertEqual(result.stdout, direct.stdout, command)
        }
    }

    /// `ie-metrics folder` on a run's split folder is a writer of the run: it waits for no one and is refused while
    /// another tool holds the run, and it removes the aggregates and box plot it does not rewrite.
    func testFolderMetricsInsideARunHoldsItsLock() throws {
        let runner = try ToolRunner(name: "folderlock")
        defer { runner.remove() }
        let run = try PipelineTests.evaluatedRun(runner, subjects: 6, epochs: 1)
        let test = run + "/outputs/epoch_001/Test"
        let arguments = ["folder", "--prediction_dir=\(test)", "--dataset=datasets/HelloWorld/dataset.csv", "--structures=region_a", "--no-thumbnails"]
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
        holder.arguments = [run + "/.lock", "sleep", "30"]
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        var refused = try runner.run("metrics", arguments)
        for _ in 0..<50 where !refused.stderr.contains("the run is in use") {   // until flock holds the lock
            Thread.sleep(forTimeInterval: 0.1)
            refused = try runner.run("metrics", arguments)
        }
        XCTAssertEqual(refused.status, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("the run is in use"), refused.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: test + "/metrics_aggregates.csv"), "a refused writer leaves the folder alone")
        holder.terminate()
        holder.waitUntilExit()
        let scored = try runner.run("metrics", arguments)
        XCTAssertEqual(scored.status, 0, scored.stderr)
        let metrics = try String(contentsOfFile: test + "/metrics.csv", encoding: .utf8)
        XCTAssertFalse(metrics.contains("region_b"), metrics)
        XCTAssertFalse(FileManager.default.fileExists(atPath: test + "/metrics_aggregates.csv"), "stale aggregates removed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: test + "/metrics_boxplot.png"))
    }

    /// `ie-models list NAME` of a name the registry lacks is exit 2 naming it and the known names; `remove` reports
    /// on stderr, leaving stdout to data.
    func testModelsUnknownNameAndRemoveReport() throws {
        let runner = try ToolRunner(name: "models")
        defer { runner.remove() }
        let empty = try runner.run("models", ["list", "NoSuch"])
        XCTAssertEqual(empty.status, 2, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("'NoSuch'") && empty.stderr.contains(", expected"), empty.stderr)
        try Data("weights".utf8).write(to: URL(fileURLWithPath: runner.path("epoch_001.ckpt")))
        let registry = ModelRegistry(root: runner.path("models"))
        try registry.register(name: "Hello", config: nil, checkpoints: [runner.path("epoch_001.ckpt")], sourceRunIds: ["e:r"])
        try registry.register(name: "Hello", config: nil, checkpoints: [runner.path("epoch_001.ckpt")], sourceRunIds: ["e:r2"])
        let unknown = try runner.run("models", ["list", "Helo"])
        XCTAssertEqual(unknown.status, 2, unknown.stderr)
        XCTAssertEqual(unknown.stdout, "")
        XCTAssertTrue(unknown.stderr.hasPrefix("ie-models: error: ") && unknown.stderr.contains("'Helo'")
                      && unknown.stderr.contains("Hello") && unknown.stderr.split(separator: "\n").count == 1, unknown.stderr)
        XCTAssertEqual(try runner.run("models", ["list", "Hello"]).status, 0)
        let removed = try runner.run("models", ["remove", "Hello:1"])
        XCTAssertEqual(removed.status, 0, removed.stderr)
        XCTAssertEqual(removed.stdout, "")
        XCTAssertTrue(removed.stderr.contains("removed Hello:1"), removed.stderr)
    }

    /// ie-status asks squeue once for all the jobs of its runs, within a bounded time; a failing or silent squeue
    /// is one warning on stderr and JOB_STATE `?` (unknown), not `-` (no job).
    func testStatusAsksSqueueOnceAndSaysWhenItFails() throws {
        let runner = try ToolRunner(name: "squeue")
        defer { runner.remove() }
        let first = try PipelineTests.makeRun(runner, subjects: 6)
        let second = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        for (run, job) in [(first, "124"), (second, "125")] {
            var info = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))) as? [String: Any])
            info["slurm_job_id"] = job
            try JSONSerialization.data(withJSONObject: info).write(to: URL(fileURLWithPath: run + "/run.json"))
        }
        try FileManager.default.createDirectory(atPath: runner.path("bin"), withIntermediateDirectories: true)
        let squeue = runner.path("bin/squeue")
        try """
        #!/bin/sh
        echo "$*" >> "$FAKE_DIR/squeue.calls"
        case "$FAKE_SQUEUE" in
          sleep) exec sleep 40 ;;
          fail) echo "squeue: error: Unable to contact slurm controller (connect failure)" >&2; exit 1 ;;
          *) printf '124|124|RUNNING|None\\n125|125|PENDING|Priority\\n' ;;
        esac

        """.write(toFile: squeue, atomically: true, encoding: .utf8)
        chmod(squeue, 0o755)
        let path = runner.path("bin") + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        for mode in ["answer", "fail", "sleep"] {
            try? FileManager.default.removeItem(atPath: runner.path("squeue.calls"))
            let started = Date()
            let status = try runner.run("status", [first, second, first],
                                        environment: ["PATH": path, "FAKE_DIR": runner.folder, "FAKE_SQUEUE": mode])
            let seconds = Date().timeIntervalSince(started)
            XCTAssertEqual(status.status, 0, status.stderr)
            let calls = try String(contentsOfFile: runner.path("squeue.calls"), encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(calls.count, 1, "\(mode): one squeue call for all runs: \(calls)")
            XCTAssertTrue(calls.first?.contains("-j 124,125") ?? false, "\(calls)")
            let states = status.stdout.split(separator: "\n").dropFirst().map { $0.split(separator: " ", omittingEmptySubsequences: true)[3] }
            XCTAssertEqual(states.count, 3, status.stdout)
            if mode == "answer" {
                XCTAssertEqual(states, ["RUNNING", "PENDING", "RUNNING"], status.stdout)
                XCTAssertEqual(status.stderr, "")
            } else {
                XCTAssertEqual(states, ["?", "?", "?"], status.stdout)
                XCTAssertTrue(status.stderr.hasPrefix("ie-status: warning: squeue failed (") && status.stderr.hasSuffix("): job states unknown\n")
                              && status.stderr.split(separator: "\n").count == 1, status.stderr)
                XCTAssertLessThan(seconds, 30, "\(mode): squeue's time is bounded")
            }
            if mode == "fail" { XCTAssertTrue(status.stderr.contains("Unable to contact slurm controller"), status.stderr) }
        }
    }

    /// A temporary folder that cannot hold gnuplot's scratch folder is one line naming it and the reason.
    func testUnwritableTemporaryFolderIsOneLine() throws {
        let runner = try ToolRunner(name: "report-tmpdir")
        defer { runner.remove() }
        let run = try Self.runWithTrainingCurve(runner)
        let report = try runner.run("report", ["--run=\(run)"], environment: ["TMPDIR": "/proc"])
        XCTAssertEqual(report.status, 1, report.stderr)
        let lines = report.stderr.split(separator: "\n").filter { $0.contains("error") }
        XCTAssertEqual(lines.count, 1, report.stderr)
        XCTAssertTrue(lines.first.map { $0.hasPrefix("ie-report: error: /proc: ") && $0.contains("), expected")
                                        && $0.contains(", expected") && !$0.contains("NSCocoaErrorDomain") } ?? false, report.stderr)
    }

    /// A new run with training curves only (no training needed): the report's first plot is the loss curve.
    static func runWithTrainingCurve(_ runner: ToolRunner) throws -> String {
        let run = try PipelineTests.makeRun(runner, subjects: 6)
        try FileManager.default.createDirectory(atPath: run + "/outputs/Train", withIntermediateDirectories: true)
        try ("epoch,loss,learning_rate,Dice/AverageAcrossStructures,seconds,cross_validation_split_index\n"
             + "1,0.9,1e-4,0.1,1.0,-1\n2,0.8,1e-4,0.2,1.0,-1\n")
            .write(toFile: run + "/outputs/Train/epoch_metrics.csv", atomically: true, encoding: .utf8)
        return run
    }

    /// SIGTERM, SIGINT or SIGHUP to ie-report while gnuplot runs: gnuplot is stopped, the scratch folder
    /// removed, and the exit status is 128 + the signal. gnuplot starts with no signal blocked.
    func testSignalsStopGnuplotAndRemoveItsScratchFolder() throws {
        let runner = try ToolRunner(name: "report-signal")
        defer { runner.remove() }
        let run = try Self.runWithTrainingCurve(runner)
        let gnuplot = runner.path("fake-gnuplot")
        try "#!/bin/sh\necho $$ > \"$FAKE_DIR/gnuplot.pid.tmp\"\nmv \"$FAKE_DIR/gnuplot.pid.tmp\" \"$FAKE_DIR/gnuplot.pid\"\nexec sleep 60\n"
            .write(toFile: gnuplot, atomically: true, encoding: .utf8)
        chmod(gnuplot, 0o755)
        let scratch = runner.path("tmp")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        for sig in [SIGTERM, SIGINT, SIGHUP] {
            try? FileManager.default.removeItem(atPath: runner.path("gnuplot.pid"))
            let report = try runner.start("report", ["--run=\(run)"],
                                          environment: ["IE_GNUPLOT": gnuplot, "TMPDIR": scratch, "FAKE_DIR": runner.folder])
            let deadline = Date().addingTimeInterval(60)
            while !runner.exists("gnuplot.pid") && Date() < deadline && report.isRunning { Thread.sleep(forTimeInterval: 0.05) }
            let child = try XCTUnwrap(pid_t(String(contentsOfFile: runner.path("gnuplot.pid"), encoding: .utf8)
                .trimmingCharacters(in: .whitespacesAndNewlines)), "gnuplot started")
            defer { kill(child, SIGKILL) }
            let status = try String(contentsOfFile: "/proc/\(child)/status", encoding: .utf8)
            XCTAssertTrue(status.contains("SigBlk:\t0000000000000000"), "gnuplot starts with no signal blocked: \(status)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch).filter { $0.hasPrefix("ie-gnuplot-") }.count, 1)
            kill(report.processIdentifier, sig)
            report.waitUntilExit()
            XCTAssertEqual(report.terminationStatus, 128 + sig, "signal \(sig)")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch), [], "signal \(sig): no scratch folder left")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "/proc/\(child)"), "signal \(sig): gnuplot \(child) is gone")
        }
        // Under nohup (SIGHUP ignored from the start) a hangup stops nothing: the report finishes.
        let fast = runner.path("fast-gnuplot")
        try "#!/bin/sh\ntouch \"$FAKE_DIR/fast.started\"\nsleep 2\nexit 1\n".write(toFile: fast, atomically: true, encoding: .utf8)
        chmod(fast, 0o755)
        let nohup = try runner.shell("IE_GNUPLOT='\(fast)' TMPDIR='\(scratch)' FAKE_DIR='\(runner.folder)' nohup \"$IE/ie-report\" --run='\(run)' "
                                     + "> report.out 2>&1 & p=$!; for i in $(seq 600); do [ -e fast.started ] && break; sleep 0.05; done; kill -HUP $p; wait $p; echo rc=$?")
        XCTAssertFalse(nohup.stdout.contains("rc=129"), "\(nohup.stdout) \((try? String(contentsOfFile: runner.path("report.out"), encoding: .utf8)) ?? "")")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch), [])
    }
}

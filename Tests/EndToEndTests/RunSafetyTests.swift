import Foundation
import XCTest

/// Runs that are written by two tools at once, evaluated half-inferred, or split from another dataset than the
/// config's (issue 11: failures 5 and 6, and the weak `ie-split --dataset` case).
final class RunSafetyTests: XCTestCase {
    /// A second writer is refused before it touches the run, naming the holder's pid and host; the kernel
    /// frees the lock when the holder is killed, so the next writer gets the run.
    func testSecondWriterIsRefusedAndAKilledHolderFreesTheRun() throws {
        let runner = try ToolRunner(name: "lock")
        defer { runner.remove() }
        let run = try PipelineTests.makeRun(runner, subjects: 6)
        let first = try runner.start("train", ["--run=\(run)", "--num_epochs=200"] + PipelineTests.tiny)
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL) } }
        // The holder writes its line into the lock file once it holds the lock (ie-split's line is there before).
        let lockFile = run + "/.lock"
        let deadline = Date().addingTimeInterval(60)
        let holding = "ie-train pid \(first.processIdentifier) on host "
        while Date() < deadline && first.isRunning
                && !((try? String(contentsOfFile: lockFile, encoding: .utf8)) ?? "").contains(holding) {
            Thread.sleep(forTimeInterval: 0.1)
        }
        guard first.isRunning else {
            let stderr = (first.standardError as? Pipe)?.fileHandleForReading.readDataToEndOfFile() ?? Data()
            return XCTFail("the first ie-train ended early (\(first.terminationStatus)): \(String(decoding: stderr, as: UTF8.self))")
        }
        let holder = try String(contentsOfFile: lockFile, encoding: .utf8)
        XCTAssertTrue(holder.contains(holding), holder)
        // run.json as the holder left it once training is under way (it marks the run running first).
        while Date() < deadline && (try? HPCTest.json(run + "/run.json"))?["status"] as? String != "running" {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let runJSON = try Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))

        for (tool, arguments) in [("train", ["--run=\(run)", "--resume", "--num_epochs=200"] + PipelineTests.tiny),
                                  ("infer", ["--run=\(run)", "--mode=Val", "--epoch=1", "--threads=1"]),
                                  ("metrics", ["run", "--run=\(run)", "--mode=Val", "--epoch=1"])] {
            let second = try runner.run(tool, arguments)
            XCTAssertEqual(second.status, 1, "\(tool): \(second.stderr)")
            XCTAssertEqual(second.stderr.split(separator: "\n").count, 1, second.stderr)
            XCTAssertTrue(second.stderr.contains("the run is in use by " + holding), second.stderr)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/run.json")), runJSON, "the refused writers left run.json alone")
        XCTAssertTrue(first.isRunning)

        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        // The next writer gets the run: ie-metrics fails for its own reason (nothing inferred yet), not the lock.
        let next = try runner.run("metrics", ["run", "--run=\(run)", "--mode=Val", "--epoch=1"])
        XCTAssertEqual(next.status, 2, next.stderr)
        XCTAssertTrue(next.stderr.contains("no inference results") && !next.stderr.contains("in use"), next.stderr)
    }

    /// ie-train without --resume on a run that holds checkpoints would train from epoch 1 over them (a mixture
    /// of two trainings): refused before anything is written; --resume with a larger --num_epochs trains on.
    func testTrainingOverARunsCheckpointsNeedsResume() throws {
        let runner = try ToolRunner(name: "retrain")
        defer { runner.remove() }
        let run = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        let checkpoints = run + "/outputs/checkpoints"
        func snapshot() throws -> [String: Data] {
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: checkpoints) {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: checkpoints + "/" + name))
            }
            return files
        }
        let before = try snapshot()
        XCTAssertNotNil(before["epoch_001.ckpt"])
        let runJSON = try Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))
        let again = try runner.run("train", ["--run=\(run)", "--num_epochs=2"] + PipelineTests.tiny)
        XCTAssertEqual(again.status, 2, again.stderr)
        XCTAssertEqual(again.stderr.split(separator: "\n").count, 1, again.stderr)
        XCTAssertTrue(again.stderr.contains("already holds checkpoints (autosave.ckpt, epoch_001.ckpt, status completed)")
                      && again.stderr.contains("expected --resume"), again.stderr)
        XCTAssertEqual(try snapshot(), before, "the refused ie-train left the checkpoints alone")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/run.json")), runJSON, "and run.json")
        let resumed = try runner.run("train", ["--run=\(run)", "--resume", "--num_epochs=2"] + PipelineTests.tiny)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming from"), resumed.stderr)
        XCTAssertEqual(try snapshot()["epoch_001.ckpt"], before["epoch_001.ckpt"], "epoch 1 kept")
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoints + "/epoch_002.ckpt"))
    }

    /// A tool started with stdout or stderr closed (`>&-`, `2>&-`) used to get that descriptor for the run's .lock
    /// and wrote its messages into it; they fail as a closed stream again, and the lock file holds only its line.
    func testClosedStandardStreamsNeverLandInTheRunsFiles() throws {
        let runner = try ToolRunner(name: "closedfd")
        defer { runner.remove() }
        let run = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        for (command, status) in [("\"$IE/ie-infer\" --run='\(run)' --mode=Val --epoch=1 --threads=1 2>&-", 0),
                                  ("\"$IE/ie-metrics\" run --run='\(run)' --mode=Val --epoch=1 2>&- >&-", 0),
                                  ("\"$IE/ie-infer\" --run='\(run)' --mode=Val --epoch=1 --threads=1 --no-such-option 2>&-", 2)] {
            XCTAssertEqual(try runner.shell(command).status, Int32(status), command)
            let lock = try String(contentsOfFile: run + "/.lock", encoding: .utf8)
            let lines = lock.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(command): \(lock)")
            XCTAssertTrue(lock.hasPrefix("ie-") && lock.contains(" pid ") && lock.contains(" on host "), "\(command): \(lock)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/epoch_001/Val/metrics.csv"))
        // A closed stdout is still an error where the output is the point.
        XCTAssertEqual(try runner.shell("\"$IE/ie-split\" --model=HelloWorld >&-").status, 1)
    }

    /// A wrong `--epoch` leaves a run's status alone (the command was wrong, not the run); a failed inference marks
    /// it failed, and a later successful ie-evaluate, which reruns inference and metrics, marks it completed again.
    func testEvaluateSuccessClearsAnInferenceFailure() throws {
        let runner = try ToolRunner(name: "evalclear")
        defer { runner.remove() }
        let run = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        func status() throws -> (String?, String?) {
            let info = try HPCTest.json(run + "/run.json")
            return (info["status"] as? String, info["error"] as? String)
        }
        let typo = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--epoch=7", "--threads=1"])
        XCTAssertEqual(typo.status, 2, typo.stderr)
        XCTAssertTrue(typo.stderr.contains("epoch 7 has no checkpoint in the run (saved: epoch_001.ckpt)"), typo.stderr)
        XCTAssertEqual(try status().0, "completed")
        // Every image unreadable: inference fails (bad input) and marks the run failed.
        let images = try FileManager.default.contentsOfDirectory(atPath: runner.path("datasets/HelloWorld")).filter { Int($0) != nil }
            .map { runner.path("datasets/HelloWorld/\($0)/ct.nii.gz") }
        for image in images { try FileManager.default.moveItem(atPath: image, toPath: image + ".bak"); try "x".write(toFile: image, atomically: true, encoding: .utf8) }
        let broken = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--epoch=1", "--threads=1"])
        XCTAssertEqual(broken.status, 3, broken.stderr)
        XCTAssertEqual(try status().0, "failed")
        XCTAssertTrue(try status().1?.hasPrefix("ie-infer: ") == true)
        for image in images { try FileManager.default.removeItem(atPath: image); try FileManager.default.moveItem(atPath: image + ".bak", toPath: image) }
        let evaluate = try runner.run("evaluate", ["--run=\(run)", "--threads=1"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        XCTAssertEqual(try status().0, "completed")
        XCTAssertNil(try status().1)
    }

    /// Files are made 0666 and folders 0777 less the umask (a group sharing runs uses umask 002), and a file that
    /// is rewritten keeps the permissions it had (an administrator's chmod survives the next tool).
    func testNewFilesFollowTheUmaskAndRewrittenFilesKeepTheirMode() throws {
        let runner = try ToolRunner(name: "umask")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=6", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let tiny = PipelineTests.tiny.joined(separator: " ")
        func bash(_ command: String) throws -> String {
            let result = try runner.shell(command)
            XCTAssertEqual(result.status, 0, "\(command): \(result.stderr)")
            return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let run = try bash("umask 002; R=$(\"$IE/ie-split\" --model=HelloWorld) && \"$IE/ie-train\" --run=$R --num_epochs=1 \(tiny) && echo $R")
        func mode(_ path: String) throws -> Int {
            (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int) ?? -1
        }
        for folder in [run, run + "/outputs", run + "/outputs/checkpoints", run + "/logs", runner.path("models/HelloWorld/1")] {
            XCTAssertEqual(try mode(folder), 0o775, folder)
        }
        for file in [run + "/run.json", run + "/.lock", run + "/outputs/checkpoints/epoch_001.ckpt", run + "/logs/ie-train.log",
                     runner.path("models/HelloWorld/1/model.json")] {
            XCTAssertEqual(try mode(file), 0o664, file)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o660], ofItemAtPath: run + "/run.json")
        _ = try bash("umask 022; \"$IE/ie-evaluate\" --run=\(run) --threads=1")
        XCTAssertEqual(try mode(run + "/run.json"), 0o660, "rewritten, it keeps its mode")
        XCTAssertEqual(try mode(run + "/outputs/report.html"), 0o644, "new under umask 022")
    }

    /// Re-inferring a mode folder first removes what was computed from its old segmentations (metrics, aggregates,
    /// outliers, thumbnails), so a killed re-inference never leaves them looking complete beside new segmentations,
    /// and the temporary files a killed writer left; the other mode keeps its evaluation.
    func testReinferenceClearsTheOldEvaluationAndStaleTemporaryFiles() throws {
        let runner = try ToolRunner(name: "reinfer")
        defer { runner.remove() }
        let run = try PipelineTests.evaluatedRun(runner, subjects: 6, epochs: 1)
        let val = run + "/outputs/epoch_001/Val", test = run + "/outputs/epoch_001/Test"
        let fileManager = FileManager.default
        XCTAssertTrue(fileManager.fileExists(atPath: val + "/metrics.csv") && fileManager.fileExists(atPath: val + "/metrics_aggregates.csv"))
        let subject = try XCTUnwrap(try fileManager.contentsOfDirectory(atPath: val).filter { Int($0) != nil }.sorted().first)
        let planted = [val + "/.tmp.4242.17", val + "/" + subject + "/.tmp.4242.18.nii.gz"]
        for path in planted { try "half".write(toFile: path, atomically: false, encoding: .utf8) }
        let inferred = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--epoch=1", "--threads=1"])
        XCTAssertEqual(inferred.status, 0, inferred.stderr)
        for name in ["metrics.csv", "metrics_aggregates.csv", "metrics_boxplot.png", "Val_outliers.txt", "thumbnails"] {
            XCTAssertFalse(fileManager.fileExists(atPath: val + "/" + name), name)
        }
        for path in planted { XCTAssertFalse(fileManager.fileExists(atPath: path), path) }
        XCTAssertTrue(fileManager.fileExists(atPath: val + "/" + subject + "/segmentation.nii.gz"))
        XCTAssertTrue(fileManager.fileExists(atPath: test + "/metrics.csv"), "Test keeps its evaluation")
        let metrics = try runner.run("metrics", ["run", "--run=\(run)", "--mode=Val", "--epoch=1"])
        XCTAssertEqual(metrics.status, 0, metrics.stderr)
        XCTAssertTrue(fileManager.fileExists(atPath: val + "/metrics.csv"))
    }

    /// `-o /dev/stdout` writes to the tool's own standard output (appending where the shell appends), never
    /// renames a file over /dev/stdout (as root that replaced the link), and `-o /dev/null` leaves the device.
    func testOutputsToDevicePathsAreWrittenInPlace() throws {
        let runner = try ToolRunner(name: "devout")
        defer { runner.remove() }
        let csv = runner.path("m.csv")
        try "Patient,Structure,Dice\n1,liver,0.5\n2,liver,0.7\n".write(toFile: csv, atomically: false, encoding: .utf8)
        let result = try runner.shell("echo first > out.txt && \"$IE/ie-stats\" aggregate m.csv -o /dev/stdout >> out.txt && "
                                      + "\"$IE/ie-stats\" aggregate m.csv -o /dev/null && test -L /dev/stdout && test -c /dev/null")
        XCTAssertEqual(result.status, 0, result.stderr)
        let text = try String(contentsOfFile: runner.path("out.txt"), encoding: .utf8)
        XCTAssertTrue(text.hasPrefix("first\n") && text.contains("liver"), text)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: "/dev").filter { $0.hasPrefix(".tmp.") }, [],
                       "no temporary file in /dev")
    }

    /// A symbolic link planted as the run's lock file or a tool's log must not make the tool truncate or append
    /// to the file it points to outside the run: the tool refuses with one line and the file is untouched.
    func testLinksPlantedInTheRunAreNotWrittenThrough() throws {
        let runner = try ToolRunner(name: "links")
        defer { runner.remove() }
        let run = try PipelineTests.makeRun(runner, subjects: 6)
        let outside = runner.folder + "/precious.txt"
        for (planted, expected) in [(run + "/.lock", "cannot open the run's lock file: it is a symbolic link"),
                                    (run + "/logs/ie-train.log", "cannot open log file: it is a symbolic link")] {
            try "precious\n".write(toFile: outside, atomically: false, encoding: .utf8)
            try FileManager.default.createDirectory(atPath: run + "/logs", withIntermediateDirectories: true)
            try? FileManager.default.removeItem(atPath: planted)
            try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: outside)
            let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + PipelineTests.tiny)
            XCTAssertNotEqual(train.status, 0, train.stderr)
            XCTAssertTrue(train.stderr.contains(expected) && train.stderr.split(separator: "\n").count == 1, train.stderr)
            XCTAssertEqual(try String(contentsOfFile: outside, encoding: .utf8), "precious\n")
            try FileManager.default.removeItem(atPath: planted)
        }
    }

    /// A split scored with subjects missing is an error naming them; `--allow_missing` scores the others and
    /// records the missing subject as rows with empty values.
    func testMissingSegmentationsAreAnErrorUnlessAllowed() throws {
        let runner = try ToolRunner(name: "missing")
        defer { runner.remove() }
        let run = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        XCTAssertEqual(try runner.run("infer", ["--run=\(run)", "--mode=Val", "--threads=1"]).status, 0)
        let folder = run + "/outputs/epoch_001/Val"
        let subjects = try FileManager.default.contentsOfDirectory(atPath: folder).filter { Int($0) != nil }.sorted()
        XCTAssertEqual(subjects.count, 2, "HelloWorld puts 2 of 6 subjects in Val")
        let gone = subjects[0]
        try FileManager.default.removeItem(atPath: folder + "/" + gone)

        let refused = try runner.run("metrics", ["run", "--run=\(run)", "--mode=Val"])
        XCTAssertEqual(refused.status, 3, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("1 of the \(subjects.count) Val subjects have no segmentation (first: \(Int(gone)!))")
                      && refused.stderr.contains("--allow_missing"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/metrics.csv"))

        let allowed = try runner.run("metrics", ["run", "--run=\(run)", "--mode=Val", "--allow_missing"])
        XCTAssertEqual(allowed.status, 0, allowed.stderr)
        let rows = try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8).split(separator: "\n").dropFirst()
        let missingRows = rows.filter { $0.hasPrefix("\(Int(gone)!),") }
        XCTAssertEqual(missingRows.sorted(), ["\(Int(gone)!),region_a,,,", "\(Int(gone)!),region_b,,,"])
        XCTAssertEqual(rows.count, subjects.count * 2)
    }

    /// `ie-split --dataset=X` records X in run.json, and training and evaluation read the run's copy of it:
    /// the config's own dataset can be gone.
    func testTheRunUsesTheDatasetItWasSplitFrom() throws {
        let runner = try ToolRunner(name: "splitdata")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=elsewhere/data", "--subjects=6", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try runner.run("split", ["--model=HelloWorld", "--dataset=elsewhere/data/dataset.csv"])
        XCTAssertEqual(split.status, 0, split.stderr)
        let run = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let info = try HPCTest.json(run + "/run.json")
        XCTAssertEqual(info["dataset"] as? String, runner.folder + "/elsewhere/data/dataset.csv")
        XCTAssertFalse(FileManager.default.fileExists(atPath: runner.folder + "/datasets/HelloWorld"),
                       "the config's dataset does not exist, so only the split's can be read")
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + PipelineTests.tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertEqual(try runner.run("infer", ["--run=\(run)", "--mode=Val", "--threads=1"]).status, 0)
        let metrics = try runner.run("metrics", ["run", "--run=\(run)", "--mode=Val"])
        XCTAssertEqual(metrics.status, 0, metrics.stderr)
    }
    /// Output that cannot be written is an error (exit 1, one line), for every tool's --help, `ie-status`
    /// and a closed standard input of ie-stats (issue 11, failure 7).
    func testFullOrClosedStandardStreamsAreErrors() throws {
        let runner = try ToolRunner(name: "streams")
        defer { runner.remove() }
        let run = try PipelineTests.makeRun(runner, subjects: 6)
        let bin = ToolRunner.binaryFolder
        var commands = ["split", "train", "infer", "ensemble", "metrics", "stats", "report", "synth", "models", "crossval", "submit",
                        "status"].map {
            ("'\(bin)/ie-\($0)' --help >/dev/full", "ie-\($0): error: cannot write to standard output: No space left on device")
        }
        commands.append(("'\(bin)/ie-status' '\(run)' >/dev/full",
                         "ie-status: error: cannot write to standard output: No space left on device"))
        commands.append(("'\(bin)/ie-stats' aggregate - <&-", "ie-stats: error: cannot read standard input"))
        // ie-metrics wrote its CSV through Foundation's FileHandle, which traps (exit 132) on a full or closed stream.
        let mask = "datasets/HelloWorld/001/region_a.nii.gz"
        for arguments in ["pair --prediction=\(mask) --ground_truth=\(mask) -o -", "pair --prediction=\(mask) --ground_truth=\(mask)"] {
            commands.append(("'\(bin)/ie-metrics' \(arguments) >/dev/full",
                             "ie-metrics: error: cannot write to standard output: No space left on device"))
        }
        for (command, message) in commands {
            let result = try runner.shell(command + "; echo rc=$?")
            let e = result.stderr
            XCTAssertEqual(result.stdout, "rc=1\n", "\(command): \(e)")
            XCTAssertTrue(e.hasPrefix(message) && e.split(separator: "\n").count == 1, "\(command): \(e)")
        }
    }
}

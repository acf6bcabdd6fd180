import Foundation
import XCTest
import IETestSupport

/// The HelloWorld pipeline on tiny synthetic data, run through the built tools as a user runs them.
final class PipelineTests: XCTestCase {
    static let tiny = ["--crop_size=16,32,32", "--test_crop_size=16,48,48", "--threads=1"]

    static func makeRun(_ runner: ToolRunner, subjects: Int = 8) throws -> String {
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=\(subjects)", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try runner.run("split", ["--model=HelloWorld"])
        XCTAssertEqual(split.status, 0, split.stderr)
        let run = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/run.json"), "ie-split printed \(run)")
        return run
    }

    /// A new run of `subjects` synthetic subjects, trained with the tiny settings for `epochs` epochs.
    static func trainedRun(_ runner: ToolRunner, subjects: Int, epochs: Int) throws -> String {
        let run = try makeRun(runner, subjects: subjects)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=\(epochs)"] + tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        return run
    }

    /// A run as `trainedRun` makes it, then evaluated by ie-evaluate (its Val and Test metrics, its report).
    static func evaluatedRun(_ runner: ToolRunner, subjects: Int, epochs: Int) throws -> String {
        let run = try trainedRun(runner, subjects: subjects, epochs: epochs)
        let evaluated = try runner.run("evaluate", ["--run=\(run)", "--threads=1"])
        XCTAssertEqual(evaluated.status, 0, evaluated.stderr)
        return run
    }

    func testTrainInferMetricsReportLeaveTheRunLayout() throws {
        let runner = try ToolRunner(name: "pipeline")
        defer { runner.remove() }
        let run = try Self.makeRun(runner)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=2", "--save_start_epoch=1", "--save_step_epochs=1"] + Self.tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        for file in ["args.txt", "buildinformation.json", "dataset.csv", "train_dataset.csv", "val_dataset.csv", "test_dataset.csv",
                     "checkpoints/epoch_001.ckpt", "checkpoints/epoch_002.ckpt", "checkpoints/autosave.ckpt",
                     "Train/epoch_metrics.csv", "Val/epoch_metrics.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/" + file), "missing outputs/\(file)")
        }
        let header = try String(contentsOfFile: run + "/outputs/Val/epoch_metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(header.first, "epoch,loss,learning_rate,Dice/AverageAcrossStructures,Dice/region_a,Dice/region_b,VoxelCount/region_a,VoxelCount/region_b,seconds,cross_validation_split_index")
        XCTAssertEqual(header.count, 3)

        for mode in ["Val", "Test"] {
            let infer = try runner.run("infer", ["--run=\(run)", "--mode=\(mode)", "--threads=1"])
            XCTAssertEqual(infer.status, 0, infer.stderr)
            let metrics = try runner.run("metrics", ["run", "--run=\(run)", "--mode=\(mode)"])
            XCTAssertEqual(metrics.status, 0, metrics.stderr)
            let folder = run + "/outputs/epoch_002/" + mode
            for file in ["metrics.csv", "metrics_aggregates.csv", "metrics_boxplot.png", "dataset_id.txt", "ground_truth_ids.txt", "image_channel_ids.txt"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + file), "missing \(mode)/\(file)")
            }
            let metricsText = try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8)
            XCTAssertTrue(metricsText.hasPrefix("Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n"))
            XCTAssertEqual(metricsText.split(separator: "\n").count, 1 + 2 * 2, "2 subjects x 2 structures")
        }
        let report = try runner.run("report", ["--run=\(run)"])
        XCTAssertEqual(report.status, 0, report.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/report.html"))
        // An epoch that was not evaluated, or a folder that is not a run: refused, the good report kept.
        let html = try Data(contentsOf: URL(fileURLWithPath: run + "/outputs/report.html"))
        let notEvaluated = try runner.run("report", ["--run=\(run)", "--epoch=100"])
        XCTAssertEqual(notEvaluated.status, 3, notEvaluated.stderr)
        XCTAssertTrue(notEvaluated.stderr.contains("no epoch_100 folder (evaluated: 2)"), notEvaluated.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: run + "/outputs/report.html")), html)
        let notARun = try runner.run("report", ["--run=\(runner.path("datasets"))"])
        XCTAssertEqual(notARun.status, 2, notARun.stderr)
        XCTAssertTrue(notARun.stderr.contains("not a run folder"), notARun.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: runner.path("datasets/report.html")))
        let elsewhere = try runner.run("report", ["--run=\(run)", "--output_folder=\(runner.path("reports"))"])
        XCTAssertEqual(elsewhere.status, 0, elsewhere.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: runner.path("reports/report.html")))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/report.ipynb"))
        // Jupyter runs the notebook from its folder: every cell recomputes what it was saved with.
        let notebook = try NotebookExecution.executeAndCompare(notebook: run + "/outputs/report.ipynb")
        XCTAssertEqual(notebook.problems, [])
        XCTAssertGreaterThanOrEqual(notebook.tables, 1 + 2 * 6, "run.json, then describe and worst-20 of 3 metrics for Val and Test")
        XCTAssertGreaterThanOrEqual(notebook.plots, 3 + 2 * 2, "training curves, Dice and Hausdorff box plots per mode")
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["status"] as? String, "completed")

        // The written segmentations carry the CT's affine, as nibabel reads both (an independent reader).
        let subject = try FileManager.default.contentsOfDirectory(atPath: run + "/outputs/epoch_002/Test").filter { Int($0) != nil }.sorted().first!
        let ct = runner.path("datasets/HelloWorld/\(subject)/ct.nii.gz")
        let seg = run + "/outputs/epoch_002/Test/\(subject)/segmentation.nii.gz"
        let check = try ToolRunner.python("""
        import nibabel as nib, numpy as np
        a = nib.load('\(ct)'); b = nib.load('\(seg)')
        assert a.shape == b.shape, (a.shape, b.shape)
        assert np.allclose(a.affine, b.affine, atol=1e-5), (a.affine, b.affine)
        d = np.asarray(b.dataobj)
        assert d.dtype == np.uint8 and set(np.unique(d)) <= {0, 1, 2}
        print('ok')
        """)
        XCTAssertEqual(check.trimmingCharacters(in: .whitespacesAndNewlines), "ok")

        // The registered model segments a single image.
        let single = try runner.run("infer", ["--model_id=HelloWorld:1", "--image_file=\(ct)", "--output_folder=single", "--threads=1"])
        XCTAssertEqual(single.status, 0, single.stderr)
        for file in ["segmentation.nii.gz", "posterior_region_a.nii.gz", "region_b.nii.gz", "uncertainty.nii.gz"] {
            XCTAssertTrue(runner.exists("single/" + file), "missing single/\(file)")
        }
    }

    func testKilledTrainingResumesToTheSameWeights() throws {
        let runner = try ToolRunner(name: "resume")
        defer { runner.remove() }
        let reference = try Self.makeRun(runner)
        let killed = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let args = ["--num_epochs=4"] + Self.tiny
        let straight = try runner.run("train", ["--run=\(reference)"] + args)
        XCTAssertEqual(straight.status, 0, straight.stderr)

        // SIGKILL at a random moment (not a graceful stop), then rerun the same command with --resume.
        let process = try runner.start("train", ["--run=\(killed)"] + args)
        usleep(UInt32.random(in: 300_000...1_500_000))
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        var attempts = 0
        while true {
            let resumed = try runner.run("train", ["--run=\(killed)", "--resume"] + args)
            attempts += 1
            if resumed.status == 0 { break }
            XCTAssertLessThan(attempts, 3, resumed.stderr)
            if attempts >= 3 { return }
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: reference + "/outputs/checkpoints/epoch_004.ckpt"))
        let b = try Data(contentsOf: URL(fileURLWithPath: killed + "/outputs/checkpoints/epoch_004.ckpt"))
        XCTAssertGreaterThan(a.count, 1000)
        XCTAssertEqual(a, b, "final weights differ after kill + resume")
        let linesA = try String(contentsOfFile: reference + "/outputs/Train/epoch_metrics.csv", encoding: .utf8).split(separator: "\n")
        let linesB = try String(contentsOfFile: killed + "/outputs/Train/epoch_metrics.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(linesA.count, linesB.count)
        // Same losses epoch by epoch (the seconds column differs).
        XCTAssertEqual(linesA.map { $0.split(separator: ",").prefix(3) }, linesB.map { $0.split(separator: ",").prefix(3) })
    }

    func testSigtermStopsWithExit143AndResumesToTheSameWeights() throws {
        let runner = try ToolRunner(name: "sigterm")
        defer { runner.remove() }
        let reference = try Self.makeRun(runner, subjects: 6)
        let stopped = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let args = ["--num_epochs=6"] + Self.tiny
        XCTAssertEqual(try runner.run("train", ["--run=\(reference)"] + args).status, 0)
        let process = try runner.start("train", ["--run=\(stopped)"] + args, environment: ["OPENBLAS_NUM_THREADS": "1"])
        // Wait for the first autosave so the signal lands mid-training, not during start-up.
        let autosave = stopped + "/outputs/checkpoints/autosave.ckpt"
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: autosave) { usleep(25_000) }
        if process.isRunning { try Self.assertStopSignalsBlockedInEveryThread(process.processIdentifier) }
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        if process.terminationStatus == 0 {
            // Training finished before the signal arrived: nothing to resume, but the weights must still agree.
            print("note: training finished before SIGTERM")
        } else {
            XCTAssertEqual(process.terminationStatus, 143)
            let info = try String(contentsOfFile: stopped + "/logs/ie-train.log", encoding: .utf8)
            XCTAssertTrue(info.contains("stopped by signal"), info)
            XCTAssertEqual(try runner.run("train", ["--run=\(stopped)", "--resume"] + args).status, 0)
        }
        let a = try Data(contentsOf: URL(fileURLWithPath: reference + "/outputs/checkpoints/epoch_006.ckpt"))
        let b = try Data(contentsOf: URL(fileURLWithPath: stopped + "/outputs/checkpoints/epoch_006.ckpt"))
        XCTAssertEqual(a, b, "final weights differ after SIGTERM + resume")
    }

    /// A hangup (terminal or ssh session closed) stops training at the next batch like SIGTERM, keeping the
    /// autosave (it killed ie-train with 129 and left the run `running`); under `nohup` it is ignored.
    func testHangupStopsTrainingLikeSIGTERMButNotUnderNohup() throws {
        let runner = try ToolRunner(name: "hangup")
        defer { runner.remove() }
        let run = try Self.makeRun(runner)
        let train = "\"$IE/ie-train\" --run='\(run)' --num_epochs=500 " + Self.tiny.joined(separator: " ")
        let waitForAutosave = "for i in $(seq 1200); do [ -e '\(run)/outputs/checkpoints/autosave.ckpt' ] && break; sleep 0.05; done"
        let underNohup = try runner.shell("nohup \(train) > nohup.out 2>&1 & p=$!; \(waitForAutosave); kill -HUP $p; sleep 1; "
                                          + "kill -0 $p && echo alive; kill -TERM $p; wait $p; echo rc=$?")
        XCTAssertTrue(underNohup.stdout.contains("alive"), underNohup.stdout + underNohup.stderr)
        XCTAssertTrue(underNohup.stdout.contains("rc=143"), underNohup.stdout + underNohup.stderr)
        let hangup = try runner.shell("\(train) --resume > resume.out 2>&1 & p=$!; sleep 2; kill -HUP $p; wait $p; echo rc=$?")
        XCTAssertTrue(hangup.stdout.contains("rc=143"), hangup.stdout + ((try? String(contentsOfFile: runner.path("resume.out"), encoding: .utf8)) ?? ""))
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["status"] as? String, "queued")
        let log = try String(contentsOfFile: run + "/logs/ie-train.log", encoding: .utf8)
        XCTAssertEqual(log.components(separatedBy: "stopped by signal").count, 3, log)
    }

    /// While ie-train trains, none of its threads may take SIGTERM/SIGUSR1: a signal frame written while a oneDNN
    /// JIT GEMM kernel has rsp pointing into the heap corrupts it (see StopSignal). Threads started after `main`
    /// began (the prefetch worker, OpenMP's, MPI's) inherit the main thread's mask; Dispatch's block them anyway.
    /// (OpenBLAS starts its pool before `main`: the caller sets OPENBLAS_NUM_THREADS=1, so that there is none.)
    static func assertStopSignalsBlockedInEveryThread(_ pid: Int32) throws {
        let wanted: UInt64 = (1 << UInt64(SIGTERM - 1)) | (1 << UInt64(SIGUSR1 - 1)) | (1 << UInt64(SIGINT - 1)) | (1 << UInt64(SIGHUP - 1))
        let task = "/proc/\(pid)/task"
        let threads = try FileManager.default.contentsOfDirectory(atPath: task)
        XCTAssertGreaterThan(threads.count, 2, "ie-train runs worker threads (Dispatch's, the prefetch worker)")
        for tid in threads {
            guard let status = try? String(contentsOfFile: "\(task)/\(tid)/status", encoding: .utf8) else { continue }
            let lines = status.split(separator: "\n")
            let name = lines.first { $0.hasPrefix("Name:") }?.dropFirst(5).trimmingCharacters(in: .whitespaces) ?? "?"
            let mask = lines.first { $0.hasPrefix("SigBlk:") }.flatMap { UInt64($0.dropFirst(7).trimmingCharacters(in: .whitespaces), radix: 16) }
            XCTAssertEqual(mask.map { $0 & wanted }, wanted, "thread \(tid) (\(name)) of ie-train can take SIGTERM/SIGUSR1")
        }
    }

    /// Ctrl-C stops training at the next batch as SIGTERM does (it ended the process with the run left "running");
    /// a training killed outright (SIGKILL) leaves run.json "running", and ie-status says the run is stopped.
    func testCtrlCStopsLikeSIGTERMAndStatusSeesAKilledRun() throws {
        let runner = try ToolRunner(name: "interrupt")
        defer { runner.remove() }
        let run = try Self.makeRun(runner)
        let args = ["--num_epochs=500"] + Self.tiny
        let autosave = run + "/outputs/checkpoints/autosave.ckpt"
        let first = try runner.start("train", ["--run=\(run)"] + args)
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: autosave) && first.isRunning { usleep(25_000) }
        kill(first.processIdentifier, SIGINT)
        first.waitUntilExit()
        XCTAssertEqual(first.terminationStatus, 143)
        XCTAssertTrue(try String(contentsOfFile: run + "/logs/ie-train.log", encoding: .utf8).contains("stopped by signal"))
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["status"] as? String, "queued")

        let second = try runner.start("train", ["--run=\(run)", "--resume"] + args)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && second.isRunning
                && !((try? String(contentsOfFile: run + "/.lock", encoding: .utf8)) ?? "").contains("pid \(second.processIdentifier) ") {
            usleep(50_000)
        }
        let during = try runner.run("status", [run])
        XCTAssertTrue(during.stdout.contains(" running "), during.stdout)
        kill(second.processIdentifier, SIGKILL)
        second.waitUntilExit()
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["status"] as? String, "running")
        let after = try runner.run("status", [run])
        XCTAssertEqual(after.status, 0, after.stderr)
        XCTAssertTrue(after.stdout.contains("stopped (run.json: running; nothing holds the run)"), after.stdout)
    }

    /// inference_on_train_set (InnerEye's, default false) adds the Train split to the evaluation: it was accepted
    /// and recorded but never applied.
    func testInferenceOnTrainSetEvaluatesTheTrainingSubjects() throws {
        let runner = try ToolRunner(name: "trainset")
        defer { runner.remove() }
        let run = try Self.makeRun(runner, subjects: 6)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1", "--inference_on_train_set=True"] + Self.tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        let evaluate = try runner.run("evaluate", ["--run=\(run)"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        // Plain comma-separated files here (synthetic subjects, no quoting).
        func column(_ path: String, _ name: String) throws -> Set<String> {
            let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { $0.split(separator: ",", omittingEmptySubsequences: false) }
            let index = try XCTUnwrap(lines.first?.firstIndex(of: Substring(name)), "\(name) in \(path)")
            return Set(lines.dropFirst().map { String($0[index]) })
        }
        let trainSubjects = try column(run + "/outputs/train_dataset.csv", "subject")
        XCTAssertEqual(try column(run + "/outputs/epoch_001/Train/metrics.csv", "Patient"), trainSubjects)
        XCTAssertFalse(trainSubjects.isEmpty)
        for mode in ["Val", "Test"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/epoch_001/\(mode)/metrics.csv"), mode)
        }
    }

    /// InnerEye evaluates several local_weights_path checkpoints as their ensemble; `--no-train` adopted the first
    /// and dropped the others without a word. The run's Test posteriors must equal ie-ensemble's on the same two
    /// checkpoints, and differ from the first checkpoint's alone.
    func testNoTrainWithSeveralLocalWeightsEvaluatesTheirEnsemble() throws {
        let runner = try ToolRunner(name: "localensemble")
        defer { runner.remove() }
        let first = try Self.trainedRun(runner, subjects: 6, epochs: 1)
        let second = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try runner.run("train", ["--run=\(second)", "--num_epochs=2", "--random_seed=7"] + Self.tiny).status, 0)
        let a = first + "/outputs/checkpoints/epoch_001.ckpt", b = second + "/outputs/checkpoints/epoch_002.ckpt"
        let run = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let adopt = try runner.run("train", ["--run=\(run)", "--no-train", "--local_weights_path=\(a),\(b)", "--threads=1"])
        XCTAssertEqual(adopt.status, 0, adopt.stderr)
        XCTAssertTrue(adopt.stderr.contains("the 2 checkpoints of --local_weights_path"), adopt.stderr)
        let test = ["--mode=Test", "--threads=1", "--test_crop_size=16,48,48"]
        XCTAssertEqual(try runner.run("infer", ["--run=\(run)"] + test).status, 0)
        let ensemble = try runner.run("ensemble", ["--run=\(run)", "--epoch=9", "--checkpoint=\(a)", "--checkpoint=\(b)"] + test)
        XCTAssertEqual(ensemble.status, 0, ensemble.stderr)
        let alone = try runner.run("infer", ["--run=\(run)", "--epoch=8", "--checkpoint=\(a)"] + test)
        XCTAssertEqual(alone.status, 0, alone.stderr)
        let subjects = try FileManager.default.contentsOfDirectory(atPath: run + "/outputs/epoch_002/Test")
            .filter { $0.allSatisfy(\.isNumber) }
        XCTAssertFalse(subjects.isEmpty)
        var differsFromFirst = false
        for subject in subjects {
            let posterior = { (epoch: String) in try Data(contentsOf: URL(fileURLWithPath: "\(run)/outputs/\(epoch)/Test/\(subject)/posterior_region_a.nii.gz")) }
            XCTAssertEqual(try posterior("epoch_002"), try posterior("epoch_009"), "subject \(subject)")
            if try posterior("epoch_002") != posterior("epoch_008") { differsFromFirst = true }
        }
        XCTAssertTrue(differsFromFirst, "the adopted model is the first checkpoint alone")
    }

    /// An --output_folder that is a file, or cannot be made, was Foundation's NSError text (exit 1): one line
    /// naming the folder.
    func testSingleImageOutputFolderErrorsNameTheFolder() throws {
        let runner = try ToolRunner(name: "outfolder")
        defer { runner.remove() }
        let run = try Self.trainedRun(runner, subjects: 6, epochs: 1)
        let image = runner.path("datasets/HelloWorld/001/ct.nii.gz")
        try "x".write(toFile: runner.path("afile"), atomically: true, encoding: .utf8)
        for (folder, phrase) in [(runner.path("afile"), "it exists and is not a folder"), ("/proc/ie-none", "cannot create this folder")] {
            let infer = try runner.run("infer", ["--model=HelloWorld", "--checkpoint=\(run)/outputs/checkpoints/epoch_001.ckpt",
                                                 "--image_file=\(image)", "--mask_file=\(runner.path("datasets/HelloWorld/001/mask.nii.gz"))",
                                                 "--output_folder=\(folder)", "--test_crop_size=16,48,48", "--threads=1", "--quiet"])
            XCTAssertEqual(infer.status, 1, infer.stderr)
            XCTAssertTrue(infer.stderr.hasPrefix("ie-infer: error: \(folder): \(phrase)"), infer.stderr)
            XCTAssertEqual(infer.stderr.split(separator: "\n").count, 1, infer.stderr)
        }
    }

    /// A single image segmented by a model with a mask_id: with --mask_file the result is the run's own inference
    /// of that subject (its mask channel); without it the whole image is segmented, with a warning (it was silent).
    func testSingleImageWithMaskFileMatchesTheRunsInference() throws {
        let runner = try ToolRunner(name: "maskfile")
        defer { runner.remove() }
        let run = try Self.trainedRun(runner, subjects: 6, epochs: 1)
        XCTAssertEqual(try runner.run("infer", ["--run=\(run)", "--mode=Test", "--threads=1"]).status, 0)
        let subjects = try FileManager.default.contentsOfDirectory(atPath: run + "/outputs/epoch_001/Test").filter { $0.allSatisfy(\.isNumber) }
        let subject = try XCTUnwrap(subjects.sorted().first)
        let data = runner.path("datasets/HelloWorld/\(subject)")
        let single = ["--model=HelloWorld", "--checkpoint=\(run)/outputs/checkpoints/epoch_001.ckpt", "--image_file=\(data)/ct.nii.gz",
                      "--test_crop_size=16,48,48", "--threads=1"]
        let masked = try runner.run("infer", single + ["--mask_file=\(data)/mask.nii.gz", "--output_folder=masked"])
        XCTAssertEqual(masked.status, 0, masked.stderr)
        XCTAssertFalse(masked.stderr.contains("warning"), masked.stderr)
        // Patch progress, at most every 5 s: this small image reports only its last step, "N/N".
        let progress = masked.stderr.split(separator: "\n").filter { $0.hasPrefix("segmenting patches ") }
        XCTAssertEqual(progress.count, 1, masked.stderr)
        let counts = progress.first?.split(separator: " ").first { $0.contains("/") }?.split(separator: "/")
        XCTAssertEqual(counts?.count, 2, masked.stderr)
        XCTAssertEqual(counts?.first, counts?.last, masked.stderr)
        let unmasked = try runner.run("infer", single + ["--output_folder=unmasked"])
        XCTAssertEqual(unmasked.status, 0, unmasked.stderr)
        XCTAssertTrue(unmasked.stderr.contains("no --mask_file was given"), unmasked.stderr)
        for name in ["segmentation.nii.gz", "posterior_region_a.nii.gz", "posterior_background.nii.gz"] {
            let inRun = try Data(contentsOf: URL(fileURLWithPath: "\(run)/outputs/epoch_001/Test/\(subject)/\(name)"))
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: runner.path("masked/\(name)"))), inRun, name)
        }
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: runner.path("unmasked/posterior_background.nii.gz"))),
                          try Data(contentsOf: URL(fileURLWithPath: runner.path("masked/posterior_background.nii.gz"))))
        let notBinary = try runner.run("infer", single + ["--mask_file=\(data)/ct.nii.gz", "--output_folder=bad"])
        XCTAssertEqual(notBinary.status, 3, notBinary.stderr)
        XCTAssertTrue(notBinary.stderr.hasPrefix("ie-infer: error: \(data)/ct.nii.gz: voxel (z="), notBinary.stderr)
    }

    func testCheckpointWithOneFlippedByteIsRefusedWithExitCode3() throws {
        let runner = try ToolRunner(name: "corrupt")
        defer { runner.remove() }
        let run = try Self.makeRun(runner)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + Self.tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: run + "/outputs/checkpoints/epoch_001.ckpt")))
        bytes[bytes.count - 100] ^= 0x01      // inside the tensor data, after the JSON header
        let corrupt = runner.path("corrupt.ckpt")
        try Data(bytes).write(to: URL(fileURLWithPath: corrupt))
        let infer = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--checkpoint=\(corrupt)"])
        XCTAssertEqual(infer.status, 3, infer.stderr)
        XCTAssertTrue(infer.stderr.hasPrefix("ie-infer: error: "), infer.stderr)
        XCTAssertTrue(infer.stderr.contains("corrupt.ckpt"), infer.stderr)
        // Resuming training from a corrupt autosave is refused the same way.
        try Data(bytes).write(to: URL(fileURLWithPath: run + "/outputs/checkpoints/autosave.ckpt"))
        let resume = try runner.run("train", ["--run=\(run)", "--num_epochs=2", "--resume"] + Self.tiny)
        XCTAssertEqual(resume.status, 3, resume.stderr)
    }

    /// A resume under another thread count or convolution backend trains on, but says that the result will not
    /// be the uninterrupted run's bit for bit; the same settings say nothing.
    func testResumingUnderOtherExecutionSettingsWarns() throws {
        let runner = try ToolRunner(name: "resume-warning")
        defer { runner.remove() }
        let run = try Self.makeRun(runner)
        let first = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + Self.tiny)
        XCTAssertEqual(first.status, 0, first.stderr)
        let information = try String(contentsOfFile: run + "/outputs/buildinformation.json", encoding: .utf8)
        let same = try runner.run("train", ["--run=\(run)", "--num_epochs=1", "--resume"] + Self.tiny)
        XCTAssertEqual(same.status, 0, same.stderr)
        XCTAssertFalse(same.stderr.contains("ie-train: warning"), same.stderr)
        let other = try runner.run("train", ["--run=\(run)", "--num_epochs=2", "--resume", "--crop_size=16,32,32",
                                             "--test_crop_size=16,48,48", "--threads=2"],
                                   environment: ["IENET_CONV_BACKEND": "gemm", "IE_EMULATE_RANKS": "2", "IENET_DIRECT_CONV": "0"])
        XCTAssertEqual(other.status, 0, other.stderr)
        let warnings = other.stderr.split(separator: "\n").filter { $0.hasPrefix("ie-train: warning: ") && $0.contains("autosave.ckpt was written with") }
        XCTAssertTrue(warnings.contains { $0.contains("thread count 1, this run uses 2") }, other.stderr)
        XCTAssertTrue(warnings.contains { $0.contains("data-parallel shards 1, this run uses 2") }, other.stderr)
        // The first training's backend, as buildinformation.json recorded it (dnnl where libdnnl-dev was built in).
        if information.contains("convolutions: dnnl") {
            XCTAssertTrue(warnings.contains { $0.contains("convolution backend dnnl, this run uses gemm") }, other.stderr)
        }
        if information.contains(": on (AVX2 + FMA)") {
            XCTAssertTrue(warnings.contains { $0.contains("direct few-channel conv kernel on, this run uses off") }, other.stderr)
        }
    }

    /// A training whose loss or gradients become non-finite stops with one error line, leaves the run failed and
    /// registers no model; a non-finite learning rate is refused before anything runs.
    func testDivergedTrainingFailsTheRunAndRegistersNothing() throws {
        let runner = try ToolRunner(name: "diverge")
        defer { runner.remove() }
        let run = try Self.makeRun(runner, subjects: 6)
        let infinite = try runner.run("train", ["--run=\(run)", "--l_rate=inf"] + Self.tiny)
        XCTAssertEqual(infinite.status, 2, infinite.stderr)
        XCTAssertTrue(infinite.stderr.contains("--l_rate=inf") && infinite.stderr.contains("a finite number"), infinite.stderr)
        let diverged = try runner.run("train", ["--run=\(run)", "--num_epochs=3", "--l_rate=1e30",
                                                "--optimizer_type=SGD", "--momentum=0"] + Self.tiny)
        XCTAssertEqual(diverged.status, 1, diverged.stderr)
        let lines = diverged.stderr.split(separator: "\n").filter { $0.hasPrefix("ie-train: error: ") }
        XCTAssertEqual(lines.count, 1, diverged.stderr)
        XCTAssertTrue(diverged.stderr.contains("training diverged at epoch"), diverged.stderr)
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))) as? [String: Any]
        XCTAssertEqual(info?["status"] as? String, "failed")
        XCTAssertFalse(runner.exists("models/HelloWorld"), "a diverged training registers no model")
    }

    func testBadOverrideIsExitCode2NamingTheFlag() throws {
        let runner = try ToolRunner(name: "usage")
        defer { runner.remove() }
        let run = try Self.makeRun(runner, subjects: 6)
        let typo = try runner.run("train", ["--run=\(run)", "--num_epoch=3"])
        XCTAssertEqual(typo.status, 2, typo.stderr)
        XCTAssertTrue(typo.stderr.contains("--num_epoch"), typo.stderr)
        let badBool = try runner.run("train", ["--run=\(run)", "--train=maybe"])
        XCTAssertEqual(badBool.status, 2, badBool.stderr)
        XCTAssertTrue(badBool.stderr.contains("--train=maybe"), badBool.stderr)
        let help = try runner.run("train", ["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("Examples:"))
    }
}

/// InnerEye's "testing an existing model": no training, the given weights evaluated on Val and Test.
final class ExistingModelTests: XCTestCase {
    func testNoTrainWithRecoveredWeightsEvaluatesThemInTheNewRun() throws {
        let runner = try ToolRunner(name: "notrain")
        defer { runner.remove() }
        let first = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 2)
        let recovery = URL(fileURLWithPath: first).deletingLastPathComponent().lastPathComponent + ":" + URL(fileURLWithPath: first).lastPathComponent

        let second = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let noTrain = try runner.run("train", ["--run=\(second)", "--no-train", "--run_recovery_id=\(recovery)", "--start_epoch=2"] + PipelineTests.tiny)
        XCTAssertEqual(noTrain.status, 0, noTrain.stderr)
        for mode in ["Val", "Test"] {
            XCTAssertEqual(try runner.run("infer", ["--run=\(second)", "--mode=\(mode)", "--threads=1"]).status, 0)
            XCTAssertEqual(try runner.run("metrics", ["run", "--run=\(second)", "--mode=\(mode)"]).status, 0)
            XCTAssertTrue(FileManager.default.fileExists(atPath: second + "/outputs/epoch_002/\(mode)/metrics.csv"), mode)
        }
        // The adopted checkpoint is byte-identical to the recovered run's epoch-2 checkpoint; nothing was trained.
        let a = try Data(contentsOf: URL(fileURLWithPath: first + "/outputs/checkpoints/epoch_002.ckpt"))
        let b = try Data(contentsOf: URL(fileURLWithPath: second + "/outputs/checkpoints/epoch_002.ckpt"))
        XCTAssertEqual(a, b)
        XCTAssertFalse(FileManager.default.fileExists(atPath: second + "/outputs/Train/epoch_metrics.csv"))
    }
}

import Foundation
import XCTest

/// What a run's run.json and the model registry say after the steps a user runs (issue 10, item 5): a run's times
/// are its training's, the registered model is recorded, a registered ensemble is evaluated as an ensemble, a
/// recovery with another fold count is refused, and `ie-models` lists, shows and removes models.
final class RunRecordTests: XCTestCase {
    /// ie-infer, ie-metrics and ie-report on a trained run leave started/finished alone; a usage error (metrics
    /// before inference, an unsaved epoch) leaves the status alone (RunSafetyTests: a failure and its clearing).
    func testEvaluationToolsKeepTheTrainingTimesAndTheRegisteredModel() throws {
        let runner = try ToolRunner(name: "runtimes")
        defer { runner.remove() }
        let run = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        let trained = try HPCTest.json(run + "/run.json")
        XCTAssertEqual(trained["status"] as? String, "completed")
        XCTAssertEqual(trained["registered_model"] as? String, "HelloWorld:1")
        let started = try XCTUnwrap(trained["started"] as? String)
        let finished = try XCTUnwrap(trained["finished"] as? String)

        Thread.sleep(forTimeInterval: 1.1)   // run.json times have one-second resolution
        let early = try runner.run("metrics", ["run", "--run=\(run)", "--mode=Val"])
        XCTAssertEqual(early.status, 2, "no segmentations yet: \(early.stderr)")
        let notFailed = try HPCTest.json(run + "/run.json")
        XCTAssertEqual(notFailed["status"] as? String, "completed", "the command was wrong, not the run")
        XCTAssertNil(notFailed["error"] as? String)

        for step in [("infer", ["--run=\(run)", "--mode=Val", "--threads=1"]), ("metrics", ["run", "--run=\(run)", "--mode=Val"]),
                     ("report", ["--run=\(run)"])] {
            let result = try runner.run(step.0, step.1)
            XCTAssertEqual(result.status, 0, "ie-\(step.0): \(result.stderr)")
        }
        let after = try HPCTest.json(run + "/run.json")
        XCTAssertEqual(after["status"] as? String, "completed")
        XCTAssertNil(after["error"] as? String)
        XCTAssertEqual(after["started"] as? String, started, "a run's times are its training's")
        XCTAssertEqual(after["finished"] as? String, finished)
        XCTAssertEqual(after["registered_model"] as? String, "HelloWorld:1")

        // An epoch that was never saved names the saved ones; a negative epoch is a usage error.
        let unsaved = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--epoch=20", "--threads=1"])
        XCTAssertEqual(unsaved.status, 2, unsaved.stderr)
        XCTAssertTrue(unsaved.stderr.contains("epoch_020.ckpt: epoch 20 has no checkpoint in the run (saved: epoch_001.ckpt)"), unsaved.stderr)
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["status"] as? String, "completed")
        let negative = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--epoch=-1"])
        XCTAssertEqual(negative.status, 2, negative.stderr)
        XCTAssertTrue(negative.stderr.contains("expected an epoch number of at least 1"), negative.stderr)

        // Rerunning the finished training step finds its registration: no second copy under HelloWorld:2.
        let again = try runner.run("train", ["--run=\(run)", "--resume"])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("already registered as model HelloWorld:1"), again.stderr)
        XCTAssertFalse(runner.exists("models/HelloWorld/2"))
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["registered_model"] as? String, "HelloWorld:1")

        let list = try runner.run("models", ["list"])
        XCTAssertEqual(list.status, 0, list.stderr)
        XCTAssertTrue(list.stdout.hasPrefix("HelloWorld:1  model  created "), list.stdout)
        let runID = URL(fileURLWithPath: run).lastPathComponent
        XCTAssertTrue(list.stdout.contains(runID), list.stdout)
        let show = try runner.run("models", ["show", "HelloWorld:1", "--verify"])
        XCTAssertEqual(show.status, 0, show.stderr)
        XCTAssertTrue(show.stdout.contains("checkpoints (SHA-256 verified):") && show.stdout.contains("model_name: HelloWorld"), show.stdout)
        for (arguments, code) in [(["show", "../../etc:1"], Int32(2)), (["show", "HelloWorld:7"], 2), (["remove"], 2), (["frobnicate"], 2)] {
            let bad = try runner.run("models", arguments)
            XCTAssertEqual(bad.status, code, "\(arguments): \(bad.stderr)")
            XCTAssertTrue(bad.stderr.hasPrefix("ie-models: error: "), bad.stderr)
        }
        let remove = try runner.run("models", ["remove", "HelloWorld:1"])
        XCTAssertEqual(remove.status, 0, remove.stderr)
        XCTAssertFalse(runner.exists("models/HelloWorld/1"))
        XCTAssertEqual(try runner.run("models", ["list"]).stdout, "no registered models\n")
    }

    /// A local 2-fold cross-validation: the ensemble id is printed and recorded; `ie-models list` shows the folds
    /// under it; `--no-train --model_id=<ensemble>` evaluates the ensemble (the same segmentation as ie-ensemble
    /// on that model); recovering the parent with another fold count is refused naming both counts.
    func testCrossValidationEnsembleIsRecordedListedAndEvaluatedAsAnEnsemble() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let settings = "--settings=\(project)/settings.yml"
        let parent = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2"])
        // ie-train trains one run: a parent is refused before anything is written, naming ie-crossval.
        let refused = try HPCTest.run(bin + "/ie-train", [settings, "--run=\(parent)", "--threads=1"], in: project)
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.hasPrefix("ie-train: error: ") && refused.stderr.contains("ie-crossval --run="), refused.stderr)
        XCTAssertEqual(try HPCTest.json(parent + "/run.json")["children"] as? [String] ?? [], [], "no fold created")
        let cv = try HPCTest.run(bin + "/ie-crossval", [settings, "--run=\(parent)", "--threads=1"], in: project)
        XCTAssertEqual(cv.status, 0, cv.stderr)
        let ensemble = try XCTUnwrap(try HPCTest.json(parent + "/run.json")["registered_model"] as? String)
        XCTAssertEqual(ensemble, "HelloWorld:3", "each fold registers itself first")
        XCTAssertEqual(cv.stdout.split(separator: "\n").last.map(String.init), ensemble, "printed last on stdout: \(cv.stdout)")
        for k in 0..<2 {
            XCTAssertNotNil(try HPCTest.json("\(parent)_\(k)/run.json")["registered_model"] as? String, "fold \(k)")
        }
        // The reports are written after their runs are completed: their run tables say so (they said "running").
        for run in [parent, "\(parent)_0", "\(parent)_1"] {
            let notebook = try String(contentsOfFile: run + "/outputs/report.ipynb", encoding: .utf8)
            XCTAssertTrue(notebook.contains(#"status</td><td class=\"t\">completed"#), "\(run): the report's status is not completed")
        }

        // The ensemble step run again finds its registration (no copy of HelloWorld:3 as HelloWorld:4).
        let again = try HPCTest.run(bin + "/ie-crossval", ["ensemble", settings, "--run=\(parent)", "--threads=1"], in: project)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("already registered as HelloWorld:3"), again.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: project + "/models/HelloWorld/4"))

        let list = try HPCTest.run(bin + "/ie-models", [settings, "list"], in: project)
        XCTAssertEqual(list.status, 0, list.stderr)
        let lines = list.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 3, list.stdout)
        XCTAssertTrue(lines.first?.hasPrefix("HelloWorld:3  ensemble of 2  ") ?? false, list.stdout)
        XCTAssertEqual(Set(lines.dropFirst().map { String($0.prefix(18)) }), ["    HelloWorld:1  ", "    HelloWorld:2  "], list.stdout)
        let csv = try HPCTest.run(bin + "/ie-models", [settings, "list", "HelloWorld", "--format=csv"], in: project)
        let rows = try HPCTest.python("""
        import csv, io
        rows = list(csv.DictReader(io.StringIO('''\(csv.stdout)''')))
        print(';'.join(r['model_id'] + '/' + r['kind'] + '/' + r['ensemble'] for r in rows))
        """)
        XCTAssertEqual(rows.trimmingCharacters(in: .whitespacesAndNewlines), "HelloWorld:3/ensemble/;HelloWorld:1/fold/HelloWorld:3;HelloWorld:2/fold/HelloWorld:3")

        // Another fold count than the parent's, when recovering it: refused before a run folder is made.
        let parentID = URL(fileURLWithPath: parent).lastPathComponent
        let runsBefore = try FileManager.default.contentsOfDirectory(atPath: project + "/runs/hpc").sorted()
        let recovery = try HPCTest.run(bin + "/ie-split", [settings, "--model=HelloWorld", "--experiment=hpc", "--run_recovery_id=hpc:\(parentID)",
                                                           "--number_of_cross_validation_splits=3", "--start_epoch=1"], in: project)
        XCTAssertEqual(recovery.status, 2, recovery.stderr)
        XCTAssertTrue(recovery.stderr.contains("with 2 folds") && recovery.stderr.contains("number_of_cross_validation_splits=3"), recovery.stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: project + "/runs/hpc").sorted(), runsBefore)

        // --no-train with the ensemble's id: the run's Test segmentations are the ensemble's.
        let run = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments)
        let noTrain = try HPCTest.run(bin + "/ie-train", [settings, "--run=\(run)", "--no-train", "--model_id=\(ensemble)", "--threads=1"], in: project)
        XCTAssertEqual(noTrain.status, 0, noTrain.stderr)
        let infer = try HPCTest.run(bin + "/ie-infer", [settings, "--run=\(run)", "--mode=Test", "--threads=1"], in: project)
        XCTAssertEqual(infer.status, 0, infer.stderr)
        let subject = try XCTUnwrap(try HPCTest.subjects(csv: run + "/outputs/test_dataset.csv").first)
        let folder = String(format: "%03d", Int(subject) ?? 0)
        let image = "\(project)/datasets/HelloWorld/\(folder)/ct.nii.gz"
        let direct = try HPCTest.run(bin + "/ie-ensemble", [settings, "--model_id=\(ensemble)", "--image_file=\(image)",
                                                            "--output_folder=\(project)/direct", "--threads=1", "--test_crop_size=16,48,48"], in: project)
        XCTAssertEqual(direct.status, 0, direct.stderr)
        let fold0 = try HPCTest.run(bin + "/ie-infer", [settings, "--model_id=HelloWorld:1", "--image_file=\(image)",
                                                        "--output_folder=\(project)/fold0", "--threads=1", "--test_crop_size=16,48,48"], in: project)
        XCTAssertEqual(fold0.status, 0, fold0.stderr)
        // A single image has no mask channel; inside the subject's mask the run's posteriors must be the ensemble's.
        let compared = try HPCTest.python("""
        import nibabel as nib, numpy as np
        load = lambda p: np.asarray(nib.load(p).dataobj).astype(int)
        mask = load('\(project)/datasets/HelloWorld/\(folder)/mask.nii.gz') > 0
        run = load('\(run)/outputs/epoch_002/Test/\(folder)/posterior_region_a.nii.gz')[mask]
        ens = load('\(project)/direct/posterior_region_a.nii.gz')[mask]
        one = load('\(project)/fold0/posterior_region_a.nii.gz')[mask]
        print(int(mask.sum() > 0 and np.array_equal(run, ens)), int(np.array_equal(run, one)), np.abs(run - ens).max(), np.abs(run - one).max())
        """)
        XCTAssertTrue(compared.hasPrefix("1 0 "), compared + ": the run's posteriors equal ie-ensemble's on the ensemble, not fold 0's alone")

        // Removing a fold's model leaves the ensemble (it holds its own copies) usable.
        XCTAssertEqual(try HPCTest.run(bin + "/ie-models", [settings, "remove", "HelloWorld:1"], in: project).status, 0)
        let verify = try HPCTest.run(bin + "/ie-models", [settings, "show", ensemble, "--verify"], in: project)
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.contains("folds: HelloWorld:2\n"), verify.stdout)
    }
}

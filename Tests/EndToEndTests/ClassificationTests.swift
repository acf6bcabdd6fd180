import Foundation
import XCTest
import IETestSupport

/// HelloClassification through the built tools: split, train, resume and the per-epoch files, with the metrics
/// recomputed by scikit-learn from the model outputs the run wrote; bad scalar datasets as one-line errors.
final class ClassificationTests: XCTestCase {
    static let quick = ["--threads=1", "--save_start_epoch=1", "--save_step_epochs=1", "--train_batch_size=8"]

    static func makeRun(_ runner: ToolRunner, subjects: Int = 40) throws -> String {
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloClassification", "--kind=classification",
                                             "--subjects=\(subjects)", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try runner.run("split", ["--model=HelloClassification"])
        XCTAssertEqual(split.status, 0, split.stderr)
        return split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testTrainWritesEpochMetricsThatScikitLearnReproduces() throws {
        let runner = try ToolRunner(name: "classification")
        defer { runner.remove() }
        let run = try Self.makeRun(runner)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=3"] + Self.quick)
        XCTAssertEqual(train.status, 0, train.stderr)
        for file in ["checkpoints/epoch_001.ckpt", "checkpoints/epoch_003.ckpt", "checkpoints/autosave.ckpt",
                     "Train/epoch_metrics.csv", "Val/epoch_metrics.csv", "Train/model_outputs.csv", "Val/model_outputs.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/outputs/" + file), "missing outputs/\(file)")
        }
        // The Val AUC, AUC PR, threshold and accuracy of every epoch, recomputed from model_outputs.csv.
        let script = """
        import sys, json, pandas as pd, numpy as np
        from sklearn.metrics import roc_auc_score, roc_curve, precision_recall_curve, auc
        outputs = pd.read_csv(sys.argv[1] + "/Val/model_outputs.csv")
        metrics = pd.read_csv(sys.argv[1] + "/Val/epoch_metrics.csv")
        rows = []
        for epoch, group in outputs.groupby("epoch"):
            y, s = group["label"].values, group["model_output"].values
            fpr, tpr, thr = roc_curve(y, s); i = int(np.argmax(tpr - fpr))
            p, r, _ = precision_recall_curve(y, s)
            m = metrics[metrics.epoch == epoch].iloc[0]
            rows.append([roc_auc_score(y, s), m.AreaUnderRocCurve, auc(r, p), m.AreaUnderPRCurve, float(thr[i]), m.OptimalThreshold,
                         float(np.mean((s.astype(np.float32) > np.float32(thr[i])) == (y > 0.5))), m.AccuracyAtOptimalThreshold,
                         len(group), m.SubjectCount])
        finite = lambda v: float(v) if np.isfinite(v) else None   # an infinite threshold: no subject above it
        print(json.dumps(dict(rows=[[finite(v) for v in r] for r in rows], columns=list(outputs.columns),
                              epochs=sorted(outputs.epoch.unique().tolist()))))
        """
        let result = try XCTUnwrap(PythonOracle.json(script, arguments: [run + "/outputs"]) as? [String: Any])
        XCTAssertEqual(result["columns"] as? [String], ["prediction_target", "epoch", "subject", "model_output", "label",
                                                         "cross_validation_split_index", "data_split"])
        XCTAssertEqual(result["epochs"] as? [Int], [1, 2, 3])
        // ie-infer on one Val subject's image with the epoch-3 checkpoint prints what the training loop's Val pass of
        // epoch 3 wrote for that subject (the same weights in inference mode, the same val transforms).
        let valRows = try String(contentsOfFile: run + "/outputs/Val/model_outputs.csv", encoding: .utf8).split(separator: "\n")
        let last = try XCTUnwrap(valRows.last).split(separator: ",").map(String.init)   // Default,3,<subject>,<output>,...
        let infer = try runner.run("infer", ["--model=HelloClassification", "--checkpoint=\(run)/outputs/checkpoints/epoch_003.ckpt",
                                             "--image_file=datasets/HelloClassification/\(last[2]).png", "--output_folder=single"])
        XCTAssertEqual(infer.status, 0, infer.stderr)
        XCTAssertEqual(infer.stdout, "Default\t\(last[3])\n")
        XCTAssertTrue(runner.exists("single/model_outputs.csv"))
        // Images the 1-channel 2-D model cannot take: an RGB PNG (3 channels; its red plane alone was used) and a
        // volume (depth 16 against image_size [H, W]). One-line input errors (exit 3), not an output.
        _ = try PythonOracle.run("""
            import sys, numpy as np, nibabel as nib
            from PIL import Image
            grey = np.asarray(Image.open(sys.argv[1]))
            Image.fromarray(np.stack([grey, grey // 2, grey // 3], -1)).save(sys.argv[2])
            nib.save(nib.Nifti1Image(np.stack([grey.T] * 16, axis=2).astype(np.float32), np.eye(4)), sys.argv[3])
            """, arguments: [runner.path("datasets/HelloClassification/\(last[2]).png"), runner.path("rgb.png"), runner.path("volume.nii.gz")])
        for (file, fragment) in [("rgb.png", "image has 3 channels (an RGB PNG has 3), expected the model's 1"),
                                 ("volume.nii.gz", "image size 16x")] {
            let wrong = try runner.run("infer", ["--model=HelloClassification", "--checkpoint=\(run)/outputs/checkpoints/epoch_003.ckpt",
                                                 "--image_file=\(file)", "--output_folder=wrong"])
            XCTAssertEqual(wrong.status, 3, "\(file): \(wrong.stderr)")
            XCTAssertTrue(wrong.stderr.contains(fragment) && wrong.stderr.split(separator: "\n").count == 1, wrong.stderr)
        }
        for row in try XCTUnwrap(result["rows"] as? [[Any]]) {
            let values = row.map { $0 as? Double }
            // Outputs are written with 6 decimals, the metrics from the unrounded values.
            for k in stride(from: 0, to: 10, by: 2) {
                if let a = values[k], let b = values[k + 1] { XCTAssertEqual(a, b, accuracy: 2e-3, "\(row)") }
                else { XCTAssertTrue(values[k] == nil && values[k + 1] == nil, "\(row)") }
            }
        }
    }

    /// A 2-fold cross-validation here (ie-crossval): CrossValResults holds each fold's and the ensemble's metrics
    /// and outputs, and the ensemble's Test outputs are the mean of the folds' (checked with pandas).
    func testCrossValidationEnsemblesTheFolds() throws {
        let runner = try ToolRunner(name: "classification-cv")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloClassification", "--kind=classification",
                                             "--subjects=30", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try runner.run("split", ["--model=HelloClassification", "--number_of_cross_validation_splits=2"])
        XCTAssertEqual(split.status, 0, split.stderr)
        let parent = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let cv = try runner.run("crossval", ["--run=\(parent)", "--num_epochs=2"] + Self.quick)
        XCTAssertEqual(cv.status, 0, cv.stderr)
        let results = parent + "/outputs/CrossValResults"
        for file in ["MetricsAcrossAllRuns.csv", "model_outputs.csv", "0/epoch_002/Test/metrics.csv", "1/epoch_002/Val/model_outputs.csv",
                     "ENSEMBLE/epoch_002/Test/model_outputs.csv"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: results + "/" + file), file)
        }
        let script = """
        import sys, json, pandas as pd
        r = sys.argv[1]
        folds = [pd.read_csv(f"{r}/{k}/epoch_002/Test/model_outputs.csv", dtype={'subject': str}).set_index('subject') for k in (0, 1)]
        ensemble = pd.read_csv(f"{r}/ENSEMBLE/epoch_002/Test/model_outputs.csv", dtype={'subject': str}).set_index('subject')
        mean = (folds[0].model_output + folds[1].model_output.reindex(folds[0].index)) / 2
        across = pd.read_csv(f"{r}/MetricsAcrossAllRuns.csv", dtype={'split': str})
        print(json.dumps(dict(worst=float((mean - ensemble.model_output.reindex(mean.index)).abs().max()), n=len(mean),
                              splits=sorted(set(across.split)), modes=sorted(set(across['mode'])))))
        """
        let check = try XCTUnwrap(PythonOracle.json(script, arguments: [results]) as? [String: Any])
        XCTAssertLessThan(try XCTUnwrap(check["worst"] as? Double), 2e-6, "\(check)")
        XCTAssertGreaterThan(check["n"] as? Int ?? 0, 0)
        XCTAssertEqual(check["splits"] as? [String], ["0", "1", "ENSEMBLE"])
        XCTAssertEqual(check["modes"] as? [String], ["Test", "Val"])
        // ie-ensemble with the folds' checkpoints on the parent's Test split writes what the ensemble step wrote.
        let written = parent + "/outputs/epoch_002/Test/model_outputs.csv"
        let before = FileManager.default.contents(atPath: written)
        try FileManager.default.removeItem(atPath: written)
        let ensemble = try runner.run("ensemble", ["--run=\(parent)", "--mode=Test", "--epoch=2",
                                                   "--checkpoint=\(parent)_0/outputs/checkpoints/epoch_002.ckpt",
                                                   "--checkpoint=\(parent)_1/outputs/checkpoints/epoch_002.ckpt"])
        XCTAssertEqual(ensemble.status, 0, ensemble.stderr)
        XCTAssertEqual(FileManager.default.contents(atPath: written), before)
    }

    /// A run resumed from the state checkpoint of epoch 2 trains epoch 3 to the same bytes.
    func testResumedRunIsBitIdentical() throws {
        let runner = try ToolRunner(name: "classification-resume")
        defer { runner.remove() }
        let run = try Self.makeRun(runner, subjects: 24)
        XCTAssertEqual(try runner.run("train", ["--run=\(run)", "--num_epochs=3"] + Self.quick).status, 0)
        let second = try Self.runWithTheSameSplits(runner, as: run)
        let fm = FileManager.default
        try fm.createDirectory(atPath: second + "/outputs/checkpoints", withIntermediateDirectories: true)
        try fm.copyItem(atPath: run + "/outputs/checkpoints/epoch_002.ckpt", toPath: second + "/outputs/checkpoints/autosave.ckpt")
        let resumed = try runner.run("train", ["--run=\(second)", "--num_epochs=3", "--resume"] + Self.quick)
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(fm.contents(atPath: second + "/outputs/checkpoints/epoch_003.ckpt"),
                       fm.contents(atPath: run + "/outputs/checkpoints/epoch_003.ckpt"))
    }

    /// The next batch's transforms prepared on a worker (default) or just before each step (IENET_DATA_PREFETCH=0):
    /// the same checkpoints, model outputs and epoch logs (but for the seconds column).
    func testPrefetchOnAndOffWriteTheSameBytes() throws {
        let runner = try ToolRunner(name: "classification-prefetch")
        defer { runner.remove() }
        let run = try Self.makeRun(runner, subjects: 24)
        let second = try Self.runWithTheSameSplits(runner, as: run)
        XCTAssertEqual(try runner.run("train", ["--run=\(run)", "--num_epochs=2"] + Self.quick).status, 0)
        let off = try runner.run("train", ["--run=\(second)", "--num_epochs=2"] + Self.quick, environment: ["IENET_DATA_PREFETCH": "0"])
        XCTAssertEqual(off.status, 0, off.stderr)
        let fm = FileManager.default
        for file in ["checkpoints/epoch_001.ckpt", "checkpoints/epoch_002.ckpt", "Train/model_outputs.csv", "Val/model_outputs.csv"] {
            let a = fm.contents(atPath: run + "/outputs/" + file)
            XCTAssertGreaterThan(a?.count ?? 0, 100, file)
            XCTAssertEqual(a, fm.contents(atPath: second + "/outputs/" + file), file)
        }
        for mode in ["Train", "Val"] {
            func withoutSeconds(_ folder: String) throws -> [[Substring]] {
                let lines = try String(contentsOfFile: folder + "/outputs/\(mode)/epoch_metrics.csv", encoding: .utf8).split(separator: "\n")
                let seconds = try XCTUnwrap(lines.first?.split(separator: ",").firstIndex(of: "seconds"))
                return lines.map { line in line.split(separator: ",", omittingEmptySubsequences: false).enumerated().filter { $0.offset != seconds }.map(\.element) }
            }
            let a = try withoutSeconds(run)
            XCTAssertEqual(a.count, 3)
            XCTAssertEqual(a, try withoutSeconds(second), mode)
        }
    }

    /// A new run of HelloClassification with `run`'s split files.
    static func runWithTheSameSplits(_ runner: ToolRunner, as run: String) throws -> String {
        let second = try runner.run("split", ["--model=HelloClassification"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let fm = FileManager.default
        for file in ["train_dataset.csv", "val_dataset.csv", "test_dataset.csv"] {
            try fm.removeItem(atPath: second + "/outputs/" + file)
            try fm.copyItem(atPath: run + "/outputs/" + file, toPath: second + "/outputs/" + file)
        }
        return second
    }

    /// Bad scalar datasets: ie-split names the file and line, exit 3; a wrong image size stops ie-train naming the image.
    func testBadScalarDatasetsAreOneLineErrors() throws {
        let runner = try ToolRunner(name: "classification-bad")
        defer { runner.remove() }
        _ = try Self.makeRun(runner, subjects: 12)
        let csv = runner.path("datasets/HelloClassification/dataset.csv")
        let original = try String(contentsOfFile: csv, encoding: .utf8)
        var lines = original.split(separator: "\n").map(String.init)
        func check(_ edit: (inout [String]) -> Void, line: Int, _ words: String, extra: [String] = []) throws {
            var edited = lines
            edit(&edited)
            try (edited.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
            let split = try runner.run("split", ["--model=HelloClassification"] + extra)
            XCTAssertEqual(split.status, 3, split.stderr)
            XCTAssertTrue(split.stderr.contains("dataset.csv:\(line): "), split.stderr)
            XCTAssertTrue(split.stderr.contains(words), split.stderr)
            XCTAssertEqual(split.stderr.split(separator: "\n").count, 1, split.stderr)
        }
        try check({ $0[3] = $0[3].replacingOccurrences(of: ",image,003.png,0,", with: ",image,003.png,,").replacingOccurrences(of: ",image,003.png,1,", with: ",image,003.png,,") }, line: 4, "label is missing")
        try check({ $0[2] = $0[2].replacingOccurrences(of: "002.png,0,", with: "002.png,7,").replacingOccurrences(of: "002.png,1,", with: "002.png,7,") }, line: 3, "not a binary label")
        try check({ $0[5] = $0[5].replacingOccurrences(of: "005.png,", with: "005.png,").components(separatedBy: ",").enumerated().map { $0.offset == 5 ? "forty" : $0.element }.joined(separator: ",") },
                  line: 6, "not a finite number", extra: ["--numerical_columns=age"])
        lines[4] = lines[4].components(separatedBy: ",").enumerated().map { $0.offset == 4 ? "5" : $0.element }.joined(separator: ",")
        try check({ _ in }, line: 5, "out of range", extra: ["--label_value_column=location", "--class_names=left,right"])
        lines = original.split(separator: "\n").map(String.init)
        // An image of another size: ie-train stops with the image file named.
        try original.write(toFile: csv, atomically: true, encoding: .utf8)
        let run = try runner.run("split", ["--model=HelloClassification"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let wrong = try runner.run("synth", ["--output_folder=wrong", "--kind=classification", "--subjects=1", "--size=48", "--quiet"])
        XCTAssertEqual(wrong.status, 0, wrong.stderr)
        let firstImage = runner.path("datasets/HelloClassification/001.png")
        try FileManager.default.removeItem(atPath: firstImage)
        try FileManager.default.copyItem(atPath: runner.path("wrong/001.png"), toPath: firstImage)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + Self.quick)
        XCTAssertEqual(train.status, 3, train.stderr)
        XCTAssertTrue(train.stderr.contains("dataset.csv:2: subject 001: ") && train.stderr.contains("001.png: image size 48x48")
                      && train.stderr.contains("expected image_size 32x32"), train.stderr)
        XCTAssertEqual(train.stderr.split(separator: "\n").filter { $0.contains("error") }.count, 1, train.stderr)
        // The transforms of that batch ran on the prefetch worker: the same error line and exit status as without it.
        let sequential = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + Self.quick, environment: ["IENET_DATA_PREFETCH": "0"])
        XCTAssertEqual(sequential.status, train.status)
        let errorLine = { (text: String) in text.split(separator: "\n").filter { $0.contains("error") } }
        XCTAssertEqual(errorLine(sequential.stderr), errorLine(train.stderr))
    }
}

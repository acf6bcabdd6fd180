import Foundation
import XCTest
import IETestSupport

/// A registered model is run by `--model_id` with the config it was trained with (model.json's), not its config
/// file's as it is now (SPEC §6); a checkpoint whose image channels or classes are not the config's is refused
/// before inference (exit 3). Each result is compared with the run's own outputs, written by ie-evaluate.
final class RegisteredModelConfigTests: XCTestCase {
    /// A HelloClassification model trained as a regressor of age: ie-infer --model_id prints its raw output (the
    /// run's model_outputs.csv value), not the sigmoid a classifier would; a command-line override still wins.
    func testRegressionModelIsInferredWithItsStoredConfig() throws {
        let runner = try ToolRunner(name: "registered-regression")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloClassification", "--kind=classification",
                                             "--subjects=40", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try runner.run("split", ["--model=HelloClassification", "--num_epochs=2", "--model_category=Regression",
                                             "--label_value_column=age", "--loss_type=MSE"])
        XCTAssertEqual(split.status, 0, split.stderr)
        let run = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let train = try runner.run("train", ["--run=\(run)"] + ClassificationTests.quick)
        XCTAssertEqual(train.status, 0, train.stderr)
        let evaluate = try runner.run("evaluate", ["--run=\(run)", "--threads=1"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["registered_model"] as? String, "HelloClassification:1")

        // prediction_target,epoch,subject,model_output,label,...: the first Test subject.
        let rows = try String(contentsOfFile: run + "/outputs/epoch_002/Test/model_outputs.csv", encoding: .utf8).split(separator: "\n")
        let row = try XCTUnwrap(rows.dropFirst().first).split(separator: ",").map(String.init)
        let image = "--image_file=datasets/HelloClassification/\(row[2]).png"
        let infer = try runner.run("infer", ["--model_id=HelloClassification:latest", image, "--output_folder=single", "--threads=1"])
        XCTAssertEqual(infer.status, 0, infer.stderr)
        XCTAssertEqual(infer.stdout, "\(row[0])\t\(row[3])\n", "the regressor's output as ie-evaluate wrote it")

        // The command line still wins over the stored values: as a classifier, the same output through a sigmoid.
        let classifier = try runner.run("infer", ["--model_id=HelloClassification:1", image, "--output_folder=classifier",
                                                  "--threads=1", "--model_category=Classification", "--loss_type=BCEWithLogits"])
        XCTAssertEqual(classifier.status, 0, classifier.stderr)
        let fields = classifier.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\t")
        let raw = try XCTUnwrap(Double(row[3])), printed = try XCTUnwrap(fields.last.flatMap { Double($0) })
        XCTAssertEqual(printed, 1 / (1 + exp(-raw)), accuracy: 2e-6, classifier.stdout)
    }

    /// A HelloWorld model trained on two image channels (ct, region_a) for one structure (region_b): ie-infer and
    /// ie-ensemble --model_id take its two channels and write its one structure, the run's own posteriors inside the
    /// subject's mask. The same checkpoint with --model=HelloWorld (1 channel, 2 structures), or adopted by a
    /// HelloWorld run, is refused (exit 3) naming it and both architectures; a stored parameter that no longer exists is an error naming model.json.
    func testSegmentationModelIsInferredWithItsStoredChannelsAndStructures() throws {
        let runner = try ToolRunner(name: "registered-segmentation")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=6", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let split = try runner.run("split", ["--model=HelloWorld", "--image_channels=ct,region_a", "--ground_truth_ids=region_b",
                                             "--class_weights=0.02,0.98", "--crop_size=16,32,32", "--test_crop_size=16,48,48",
                                             "--num_epochs=1"])
        XCTAssertEqual(split.status, 0, split.stderr)
        let run = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let train = try runner.run("train", ["--run=\(run)", "--threads=1"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let evaluate = try runner.run("evaluate", ["--run=\(run)", "--threads=1"])
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)
        XCTAssertEqual(try HPCTest.json(run + "/run.json")["registered_model"] as? String, "HelloWorld:1")

        let subject = try XCTUnwrap(try HPCTest.subjects(csv: run + "/outputs/test_dataset.csv").first)
        let folder = String(format: "%03d", Int(subject) ?? 0)
        let images = ["ct", "region_a"].map { "--image_file=datasets/HelloWorld/\(folder)/\($0).nii.gz" }
        for tool in ["infer", "ensemble"] {
            let single = try runner.run(tool, ["--model_id=HelloWorld:latest"] + images + ["--output_folder=\(tool)", "--threads=1"])
            XCTAssertEqual(single.status, 0, "ie-\(tool): \(single.stderr)")
            XCTAssertFalse(runner.exists("\(tool)/posterior_region_a.nii.gz"), "region_a is an input channel, not a structure")
            // A single image has no mask channel; inside the subject's mask the posteriors must be the run's.
            let compared = try ToolRunner.python("""
            import nibabel as nib, numpy as np
            load = lambda p: np.asarray(nib.load(p).dataobj).astype(int)
            mask = load('\(runner.path("datasets/HelloWorld/\(folder)/mask.nii.gz"))') > 0
            run = load('\(run)/outputs/epoch_001/Test/\(folder)/posterior_region_b.nii.gz')[mask]
            one = load('\(runner.path("\(tool)/posterior_region_b.nii.gz"))')[mask]
            print(int(mask.sum() > 0 and np.array_equal(run, one)), np.abs(run - one).max())
            """)
            XCTAssertTrue(compared.hasPrefix("1 "), "ie-\(tool): \(compared)")
        }

        // The checkpoint with a config it does not fit: one line naming the checkpoint and both architectures.
        let checkpoint = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: runner.path("models/HelloWorld/1"))
            .first { $0.hasSuffix(".ckpt") })
        let mismatch = try runner.run("infer", ["--model=HelloWorld", "--checkpoint=models/HelloWorld/1/\(checkpoint)", images[0],
                                                "--output_folder=mismatch", "--threads=1"])
        XCTAssertEqual(mismatch.status, 3, mismatch.stderr)
        XCTAssertEqual(mismatch.stderr, "ie-infer: error: models/HelloWorld/1/\(checkpoint): checkpoint has 2 image channels and 2 classes, "
                       + "expected 1 image channel (ct) and 3 classes (background, region_a, region_b) as model HelloWorld's config\n")
        XCTAssertFalse(runner.exists("mismatch/segmentation.nii.gz"))
        // Adopted by a HelloWorld run (--no-train): refused the same way, before the run takes it as its checkpoint.
        let other = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let adopt = try runner.run("train", ["--run=\(other)", "--no-train", "--model_id=HelloWorld:1", "--threads=1"])
        XCTAssertEqual(adopt.status, 3, adopt.stderr)
        XCTAssertTrue(adopt.stderr.contains("checkpoint has 2 image channels and 2 classes, expected 1 image channel (ct)"), adopt.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: other + "/outputs/checkpoints/epoch_001.ckpt"))

        // model.json whose config holds a parameter this version does not know: refused naming model.json.
        let json = runner.path("models/HelloWorld/1/model.json")
        var model = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        var config = try XCTUnwrap(model["config"] as? [String: String])
        config["no_such_parameter"] = "1"
        model["config"] = config
        try JSONSerialization.data(withJSONObject: model, options: [.sortedKeys]).write(to: URL(fileURLWithPath: json))
        let stale = try runner.run("infer", ["--model_id=HelloWorld:1"] + images + ["--output_folder=stale", "--threads=1"])
        XCTAssertEqual(stale.status, 3, stale.stderr)
        XCTAssertTrue(stale.stderr.hasPrefix("ie-infer: error: \(json): config parameter 'no_such_parameter'"), stale.stderr)
        XCTAssertEqual(stale.stderr.split(separator: "\n").count, 1, stale.stderr)
    }
}

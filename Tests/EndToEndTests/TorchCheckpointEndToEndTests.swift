import Foundation
import XCTest

/// Checkpoints written by PyTorch (Tests/IENetTests/Fixtures/Torch, made by tests/fixtures/make_torch_checkpoints.py:
/// HelloWorld's 1 channel and 3 classes, feature channels 2, 1 downsampling path) used by the tools as a user
/// would: the architecture comes from the model config and its command-line overrides (SPEC 4.4).
final class TorchCheckpointEndToEndTests: XCTestCase {
    static let fixtures = ToolRunner.repoRoot + "/Tests/IENetTests/Fixtures/Torch"
    static let architecture = ["--feature_channels=2", "--num_downsampling_paths=1"]

    func testInferWithALightningCheckpointAndARefusedArchitecture() throws {
        let runner = try ToolRunner(name: "torch-infer")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=1", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let subject = try XCTUnwrap(FileManager.default.contentsOfDirectory(atPath: runner.path("datasets/HelloWorld"))
            .sorted().first { runner.exists("datasets/HelloWorld/\($0)/ct.nii.gz") })
        let image = runner.path("datasets/HelloWorld/\(subject)/ct.nii.gz")
        let common = ["--model=HelloWorld", "--image_file=\(image)", "--threads=1", "--test_crop_size=16,48,48"]
        for file in ["lightning.ckpt", "state_dict.pt", "state_dict.safetensors"] {
            let infer = try runner.run("infer", common + Self.architecture + ["--checkpoint=\(Self.fixtures)/\(file)", "--output_folder=out_\(file)"])
            XCTAssertEqual(infer.status, 0, "\(file): \(infer.stderr)")
            XCTAssertTrue(runner.exists("out_\(file)/segmentation.nii.gz"), file)
        }
        // HelloWorld's own feature_channels (8) and 4 downsampling paths do not fit: exit 3, naming file and key.
        let wrong = try runner.run("infer", common + ["--checkpoint=\(Self.fixtures)/lightning.ckpt", "--output_folder=wrong"])
        XCTAssertEqual(wrong.status, 3, wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("lightning.ckpt: state dict does not fit"), wrong.stderr)
        XCTAssertTrue(wrong.stderr.contains("tensor _layers.0.block1.conv1.weight has shape [2, 1, 3, 3, 3], expected [8, 1, 3, 3, 3]"), wrong.stderr)
    }

    func testTrainAndNoTrainFromPyTorchWeights() throws {
        let runner = try ToolRunner(name: "torch-train")
        defer { runner.remove() }
        let tiny = PipelineTests.tiny + Self.architecture
        // --no-train adopts torch.save weights as the run's checkpoint; ie-infer of the run loads them again.
        let adopted = try PipelineTests.makeRun(runner, subjects: 6)
        let noTrain = try runner.run("train", ["--run=\(adopted)", "--no-train", "--local_weights_path=\(Self.fixtures)/state_dict.pt"] + tiny)
        XCTAssertEqual(noTrain.status, 0, noTrain.stderr)
        let infer = try runner.run("infer", ["--run=\(adopted)", "--mode=Test", "--threads=1"])
        XCTAssertEqual(infer.status, 0, infer.stderr)
        // Training starts from a Lightning checkpoint's weights.
        let trained = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let train = try runner.run("train", ["--run=\(trained)", "--num_epochs=1", "--local_weights_path=\(Self.fixtures)/lightning.ckpt"] + tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: trained + "/outputs/checkpoints/epoch_001.ckpt"))
    }
}

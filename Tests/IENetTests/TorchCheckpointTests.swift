import Foundation
import XCTest
import IECore
@testable import IENet

/// Checkpoints written by PyTorch (SPEC 4.4), against the fixtures of tests/fixtures/make_torch_checkpoints.py:
/// InnerEye's UNet3D (1 image channel, 3 classes, feature channels 2, 1 downsampling path, kernel 3) saved by
/// safetensors.torch.save_file, by torch.save, and inside a PyTorch Lightning checkpoint dict; `io.safetensors`
/// holds an input and PyTorch's eval-mode logits on it (float64), the independent reference.
final class TorchCheckpointTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/Torch").path
    static let architecture = UNet3DArchitecture(imageChannels: 1, classes: 3, featureChannels: 2, downsamplingPaths: 1, kernelSize: 3)

    func fixture(_ name: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/" + name)) }

    func load(_ name: String) throws -> Checkpoint { try Checkpoint.load(try fixture(name), source: name) }

    /// Our eval-mode logits on the fixture input must equal PyTorch's within 1e-5 of their largest magnitude.
    func assertForwardMatchesPyTorch(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let checkpoint = try load(name)
        let model = try checkpoint.makeModel(source: name, configured: Self.architecture)
        try checkpoint.restore(model: model, source: name)
        let io = try Checkpoint.load(try fixture("io.safetensors"))
        let x = try XCTUnwrap(io.tensor("x")), expected = try XCTUnwrap(io.tensor("expected"))
        let output = model.forward(Tensor(shape: x.shape, data: try x.floatValues()), training: false)
        XCTAssertEqual(output.shape, expected.shape, file: file, line: line)
        let reference = try expected.floatValues()
        let scale = reference.map { abs($0) }.max() ?? 0
        XCTAssertGreaterThan(scale, 0.1, "vacuous reference", file: file, line: line)
        let error = zip(output.data, reference).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(error, 1e-5 * scale, "\(name): max |ours - PyTorch| = \(error), largest |logit| \(scale)", file: file, line: line)
    }

    func testSafetensorsStateDictNeedsTheConfiguredArchitectureAndMatchesPyTorch() throws {
        XCTAssertThrowsError(try load("state_dict.safetensors").makeModel(source: "state_dict.safetensors")) { error in
            assertBadInput(error, contains: "state_dict.safetensors: the checkpoint does not record its architecture")
        }
        try assertForwardMatchesPyTorch("state_dict.safetensors")
    }

    func testTorchSaveStateDictMatchesPyTorchAndTheSafetensorsWriter() throws {
        try assertForwardMatchesPyTorch("state_dict.pt")
        // Two independent writers of the same state_dict: every tensor the same name, shape, dtype and bytes.
        let fromTorch = try load("state_dict.pt").tensors, fromSafetensors = try load("state_dict.safetensors").tensors
        XCTAssertEqual(fromTorch.map(\.name), UNet3D(imageChannels: 1, classes: 3, featureChannels: 2, seed: 0,
                                                     downsamplingPaths: 1).stateDictNames, "PyTorch's state_dict order")
        XCTAssertEqual(fromTorch.sorted { $0.name < $1.name }, fromSafetensors.sorted { $0.name < $1.name })
        XCTAssertEqual(fromTorch.first { $0.name.hasSuffix("num_batches_tracked") }?.dtype, "I64")
    }

    func testLightningCheckpointLoadsItsStateDictAndSkipsTheRest() throws {
        try assertForwardMatchesPyTorch("lightning.ckpt")
        let tensors = try load("lightning.ckpt").tensors
        XCTAssertTrue(tensors.allSatisfy { $0.name.hasPrefix("model.") })
        XCTAssertEqual(tensors.map { String($0.name.dropFirst(6)) }, try load("state_dict.pt").tensors.map(\.name))
    }

    func testAnotherArchitectureNamesTheFirstBadKeyAndTheFile() throws {
        let checkpoint = try load("lightning.ckpt")
        var wider = Self.architecture
        wider.featureChannels = 4
        XCTAssertThrowsError(try checkpoint.restore(model: try wider.makeModel(), source: "lightning.ckpt")) { error in
            self.assertBadInput(error, contains: "lightning.ckpt: state dict does not fit UNet3D(image channels 1, classes 3, "
                                + "feature channels 4, downsampling paths 1, kernel size 3): tensor _layers.0.block1.conv1.weight "
                                + "has shape [2, 1, 3, 3, 3], expected [4, 1, 3, 3, 3]")
        }
        var deeper = Self.architecture
        deeper.downsamplingPaths = 2
        XCTAssertThrowsError(try checkpoint.restore(model: try deeper.makeModel(), source: "lightning.ckpt")) { error in
            self.assertBadInput(error, contains: "tensor _layers.2.block1.conv1.weight is missing (shape [8, 4, 3, 3, 3] expected); "
                                + "unexpected tensor model._layers.2.upsample_block.0.weight (+")
        }
        let extra = Checkpoint(tensors: checkpoint.tensors + [NamedTensor(name: "model.head.weight", shape: [1], float32: [0])])
        XCTAssertThrowsError(try extra.restore(model: try Self.architecture.makeModel(), source: "x.ckpt")) { error in
            self.assertBadInput(error, contains: "x.ckpt: state dict does not fit")
            self.assertBadInput(error, contains: ": unexpected tensor model.head.weight")
        }
        // Missing BatchNorm counters are accepted, as PyTorch's load_state_dict accepts them.
        let noCounters = Checkpoint(tensors: checkpoint.tensors.filter { !$0.name.hasSuffix("num_batches_tracked") })
        XCTAssertNoThrow(try noCounters.restore(model: try Self.architecture.makeModel(), source: "x.ckpt"))
    }

    func assertBadInput(_ error: Error, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = error as? IEError else { return XCTFail("not an IEError: \(error)", file: file, line: line) }
        XCTAssertEqual(e.code, .badInput, "\(e)", file: file, line: line)
        XCTAssertTrue("\(e)".contains(text), "\(e)\ndoes not contain\n\(text)", file: file, line: line)
    }
}

import Foundation
import XCTest
@testable import IENet

/// Parity with PyTorch (SPEC 4.4): our UNet3D against bench/reference/unet3d_torch.py, InnerEye's module written
/// out in PyTorch. Runs only where a python with torch and safetensors is found: $IE_TORCH_PYTHON, else
/// /work/torchvenv/bin/python3, else <repo>/.venv-torch/bin/python3 (`make bench-torch` creates it).
/// PyTorch computes in float64 here (`--double`), so it is an exact reference and the tolerances below bound our
/// float32 error only. Tolerances: logits and BatchNorm running statistics 1e-5 of the largest |torch| entry
/// (max abs), loss 1e-6 relative; after a training step, per tensor rms(ours - torch) within 5e-2 of rms(torch)
/// for gradients (+ 1e-5 of the largest gradient) and 0.05 * lr for Adam updates: loose enough for a ReLU kink
/// that two correct implementations resolve differently (see assertCloseRMS), tight enough for any wrong formula.
/// Measured: forward comparisons use 5-10 % of their tolerance; step comparisons under 1 % with IENet's im2col
/// convolutions and about 25 % with its implicit-GEMM ones (one kink flip). Each test prints the share used.
final class PyTorchParityTests: XCTestCase {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let parityScript = repositoryRoot.appendingPathComponent("bench/reference/torch_parity.py").path

    /// Found once per test process: the python to use, or why there is none.
    static let torchPython: Result<String, XCTSkip> = {
        var candidates: [String] = []
        if let given = ProcessInfo.processInfo.environment["IE_TORCH_PYTHON"], !given.isEmpty { candidates.append(given) }
        candidates += ["/work/torchvenv/bin/python3", repositoryRoot.appendingPathComponent(".venv-torch/bin/python3").path]
        var tried: [String] = []
        for python in candidates where FileManager.default.isExecutableFile(atPath: python) {
            // find_spec instead of an import: importing torch alone takes seconds.
            let probe = "import importlib.util as u, sys; sys.exit(0 if u.find_spec('torch') and u.find_spec('safetensors') else 1)"
            if (try? runProcess(python, ["-c", probe])) != nil { return .success(python) }
            tried.append(python + " (cannot import torch, safetensors)")
        }
        return .failure(XCTSkip("PyTorch parity skipped: no python with torch and safetensors "
            + (tried.isEmpty ? "found" : "among " + tried.joined(separator: ", "))
            + "; set IE_TORCH_PYTHON or run `make bench-torch` to create .venv-torch"))
    }()

    /// Runs a command; throws with its stderr when it fails.
    @discardableResult
    static func runProcess(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMP_NUM_THREADS"] = "1"
        process.environment = environment
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "PyTorchParityTests", code: Int(process.terminationStatus), userInfo: [
                NSLocalizedDescriptionKey: "\(executable) \(arguments.joined(separator: " ")) exited "
                    + "\(process.terminationStatus): \(String(decoding: errors, as: UTF8.self).suffix(2000))"])
        }
        return String(decoding: output, as: UTF8.self)
    }

    func parity(_ arguments: [String]) throws {
        let python = try Self.torchPython.get()
        try Self.runProcess(python, [Self.parityScript, "--double"] + arguments)
    }

    var workDirectory: URL!

    override func setUpWithError() throws {
        _ = try Self.torchPython.get()  // skip before doing any work
        workDirectory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ie-torch-parity-\(ProcessInfo.processInfo.processIdentifier)-\(name.hashValue)")
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        printToleranceUse()
        if let workDirectory { try? FileManager.default.removeItem(at: workDirectory) }
    }

    func path(_ file: String) -> String { workDirectory.appendingPathComponent(file).path }

    func writeTensor(_ tensor: Tensor, named name: String, to file: String) throws {
        let data = Checkpoint.serialize(tensors: [NamedTensor(name: name, shape: tensor.shape, float32: tensor.data)])
        try data.write(to: URL(fileURLWithPath: path(file)))
    }

    func readTensors(_ file: String) throws -> [String: NamedTensor] {
        let checkpoint = try Checkpoint.load(try Data(contentsOf: URL(fileURLWithPath: path(file))), source: file)
        return Dictionary(uniqueKeysWithValues: checkpoint.tensors.map { ($0.name, $0) })
    }

    /// max |ours - reference| <= relative * max |reference| + absolute, reported with the measured figures.
    func assertClose(_ ours: [Float], _ reference: NamedTensor?, relative: Double, absolute: Double = 0,
                     _ label: String, kind: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        guard let reference else { return XCTFail("\(label): missing in PyTorch's output", file: file, line: line) }
        let expected = try reference.floatValues()
        XCTAssertEqual(ours.count, expected.count, "\(label): element count", file: file, line: line)
        guard ours.count == expected.count else { return }
        var worst = 0.0, scale = 0.0
        for i in 0..<ours.count {
            worst = max(worst, abs(Double(ours[i]) - Double(expected[i])))
            scale = max(scale, abs(Double(expected[i])))
        }
        let allowed = relative * scale + absolute
        XCTAssertLessThanOrEqual(worst, allowed,
                                 "\(label): max |ours - torch| = \(worst), max |torch| = \(scale)", file: file, line: line)
        let category = kind ?? label
        if worst / max(allowed, 1e-300) >= (worstUseOfTolerance[category]?.fraction ?? -1) {
            worstUseOfTolerance[category] = (worst / max(allowed, 1e-300), "\(label): \(worst) of \(allowed) allowed")
        }
    }

    /// rms(ours - reference) <= relative * rms(reference) + absolute. Used where a few entries may legitimately
    /// differ: after a training step, a pre-activation that lies within rounding of a ReLU's kink can fall on
    /// different sides in two correct implementations, which changes the gradients downstream of that one voxel
    /// by up to a few per cent of their largest entry (seen with IENet's implicit-GEMM convolutions, whose
    /// forward rounding differs from im2col's), while a wrong formula changes them everywhere.
    func assertCloseRMS(_ ours: [Float], _ reference: [Float], relative: Double, absolute: Double = 0,
                        _ label: String, kind: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(ours.count, reference.count, "\(label): element count", file: file, line: line)
        guard ours.count == reference.count, !ours.isEmpty else { return }
        var error2 = 0.0, reference2 = 0.0
        for i in 0..<ours.count {
            let d = Double(ours[i]) - Double(reference[i])
            error2 += d * d
            reference2 += Double(reference[i]) * Double(reference[i])
        }
        let rmsError = (error2 / Double(ours.count)).squareRoot()
        let rmsReference = (reference2 / Double(ours.count)).squareRoot()
        let allowed = relative * rmsReference + absolute
        XCTAssertLessThanOrEqual(rmsError, allowed, "\(label): rms |ours - torch| = \(rmsError), rms |torch| = "
                                 + "\(rmsReference)", file: file, line: line)
        if rmsError / max(allowed, 1e-300) >= (worstUseOfTolerance[kind]?.fraction ?? -1) {
            worstUseOfTolerance[kind] = (rmsError / max(allowed, 1e-300), "\(label): rms \(rmsError) of \(allowed) allowed")
        }
    }

    /// Per kind of comparison, the largest share of its tolerance used (printed after each test).
    var worstUseOfTolerance: [String: (fraction: Double, detail: String)] = [:]

    func printToleranceUse() {
        for (_, use) in worstUseOfTolerance.sorted(by: { $0.key < $1.key }) {
            print(String(format: "  parity: %5.1f%% of tolerance used by ", 100 * use.fraction) + use.detail)
        }
    }

    /// Random input [2, 2, 32, 32, 32] with non-zero mean, as a normalised image would not have exactly.
    func randomInput(seed: UInt64) -> Tensor {
        var random = TestRandom(seed)
        var x = random.tensor([2, 2, 32, 32, 32])
        for i in 0..<x.count { x.data[i] += 0.3 }
        return x
    }

    /// One-hot target [2, classes, 32, 32, 32] of blocky labels (8^3 blocks); every class is present and the
    /// class sizes are unequal (about 70 % background), so that class weights matter.
    func blockyOneHot(classes: Int, seed: UInt64) -> Tensor {
        var random = TestRandom(seed)
        var target = Tensor(zeros: [2, classes, 32, 32, 32])
        let spatial = 32 * 32 * 32
        var blockLabels: [Int] = (0..<(2 * 64)).map { _ in
            random.index(10) < 7 ? 0 : 1 + random.index(classes - 1)
        }
        for c in 0..<classes { blockLabels[c] = c }
        for n in 0..<2 {
            for z in 0..<32 { for y in 0..<32 { for x in 0..<32 {
                let label = blockLabels[n * 64 + (z / 8) * 16 + (y / 8) * 4 + x / 8]
                target.data[(n * classes + label) * spatial + (z * 32 + y) * 32 + x] = 1
            } } }
        }
        return target
    }

    /// (a) Our seeded weights, saved by our Checkpoint serialisation, load strictly into PyTorch; eval-mode and
    /// training-mode outputs and the updated BatchNorm running statistics agree.
    func testOurCheckpointLoadsIntoPyTorchAndForwardAgrees() throws {
        let net = UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 11)
        let x = randomInput(seed: 12)
        // Move the running statistics away from (0, 1) so that eval mode really tests them.
        for scale: Float in [0.5, 2] {
            _ = net.forward(Tensor(shape: x.shape, data: x.data.map { $0 * scale + 0.25 }), training: true)
        }
        try Checkpoint.serialize(model: net, optimizer: nil, epoch: 0)
            .write(to: URL(fileURLWithPath: path("ours.safetensors")))
        try writeTensor(x, named: "x", to: "x.safetensors")
        try parity(["forward", path("ours.safetensors"), path("x.safetensors"), path("torch.safetensors")])
        let torch = try readTensors("torch.safetensors")

        let evaluated = net.forward(x, training: false)
        try assertClose(evaluated.data, torch["eval"], relative: 1e-5, "eval-mode logits")
        let trained = net.forward(x, training: true)
        try assertClose(trained.data, torch["train"], relative: 1e-5, "training-mode logits")
        for bn in net.batchNorms {
            try assertClose(bn.runningMean, torch[bn.name + ".running_mean"], relative: 1e-5, absolute: 1e-7,
                            bn.name + ".running_mean", kind: "running_mean")
            try assertClose(bn.runningVar, torch[bn.name + ".running_var"], relative: 1e-5, bn.name + ".running_var",
                            kind: "running_var")
            XCTAssertEqual(try torch[bn.name + ".num_batches_tracked"]?.int64Values(), [bn.numBatchesTracked])
        }
        // The outputs are not trivially equal: training and eval mode differ, and the logits are not constant.
        let modeDifference = zip(evaluated.data, trained.data).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(modeDifference, 1e-2, "eval and training mode should give different logits")
    }

    /// (b) A PyTorch state_dict saved with safetensors.torch.save_file, with and without a leading `model.`,
    /// loads into ours via Checkpoint.load + restore; the eval-mode outputs agree; the key order is ours.
    func testPyTorchStateDictLoadsIntoOursAndForwardAgrees() throws {
        let x = randomInput(seed: 21)
        try writeTensor(x, named: "x", to: "x.safetensors")
        try parity(["export", "5", "2", "4", "3", path("x.safetensors"), path("export")])
        let expected = try readTensors("export/expected.safetensors")
        let torchKeys = try String(contentsOfFile: path("export/keys.txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 0).stateDictNames, torchKeys,
                       "state_dict keys and their order")
        for file in ["plain", "prefixed"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: path("export/\(file).safetensors")))
            let checkpoint = try Checkpoint.load(data, source: file)
            XCTAssertEqual(checkpoint.tensors.allSatisfy { $0.name.hasPrefix("model.") }, file == "prefixed")
            let net = UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 999)
            let before = net.forward(x, training: false)
            try checkpoint.restore(model: net, source: file)
            XCTAssertEqual(net.batchNorms.map(\.numBatchesTracked), Array(repeating: 3, count: net.batchNorms.count))
            let after = net.forward(x, training: false)
            try assertClose(after.data, expected["eval"], relative: 1e-5, "\(file): eval-mode logits")
            let change = zip(before.data, after.data).map { abs($0 - $1) }.max() ?? 0
            XCTAssertGreaterThan(change, 1e-2, "\(file): loading should have changed the network")
            // Round trip: our own state_dict holds exactly the tensors PyTorch saved (bit for bit).
            let prefix = file == "prefixed" ? "model." : ""
            for ours in net.stateDict() {
                let theirs = checkpoint.tensor(prefix + ours.name)
                XCTAssertEqual(theirs?.shape, ours.shape, ours.name)
                XCTAssertEqual(theirs?.bytes, ours.bytes, "\(ours.name) should be restored bit for bit")
            }
        }
    }

    /// (c) One training step from identical weights: training-mode forward, InnerEye's loss, backward, Adam with
    /// InnerEye's defaults. Loss value, every parameter gradient, the updated weights and the running
    /// statistics agree with PyTorch's autograd + torch.optim.Adam, for SoftDice and CrossEntropy, and with
    /// loss_class_weight_power, focal weighting, label smoothing and a (renormalised) Mixture.
    func testOneAdamTrainingStepMatchesPyTorch() throws {
        let learningRate = 1e-3
        let losses: [(spec: String, loss: SegmentationLoss)] = [
            ("SoftDice", .softDice()), ("CrossEntropy", .crossEntropy()),
            ("SoftDice,power=1", .softDice(classWeightPower: 1)),
            ("Focal,gamma=1,power=0.5", .focal(gamma: 1, classWeightPower: 0.5)),
            ("CrossEntropy,smoothing=0.1", .crossEntropy(smoothingEps: 0.1)),
            ("Mixture:0.6*SoftDice,power=1+1.4*Focal,gamma=2", .mixture([(0.6, .softDice(classWeightPower: 1)),
                                                                      (1.4, .focal(gamma: 2))]))]
        let x = randomInput(seed: 32)
        // Unequal class sizes, so that class weights differ from 1.
        let target = blockyOneHot(classes: 3, seed: 33)
        try Checkpoint.serialize(model: UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 31),
                                 optimizer: nil, epoch: 0).write(to: URL(fileURLWithPath: path("start.safetensors")))
        try writeTensor(x, named: "x", to: "x.safetensors")
        try writeTensor(target, named: "y", to: "y.safetensors")
        try parity(["train-step", path("start.safetensors"), path("x.safetensors"), path("y.safetensors"),
                    String(learningRate), path("steps")] + losses.map(\.spec))
        for (index, (lossName, loss)) in losses.enumerated() {
            let torch = try readTensors("steps/\(index).safetensors")
            let net = UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 31)
            let start = net.parameters.map(\.value)
            let optimizer = Optimizer(kind: .adam, parameters: net.parameters)
            optimizer.zeroGrad()
            let result = loss.evaluate(logits: net.forward(x, training: true), target: target)
            net.backward(result.gradLogits)
            try assertClose([Float(result.value)], torch["loss"], relative: 1e-6, "\(lossName): loss value",
                            kind: "\(lossName) loss")
            // Gradients, per tensor: rms error within 5e-2 of the tensor's rms, plus 1e-5 of the largest gradient
            // anywhere (some tensors, e.g. a bias right before a BatchNorm, have an exactly-zero true gradient).
            // RMS rather than max: see assertCloseRMS (ReLU kinks).
            var largestGradient = 0.0
            for p in net.parameters {
                let theirs = try XCTUnwrap(torch["grad/" + p.name], p.name).floatValues()
                largestGradient = max(largestGradient, theirs.map { abs(Double($0)) }.max() ?? 0)
            }
            XCTAssertGreaterThan(largestGradient, 1e-4, "\(lossName): gradients should not vanish")
            for p in net.parameters {
                let theirs = try XCTUnwrap(torch["grad/" + p.name], p.name).floatValues()
                assertCloseRMS(p.grad, theirs, relative: 5e-2, absolute: 1e-5 * largestGradient,
                               "\(lossName): gradient of \(p.name)", kind: "\(lossName) gradients")
            }
            optimizer.step(lr: learningRate)
            // Updated weights: compare the update (new - start); Adam moves each weight by about lr at step 1.
            for (index, p) in net.parameters.enumerated() {
                let theirs = try XCTUnwrap(torch[p.name], p.name).floatValues()
                let ourUpdate = zip(p.value, start[index]).map { $0 - $1 }
                let theirUpdate = zip(theirs, start[index]).map { $0 - $1 }
                assertCloseRMS(ourUpdate, theirUpdate, relative: 0, absolute: 0.05 * learningRate,
                               "\(lossName): Adam update of \(p.name)", kind: "\(lossName) Adam updates")
            }
            for bn in net.batchNorms {
                try assertClose(bn.runningMean, torch[bn.name + ".running_mean"], relative: 1e-5, absolute: 1e-7,
                                "\(lossName): \(bn.name).running_mean", kind: "\(lossName) running_mean")
                try assertClose(bn.runningVar, torch[bn.name + ".running_var"], relative: 1e-5,
                                "\(lossName): \(bn.name).running_var", kind: "\(lossName) running_var")
            }
        }
    }
}

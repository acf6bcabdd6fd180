import XCTest
import IETestSupport
import IECore
@testable import IENet

final class CheckpointTests: XCTestCase {
    /// A safetensors file assembled byte by byte from the format description.
    func handBuiltFile(padHeader: Bool) -> Data {
        var json = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"#
            + #""n":{"dtype":"I64","shape":[],"data_offsets":[8,16]},"__metadata__":{"epoch":"3"}}"#
        if padHeader { while json.utf8.count % 8 != 0 { json += " " } }
        var data = Data()
        var length = UInt64(json.utf8.count)
        for _ in 0..<8 { data.append(UInt8(length & 0xFF)); length >>= 8 }
        data.append(contentsOf: Array(json.utf8))
        data.append(contentsOf: [0x00, 0x00, 0xC0, 0x3F])  // 1.5f little-endian
        data.append(contentsOf: [0x00, 0x00, 0x00, 0xC0])  // -2.0f
        data.append(contentsOf: [7, 0, 0, 0, 0, 0, 0, 0])  // Int64 7
        return data
    }

    func testHandBuiltSafetensorsLoads() throws {
        for pad in [false, true] {
            let c = try Checkpoint.load(handBuiltFile(padHeader: pad))
            XCTAssertEqual(try c.tensor("a")?.floatValues(), [1.5, -2])
            XCTAssertEqual(c.tensor("a")?.shape, [2])
            XCTAssertEqual(try c.tensor("n")?.int64Values(), [7])
            XCTAssertEqual(c.tensor("n")?.shape, [])
            XCTAssertEqual(c.metadata["epoch"], "3")
            XCTAssertEqual(c.epoch, 3)
        }
    }

    func testMalformedFilesAreRefused() {
        var truncated = handBuiltFile(padHeader: false)
        truncated.removeLast(4)
        XCTAssertThrowsError(try Checkpoint.load(truncated)) { assertBadInput($0) }
        XCTAssertThrowsError(try Checkpoint.load(Data([1, 2, 3]))) { assertBadInput($0) }
        var hugeHeader = handBuiltFile(padHeader: false)
        hugeHeader[0] = 0xFF; hugeHeader[1] = 0xFF
        XCTAssertThrowsError(try Checkpoint.load(hugeHeader)) { assertBadInput($0) }
    }

    func testFlippedByteIsRefusedByHash() throws {
        let tensors = [NamedTensor(name: "w", shape: [3], float32: [1, 2, 3])]
        var data = Checkpoint.serialize(tensors: tensors, metadata: ["model_name": "X"])
        XCTAssertNoThrow(try Checkpoint.load(data))
        data[data.count - 2] ^= 0x10
        XCTAssertThrowsError(try Checkpoint.load(data, source: "epoch_001.ckpt")) { error in
            assertBadInput(error)
            XCTAssertTrue("\(error)".contains("SHA-256"), "\(error)")
            XCTAssertTrue("\(error)".contains("epoch_001.ckpt"), "\(error)")
        }
    }

    func testModelAndOptimizerRoundTrip() throws {
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 1)
        let optimizer = Optimizer(kind: .amsgrad, parameters: net.parameters)
        var random = TestRandom(31)
        let x = random.tensor([1, 1, 16, 16, 16])
        let logits = net.forward(x, training: true)
        net.backward(logits)  // any gradient will do
        optimizer.step(lr: 1e-3)
        _ = net.forward(x, training: true)  // move the BN running statistics
        let data = Checkpoint.serialize(model: net, optimizer: optimizer, epoch: 7, metadata: ["rng_state": "abc"])

        let loaded = try Checkpoint.load(data)
        XCTAssertEqual(loaded.epoch, 7)
        XCTAssertEqual(loaded.metadata["rng_state"], "abc")
        XCTAssertEqual(loaded.metadata["optimizer_state"], "exp_avg,exp_avg_sq,max_exp_avg_sq")
        XCTAssertNotNil(loaded.tensor("optimizer/_layers.0.block1.conv1.weight/exp_avg"))
        let copy = try loaded.makeModel(seed: 99)
        let copyOptimizer = Optimizer(kind: .amsgrad, parameters: copy.parameters)
        try loaded.restore(model: copy, optimizer: copyOptimizer)
        XCTAssertEqual(copy.stateDict(), net.stateDict())
        XCTAssertEqual(copyOptimizer.stateTensors(), optimizer.stateTensors())
        XCTAssertEqual(copyOptimizer.stepCount, 1)
        XCTAssertEqual(copy.forward(x, training: false).data, net.forward(x, training: false).data)
    }

    func testPrefixMissingUnexpectedAndShapeErrors() throws {
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 1)
        let other = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 2)
        // A leading "model." (as in Lightning checkpoints) is accepted.
        let prefixed = net.stateDict().map { t -> NamedTensor in var t = t; t.name = "model." + t.name; return t }
        try other.loadStateDict(prefixed)
        XCTAssertEqual(other.stateDict(), net.stateDict())

        var missing = net.stateDict()
        missing.removeAll { $0.name == "output_layer.bias" }
        XCTAssertThrowsError(try other.loadStateDict(missing)) { error in
            assertBadInput(error); XCTAssertTrue("\(error)".contains("tensor output_layer.bias is missing"), "\(error)")
        }
        let unexpected = net.stateDict() + [NamedTensor(name: "extra.weight", shape: [1], float32: [0])]
        XCTAssertThrowsError(try other.loadStateDict(unexpected)) { error in
            assertBadInput(error); XCTAssertTrue("\(error)".contains("unexpected tensor extra.weight"), "\(error)")
        }
        let wider = UNet3D(imageChannels: 1, classes: 3, featureChannels: 2, seed: 1)
        XCTAssertThrowsError(try other.loadStateDict(wider.stateDict())) { error in
            assertBadInput(error)
            XCTAssertTrue("\(error)".contains("output_layer.weight has shape [3, 2, 1, 1, 1], expected [2, 2, 1, 1, 1]"), "\(error)")
        }
    }

    /// An independent reader (Python's json + struct, written from the format description) parses our bytes.
    func testPythonReadsOurFile() throws {
        let tensors = [NamedTensor(name: "w", shape: [2, 3], float32: [1, 2, 3, 4, 5, -6.5]),
                       NamedTensor(name: "n", shape: [], int64: [42])]
        let path = NSTemporaryDirectory() + "ienet-\(getpid()).safetensors"
        try Checkpoint.serialize(tensors: tensors, metadata: ["k": "v"]).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = """
        import json, struct, sys, hashlib
        b = open(sys.argv[1], 'rb').read()
        n = struct.unpack('<Q', b[:8])[0]
        h = json.loads(b[8:8 + n]); body = b[8 + n:]
        w = h['w']; s, e = w['data_offsets']
        vals = struct.unpack('<6f', body[s:e])
        c = h['n']; s2, e2 = c['data_offsets']
        print(w['dtype'], w['shape'], list(vals), c['dtype'], c['shape'], struct.unpack('<q', body[s2:e2])[0],
              h['__metadata__']['k'], h['__metadata__']['tensors_sha256'] == hashlib.sha256(body).hexdigest(), (8 + n) % 8)
        """
        let output = try PythonOracle.run(script, arguments: [path])
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines),
                       "F32 [2, 3] [1.0, 2.0, 3.0, 4.0, 5.0, -6.5] I64 [] 42 v True 0")
    }

    /// `data` with its JSON header changed by `change` (the tensor bytes untouched, so the tensor hash passes).
    func withHeader(_ data: Data, _ change: (inout [String: Any]) -> Void) throws -> Data {
        var length = 0
        for i in (0..<8).reversed() { length = length << 8 | Int(data[i]) }
        var header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + length))) as? [String: Any])
        change(&header)
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count)
        for _ in 0..<8 { out.append(UInt8(n & 0xFF)); n >>= 8 }
        return out + json + data.subdata(in: (8 + length)..<data.count)
    }

    func withMetadata(_ data: Data, _ change: @escaping (inout [String: Any]) -> Void) throws -> Data {
        try withHeader(data) { header in
            var metadata = header["__metadata__"] as? [String: Any] ?? [:]
            change(&metadata)
            header["__metadata__"] = metadata
        }
    }

    /// Metadata edited behind the tensor hash (issue 11: feature_channels 100000 sized a 1 TB network; epoch "abc"
    /// was accepted): the metadata hash refuses it; without that hash (a checkpoint from before it), the recorded
    /// architecture is checked against the tensors' shapes before anything is allocated, and integers must parse.
    func testEditedMetadataIsRefusedBeforeAnythingIsAllocated() throws {
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 1, downsamplingPaths: 2)
        let data = Checkpoint.serialize(model: net, optimizer: nil, epoch: 3)
        XCTAssertEqual(try Checkpoint.load(data).makeModel().architecture, net.architecture)
        let edits: [(String, String, String)] = [
            ("feature_channels", "100000", "tensor _layers.0.block1.conv1.weight has shape [2, 1, 3, 3, 3]"),
            ("num_classes", "7", "tensor output_layer.weight has shape [2, 2, 1, 1, 1]"),
            ("num_downsampling_paths", "4", "layers up to _layers.6"),
            ("epoch", "abc", "metadata epoch is 'abc'"),
            ("feature_channels", "-3", "metadata feature_channels is '-3'"),
        ]
        for (key, value, message) in edits {
            let hashed = try withMetadata(data) { $0[key] = value }
            XCTAssertThrowsError(try Checkpoint.load(hashed, source: "e.ckpt")) { error in
                assertBadInput(error)
                XCTAssertTrue("\(error)".contains("the metadata's SHA-256"), "\(error)")
            }
            let unhashed = try withMetadata(data) { $0[key] = value; $0[Checkpoint.metadataHashKey] = nil }
            XCTAssertThrowsError(try Checkpoint.load(unhashed, source: "e.ckpt").makeModel(source: "e.ckpt")) { error in
                assertBadInput(error)
                XCTAssertTrue("\(error)".contains(message), "\(key)=\(value): \(error)")
            }
        }
        // Our checkpoint without its tensor hash (the key deleted, or one flipped byte in its name) is refused:
        // the check cannot be turned off by damaging the key.
        for rename in [Checkpoint.hashKey, "tensors_sha257"] {
            let stripped = try withMetadata(data) { meta in
                let value = meta[Checkpoint.hashKey]
                meta[Checkpoint.hashKey] = nil
                if rename != Checkpoint.hashKey { meta[rename] = value }
            }
            XCTAssertThrowsError(try Checkpoint.load(stripped, source: "s.ckpt")) { error in
                assertBadInput(error)
                XCTAssertTrue("\(error)".contains("s.ckpt: checkpoint is corrupt: its metadata has no tensors_sha256"), "\(error)")
            }
        }
        // Another writer's safetensors file (none of our keys) still loads unverified.
        let foreign = try withMetadata(Checkpoint.serialize(tensors: [NamedTensor(name: "w", shape: [2], float32: [1, 2])])) { meta in
            meta = ["format": "pt"]
        }
        XCTAssertEqual(try Checkpoint.load(foreign).tensors.map(\.name), ["w"])
        // A shape whose element count overflows is an error, not a trap.
        let tensors = [NamedTensor(name: "w", shape: [3], float32: [1, 2, 3])]
        let overflowing = try withHeader(Checkpoint.serialize(tensors: tensors)) { header in
            header["w"] = ["dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 12]] as [String: Any]
        }
        XCTAssertThrowsError(try Checkpoint.load(overflowing)) { assertBadInput($0) }
    }

    func assertBadInput(_ error: Error, file: StaticString = #filePath, line: UInt = #line) {
        guard let e = error as? IEError else { return XCTFail("not an IEError: \(error)", file: file, line: line) }
        XCTAssertEqual(e.code, .badInput, file: file, line: line)
    }
}

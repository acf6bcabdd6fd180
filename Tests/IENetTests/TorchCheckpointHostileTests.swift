import Foundation
import XCTest
import IECore
@testable import IENet

/// Broken and hostile PyTorch checkpoints: each must be a clean IEError (exit 3) naming the problem; no crash,
/// no allocation sized by what the file claims, nothing executed.
final class TorchCheckpointHostileTests: XCTestCase {
    /// A ZIP of stored entries assembled from the format description (CRCs left 0: the reader ignores them).
    static func zip(_ entries: [(String, Data)], method: UInt16 = 0) -> Data {
        func le(_ value: UInt64, _ count: Int) -> [UInt8] { (0..<count).map { UInt8((value >> (8 * UInt64($0))) & 0xFF) } }
        var out = Data(), central = Data()
        for (name, body) in entries {
            let offset = out.count, nameBytes = Array(name.utf8)
            out.append(contentsOf: le(0x0403_4B50, 4) + le(20, 2) + le(0, 2) + le(UInt64(method), 2) + le(0, 4) + le(0, 4))
            out.append(contentsOf: le(UInt64(body.count), 4) + le(UInt64(body.count), 4) + le(UInt64(nameBytes.count), 2) + le(0, 2))
            out.append(contentsOf: nameBytes)
            out.append(body)
            central.append(contentsOf: le(0x0201_4B50, 4) + le(20, 2) + le(20, 2) + le(0, 2) + le(UInt64(method), 2) + le(0, 4))
            central.append(contentsOf: le(0, 4) + le(UInt64(body.count), 4) + le(UInt64(body.count), 4) + le(UInt64(nameBytes.count), 2))
            central.append(contentsOf: le(0, 2) + le(0, 2) + le(0, 2) + le(0, 2) + le(0, 4) + le(UInt64(offset), 4) + nameBytes)
        }
        let centralOffset = out.count
        out.append(central)
        out.append(contentsOf: le(0x0605_4B50, 4) + le(0, 4) + le(UInt64(entries.count), 2) + le(UInt64(entries.count), 2))
        out.append(contentsOf: le(UInt64(central.count), 4) + le(UInt64(centralOffset), 4) + le(0, 2))
        return out
    }

    /// Pickle opcodes written by hand (protocol 2), the way torch.save emits a one-tensor state_dict.
    static func unicode(_ s: String) -> [UInt8] {
        let b = Array(s.utf8)
        return [0x58] + (0..<4).map { UInt8((b.count >> (8 * $0)) & 0xFF) } + b
    }
    static func int(_ n: Int) -> [UInt8] { [0x4A] + (0..<4).map { UInt8((n >> (8 * $0)) & 0xFF) } }
    static func global(_ module: String, _ name: String) -> [UInt8] { [0x63] + Array("\(module)\n\(name)\n".utf8) }

    static func tensorPickle(storageElements: Int, offset: Int = 0, size: [Int], stride: [Int]) -> Data {
        var p: [UInt8] = [0x80, 0x02, 0x7D, 0x28] + unicode("w") + global("torch._utils", "_rebuild_tensor_v2") + [0x28]
        p += [0x28] + unicode("storage") + global("torch", "FloatStorage") + unicode("0") + unicode("cpu") + int(storageElements) + [0x74, 0x51]
        p += int(offset) + [0x28] + size.flatMap(int) + [0x74, 0x28] + stride.flatMap(int) + [0x74, 0x89]
        p += global("collections", "OrderedDict") + [0x29, 0x52, 0x74, 0x52, 0x75, 0x2E]
        return Data(p)
    }

    static func checkpoint(_ pickle: Data, storage: Data = Data(count: 16)) -> Data {
        zip([("archive/data.pkl", pickle), ("archive/byteorder", Data("little".utf8)), ("archive/data/0", storage)])
    }

    func assertRefused(_ data: Data, _ text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Checkpoint.load(data, source: "bad.ckpt"), file: file, line: line) { error in
            guard let e = error as? IEError else { return XCTFail("not an IEError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.code, .badInput, file: file, line: line)
            XCTAssertTrue("\(e)".hasPrefix("bad.ckpt"), "\(e)", file: file, line: line)
            XCTAssertTrue("\(e)".contains(text), "\(e)\ndoes not contain: \(text)", file: file, line: line)
        }
    }

    func testHandBuiltCheckpointLoads() throws {
        let values: [Float] = [1, -2, 3.5, 4]
        let storage = values.withUnsafeBufferPointer { Data(buffer: $0) }
        let loaded = try Checkpoint.load(Self.checkpoint(Self.tensorPickle(storageElements: 4, size: [2, 2], stride: [2, 1]), storage: storage))
        XCTAssertEqual(loaded.tensors.map(\.name), ["w"])
        XCTAssertEqual(loaded.tensors.first?.shape, [2, 2])
        XCTAssertEqual(try loaded.tensors.first?.floatValues(), values)
        // A view with an offset reads its own elements.
        let view = try Checkpoint.load(Self.checkpoint(Self.tensorPickle(storageElements: 4, offset: 1, size: [2], stride: [1]), storage: storage))
        XCTAssertEqual(try view.tensors.first?.floatValues(), [-2, 3.5])
    }

    func testForbiddenGlobalIsRefusedWithoutRunningIt() {
        let marker = NSTemporaryDirectory() + "ie-pickle-\(getpid())"
        let pickle = Data([0x80, 0x02] + Self.global("os", "system") + Self.unicode("touch \(marker)") + [0x85, 0x52, 0x2E])
        assertRefused(Self.checkpoint(pickle), "refers to os.system, which is not allowed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: marker))
        let builtins = Data([0x80, 0x02] + Self.global("builtins", "eval") + Self.unicode("1") + [0x85, 0x52, 0x2E])
        assertRefused(Self.checkpoint(builtins), "builtins.eval")
        // An allowed name used other than as torch.save uses it.
        let called = Data([0x80, 0x02] + Self.global("torch", "FloatStorage") + [0x29, 0x52, 0x2E])
        assertRefused(Self.checkpoint(called), "torch.FloatStorage cannot be called")
    }

    func testLyingSizesAreRefusedBeforeAllocating() {
        // The pickle claims 2^30 elements; the file holds 16 bytes.
        assertRefused(Self.checkpoint(Self.tensorPickle(storageElements: 1 << 30, size: [1 << 30], stride: [1])),
                      "holds 16 bytes, the pickle says 1073741824 elements of F32")
        // A tensor reaching past its storage.
        assertRefused(Self.checkpoint(Self.tensorPickle(storageElements: 4, size: [1_000_000_000], stride: [1])),
                      "reaches past the 4 elements of storage 0")
        assertRefused(Self.checkpoint(Self.tensorPickle(storageElements: 4, offset: 3, size: [2], stride: [1])), "reaches past")
        // Non-contiguous (a transposed view).
        assertRefused(Self.checkpoint(Self.tensorPickle(storageElements: 4, size: [2, 2], stride: [1, 2])), "is not contiguous")
        // Storage file missing.
        let noData = Self.zip([("archive/data.pkl", Self.tensorPickle(storageElements: 4, size: [4], stride: [1]))])
        assertRefused(noData, "storage file archive/data/0 is missing")
    }

    func testTruncatedAndGarbageArchivesAreRefused() throws {
        let fixture = try Data(contentsOf: URL(fileURLWithPath: TorchCheckpointTests.fixtures + "/state_dict.pt"))
        var lengths = Array(stride(from: 4, to: fixture.count, by: max(1, fixture.count / 97)))
        lengths += [fixture.count - 1, fixture.count - 22, fixture.count - 23]
        for length in lengths {
            XCTAssertThrowsError(try Checkpoint.load(fixture.prefix(length), source: "bad.ckpt"), "\(length) bytes") { error in
                XCTAssertEqual((error as? IEError)?.code, .badInput, "\(length): \(error)")
            }
        }
        var random = SeededGenerator(seed: 5)
        for _ in 0..<50 {  // random bytes behind the magic, and random bytes written over the real archive
            assertRefused(Data([0x50, 0x4B, 0x03, 0x04] + (0..<300).map { _ in UInt8(truncatingIfNeeded: random.next()) }), "bad.ckpt")
            var damaged = fixture
            for _ in 0..<8 { damaged[Int(random.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: random.next()) }
            do { _ = try Checkpoint.load(damaged, source: "bad.ckpt") } catch {
                XCTAssertEqual((error as? IEError)?.code, .badInput, "\(error)")
            }
        }
        assertRefused(Self.zip([("archive/data.pkl", Data([0x80, 0x02, 0x2E]))], method: 8), "is compressed (method 8)")
        assertRefused(Self.zip([("archive/other.txt", Data())]), "without <name>/data.pkl")
        assertRefused(Self.checkpoint(Data([0x80, 0x02, 0x7D])), "truncated")
        assertRefused(Self.checkpoint(Data([0x80, 0x02, 0x7D, 0x69, 0x2E])), "opcode 0x69")
        assertRefused(Self.checkpoint(Data([0x80, 0x02, 0x68, 0x07, 0x2E])), "memo entry 7 was never stored")
        assertRefused(Self.checkpoint(Data([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F])), "exceeds")
        assertRefused(Data([0x80, 0x02, 0x8A, 0x0A] + [UInt8](repeating: 0, count: 20)), "legacy (pre-1.6) format")
        let bigEndian = Self.zip([("archive/data.pkl", Self.tensorPickle(storageElements: 4, size: [4], stride: [1])),
                                  ("archive/byteorder", Data("big".utf8)), ("archive/data/0", Data(count: 16))])
        assertRefused(bigEndian, "byteorder is big")
    }

    func testDeepNestingDoesNotRecurse() {
        // 200000 nested one-element tuples, then a non-dict result: refused, and the nesting freed without recursion.
        let pickle = Data([0x80, 0x02, 0x4E] + [UInt8](repeating: 0x85, count: 200_000) + [0x2E])
        assertRefused(Self.checkpoint(pickle), "torch.save holds a tuple")
    }
}

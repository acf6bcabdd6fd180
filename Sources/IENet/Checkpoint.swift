import Foundation
import IECore

/// A named tensor as stored in a safetensors file: dtype string, shape and raw little-endian bytes.
public struct NamedTensor: Equatable {
    public var name: String
    public var shape: [Int]
    /// safetensors dtype: "F32", "I64", "F64", "F16", "BF16", "I32", ...
    public var dtype: String
    public var bytes: Data

    public init(name: String, shape: [Int], dtype: String, bytes: Data) {
        self.name = name; self.shape = shape; self.dtype = dtype; self.bytes = bytes
    }

    public init(name: String, shape: [Int], float32 values: [Float]) {
        precondition(values.count == shape.reduce(1, *))
        self.init(name: name, shape: shape, dtype: "F32",
                  bytes: values.withUnsafeBufferPointer { Data(buffer: $0) })  // x86/arm64 are little-endian
    }

    public init(name: String, shape: [Int], int64 values: [Int64]) {
        precondition(values.count == shape.reduce(1, *))
        self.init(name: name, shape: shape, dtype: "I64", bytes: values.withUnsafeBufferPointer { Data(buffer: $0) })
    }

    public var elementCount: Int { shape.reduce(1, *) }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "F64", "I64", "U64": return 8
        case "F32", "I32", "U32": return 4
        case "F16", "BF16", "I16", "U16": return 2
        case "I8", "U8", "BOOL": return 1
        default: return nil
        }
    }

    /// Values as Float32 (F32 as is; F64, F16, BF16 converted).
    public func floatValues(source: String = "checkpoint") throws -> [Float] {
        let n = elementCount
        return try bytes.withUnsafeBytes { raw -> [Float] in
            switch dtype {
            case "F32":
                return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
                    if n > 0 { UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(n * 4)])) }
                    initialized = n
                }
            case "F64": return (0..<n).map { Float(raw.loadUnaligned(fromByteOffset: $0 * 8, as: Double.self)) }
            case "BF16":
                return (0..<n).map { Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) << 16) }
            case "F16":
                return (0..<n).map { halfToFloat(raw.loadUnaligned(fromByteOffset: $0 * 2, as: UInt16.self)) }
            default:
                throw IEError.badInput("\(source): tensor \(name) has dtype \(dtype), expected a floating-point dtype (F32)")
            }
        }
    }

    public func int64Values(source: String = "checkpoint") throws -> [Int64] {
        let n = elementCount
        return try bytes.withUnsafeBytes { raw -> [Int64] in
            switch dtype {
            case "I64": return (0..<n).map { raw.loadUnaligned(fromByteOffset: $0 * 8, as: Int64.self) }
            case "I32": return (0..<n).map { Int64(raw.loadUnaligned(fromByteOffset: $0 * 4, as: Int32.self)) }
            default: throw IEError.badInput("\(source): tensor \(name) has dtype \(dtype), expected I64")
            }
        }
    }
}

/// IEEE half -> single (the F16 dtype), done by hand so it works on every platform.
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h >> 15) << 31
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0 {
        let value = Float(mantissa) * powf(2, -24)
        return sign != 0 ? -value : value
    }
    if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

/// Safetensors serialisation (no file IO): 8-byte little-endian header length, JSON header with
/// dtype/shape/data_offsets per tensor and a `__metadata__` string map, then the raw tensor bytes.
/// The metadata key `tensors_sha256` holds the SHA-256 of the whole data section; `load` verifies it.
public struct Checkpoint {
    public static let hashKey = "tensors_sha256"
    /// SHA-256 of the rest of the metadata (issue 11: a checkpoint whose `feature_channels` was edited passed the
    /// tensor hash and sized a 1 TB network). Checkpoints written before it existed have none and are accepted;
    /// their architecture is still checked against the tensors' shapes (`makeModel`).
    public static let metadataHashKey = "metadata_sha256"

    /// The digest of every metadata entry but the two hashes: sorted keys, each key and value length-prefixed
    /// (no separator can be forged by a key or value).
    static func metadataDigest(_ metadata: [String: String]) -> String {
        var text = ""
        for key in metadata.keys.sorted() where key != hashKey && key != metadataHashKey {
            let value = metadata[key] ?? ""
            text += "\(key.utf8.count):\(key)\(value.utf8.count):\(value)"
        }
        return SHA256.hex(Data(text.utf8))
    }
    public var tensors: [NamedTensor]
    public var metadata: [String: String]

    public init(tensors: [NamedTensor], metadata: [String: String] = [:]) {
        self.tensors = tensors; self.metadata = metadata
    }

    public func tensor(_ name: String) -> NamedTensor? { tensors.first { $0.name == name } }

    /// The safetensors bytes; adds `tensors_sha256` and `metadata_sha256` to the metadata.
    public static func serialize(tensors: [NamedTensor], metadata: [String: String] = [:]) -> Data {
        var body = Data()
        var header: [String: Any] = [:]
        for t in tensors {
            let begin = body.count
            body.append(t.bytes)
            header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [begin, body.count]] as [String: Any]
        }
        var meta = metadata
        meta[hashKey] = SHA256.hex(body)
        meta[metadataHashKey] = metadataDigest(meta)
        header["__metadata__"] = meta
        var json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys, .withoutEscapingSlashes])
        // Pad with spaces so the data section starts 8-byte aligned, as the reference implementation does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data()
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(body)
        return out
    }

    public func serialize() -> Data { Checkpoint.serialize(tensors: tensors, metadata: metadata) }

    /// Parses a checkpoint, its format told by its first bytes: PyTorch's ZIP (`PK\u{3}\u{4}`, torch.save since
    /// 1.6, see TorchCheckpoint.swift), else safetensors. A safetensors `tensors_sha256` that does not match the
    /// data is refused (IEError.badInput); files without that key (e.g. written by `safetensors.torch.save_file`)
    /// are accepted unverified.
    public static func load(_ data: Data, source: String = "checkpoint") throws -> Checkpoint {
        if StoredZip.looksLikeZip(data) { return try loadTorchZip(data, source: source) }
        if isLegacyTorchFile(data) {
            throw IEError.badInput("\(source): written by torch.save in PyTorch's legacy (pre-1.6) format, "
                                   + "expected safetensors or torch.save's ZIP format (load and save it again with a current PyTorch)")
        }
        func bad(_ what: String) -> IEError { IEError.badInput("\(source): not a valid safetensors checkpoint: \(what)") }
        guard data.count >= 8 else { throw bad("only \(data.count) bytes, expected an 8-byte header length") }
        let bytes = [UInt8](data.prefix(8))
        var headerLength: UInt64 = 0
        for i in (0..<8).reversed() { headerLength = headerLength << 8 | UInt64(bytes[i]) }
        guard headerLength <= UInt64(data.count - 8), headerLength < 100_000_000 else {
            throw bad("header length \(headerLength) exceeds the \(data.count) bytes available")
        }
        let start = data.startIndex
        let headerData = data.subdata(in: (start + 8)..<(start + 8 + Int(headerLength)))
        guard let object = try? JSONSerialization.jsonObject(with: headerData), let header = object as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        // Slices share the file's bytes (no copy of the data section, nor of each tensor below): loading a
        // checkpoint holds the file once, plus the parameters it is restored into.
        let body = data[(start + 8 + Int(headerLength))..<data.endIndex]
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let map = meta as? [String: Any] else { throw bad("__metadata__ is not a string map") }
            for (k, v) in map {
                guard let s = v as? String else { throw bad("__metadata__ value for \(k) is not a string") }
                metadata[k] = s
            }
        }
        // A checkpoint of ours always carries the tensor hash: one flipped byte in that key's name must not turn
        // the check off, so its absence is an error wherever any of our other metadata keys (or the metadata
        // hash) is present. Files of other writers (safetensors.torch.save_file) have none of them.
        if metadata[hashKey] == nil, metadata.keys.contains(where: { $0 == metadataHashKey || MetadataKey.ownKeys.contains($0) }) {
            throw IEError.badInput("\(source): checkpoint is corrupt: its metadata has no \(hashKey), "
                                   + "expected the SHA-256 of the tensor data that every ie-toolbox checkpoint carries")
        }
        if let expected = metadata[hashKey] {
            let actual = SHA256.hex(body)
            guard actual == expected else {
                throw IEError.badInput("\(source): checkpoint is corrupt: SHA-256 of the tensor data is \(actual), "
                                       + "the header says \(expected)")
            }
        }
        if let expected = metadata[metadataHashKey], metadataDigest(metadata) != expected {
            throw IEError.badInput("\(source): checkpoint is corrupt: the metadata's SHA-256 is \(metadataDigest(metadata)), "
                                   + "the header says \(expected)")
        }
        try checkIntegerMetadata(metadata, source: source)
        var tensors: [(Int, NamedTensor)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shapeValues = info["shape"] as? [Any], let offsetValues = info["data_offsets"] as? [Any],
                  offsetValues.count == 2 else {
                throw bad("tensor \(name) lacks dtype/shape/data_offsets")
            }
            let shape = try shapeValues.map { v -> Int in
                guard let n = (v as? NSNumber)?.intValue, n >= 0 else { throw bad("tensor \(name) has a bad shape") }
                return n
            }
            let offsets = try offsetValues.map { v -> Int in
                guard let n = (v as? NSNumber)?.intValue, n >= 0 else { throw bad("tensor \(name) has bad offsets") }
                return n
            }
            guard let size = NamedTensor.elementSize(dtype) else { throw bad("tensor \(name) has unknown dtype \(dtype)") }
            // A hostile shape's product must not overflow (a trap): multiply with overflow checks.
            let count = shape.reduce(Optional(size)) { product, n in
                product.flatMap { p in let r = p.multipliedReportingOverflow(by: n); return r.overflow ? nil : r.partialValue }
            }
            guard let count, offsets[0] <= offsets[1], offsets[1] <= body.count, offsets[1] - offsets[0] == count else {
                throw bad("tensor \(name): data_offsets \(offsets) do not fit shape \(shape) of \(dtype) "
                          + "in \(body.count) data bytes")
            }
            let slice = body[(body.startIndex + offsets[0])..<(body.startIndex + offsets[1])]
            tensors.append((offsets[0], NamedTensor(name: name, shape: shape, dtype: dtype, bytes: slice)))
        }
        tensors.sort { ($0.0, $0.1.name) < ($1.0, $1.1.name) }
        return Checkpoint(tensors: tensors.map(\.1), metadata: metadata)
    }
}

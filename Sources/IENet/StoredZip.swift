import Foundation
import IECore

/// A read-only view of a ZIP archive whose entries are stored (method 0, uncompressed), as `torch.save` writes
/// them. The central directory is parsed here (Zip64 included); every offset and size is checked against the
/// file before use, so a truncated or hostile archive is an IEError, never a crash or a large allocation.
struct StoredZip {
    /// Entry name -> byte range of its data within `data`.
    let entries: [String: Range<Int>]
    /// Entry names in central-directory order.
    let names: [String]
    let data: Data
    let source: String

    static func looksLikeZip(_ data: Data) -> Bool {
        data.count >= 4 && data.prefix(4).elementsEqual([0x50, 0x4B, 0x03, 0x04])
    }

    init(_ data: Data, source: String) throws {
        self.data = data
        self.source = source
        let reader = ByteReader(data: data, source: source, what: "ZIP archive")
        let directory = try Self.centralDirectory(reader)
        var entries: [String: Range<Int>] = [:]
        var names: [String] = []
        var position = directory.offset
        for _ in 0..<directory.count {
            guard try reader.u32(position) == 0x0201_4B50 else {
                throw reader.bad("central directory entry at byte \(position) lacks its signature")
            }
            let method = try reader.u16(position + 10)
            var compressedSize = UInt64(try reader.u32(position + 20))
            var size = UInt64(try reader.u32(position + 24))
            let nameLength = Int(try reader.u16(position + 28))
            let extraLength = Int(try reader.u16(position + 30))
            let commentLength = Int(try reader.u16(position + 32))
            var localOffset = UInt64(try reader.u32(position + 42))
            let name = String(decoding: try reader.bytes(position + 46, nameLength), as: UTF8.self)
            // Zip64 extended information: the 8-byte values of the fields that read 0xFFFFFFFF, in this order.
            var extra = position + 46 + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = try reader.u16(extra), length = Int(try reader.u16(extra + 2))
                guard extra + 4 + length <= extraEnd else { throw reader.bad("entry \(name): extra field overruns its entry") }
                if id == 0x0001 {
                    var field = extra + 4
                    func next() throws -> UInt64 {
                        guard field + 8 <= extra + 4 + length else { throw reader.bad("entry \(name): Zip64 field too short") }
                        defer { field += 8 }
                        return try reader.u64(field)
                    }
                    if size == 0xFFFF_FFFF { size = try next() }
                    if compressedSize == 0xFFFF_FFFF { compressedSize = try next() }
                    if localOffset == 0xFFFF_FFFF { localOffset = try next() }
                }
                extra += 4 + length
            }
            guard method == 0 else {
                throw reader.bad("entry \(name) is compressed (method \(method)), expected stored entries as torch.save writes")
            }
            guard compressedSize == size else { throw reader.bad("entry \(name): stored size \(compressedSize) differs from size \(size)") }
            guard localOffset < UInt64(data.count) else { throw reader.bad("entry \(name): local header offset \(localOffset) is past the end") }
            let local = Int(localOffset)
            guard try reader.u32(local) == 0x0403_4B50 else { throw reader.bad("entry \(name): local header lacks its signature") }
            let start = local + 30 + Int(try reader.u16(local + 26)) + Int(try reader.u16(local + 28))
            guard size <= UInt64(data.count), start <= data.count - Int(size) else {
                throw reader.bad("entry \(name): \(size) bytes at byte \(start) exceed the \(data.count)-byte file (truncated?)")
            }
            if entries[name] == nil { names.append(name) }
            entries[name] = start..<(start + Int(size))
            position = extraEnd + commentLength
        }
        self.entries = entries
        self.names = names
    }

    /// (offset, entry count) of the central directory, from the end-of-central-directory record (Zip64 aware).
    private static func centralDirectory(_ reader: ByteReader) throws -> (offset: Int, count: Int) {
        let data = reader.data
        guard data.count >= 22 else { throw reader.bad("only \(data.count) bytes, too short for a ZIP archive (truncated?)") }
        var end: Int?
        var candidate = data.count - 22
        let lowest = max(0, data.count - 22 - 65535)
        while candidate >= lowest {
            if try reader.u32(candidate) == 0x0605_4B50 { end = candidate; break }
            candidate -= 1
        }
        guard let end else { throw reader.bad("no end-of-central-directory record (truncated?)") }
        var count = UInt64(try reader.u16(end + 10))
        var offset = UInt64(try reader.u32(end + 16))
        if count == 0xFFFF || offset == 0xFFFF_FFFF {
            guard end >= 20, try reader.u32(end - 20) == 0x0706_4B50 else { throw reader.bad("Zip64 locator missing") }
            let record64 = try reader.u64(end - 12)
            guard record64 < UInt64(data.count), try reader.u32(Int(record64)) == 0x0606_4B50 else {
                throw reader.bad("Zip64 end-of-central-directory record missing")
            }
            count = try reader.u64(Int(record64) + 32)
            offset = try reader.u64(Int(record64) + 48)
        }
        // Each entry takes at least 46 bytes, so a count beyond that is a lie (and would loop for long).
        guard offset <= UInt64(data.count), count <= UInt64(data.count - Int(offset)) / 46 else {
            throw reader.bad("central directory (\(count) entries at byte \(offset)) does not fit the \(data.count)-byte file")
        }
        return (Int(offset), Int(count))
    }

    /// The bytes of entry `name`, or nil when the archive has no such entry.
    func entry(_ name: String) -> Data? {
        entries[name].map { data.subdata(in: (data.startIndex + $0.lowerBound)..<(data.startIndex + $0.upperBound)) }
    }
}

/// Bounds-checked little-endian reads from a Data (offsets relative to its start).
struct ByteReader {
    let data: Data
    let source: String
    let what: String

    func bad(_ detail: String) -> IEError { IEError.badInput("\(source): not a valid \(what): \(detail)") }

    func bytes(_ offset: Int, _ count: Int) throws -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= data.count, count <= data.count - offset else {
            throw bad("\(count) bytes at byte \(offset) exceed the \(data.count)-byte file (truncated?)")
        }
        let start = data.startIndex + offset
        return [UInt8](data[start..<(start + count)])
    }

    func unsigned(_ offset: Int, _ count: Int) throws -> UInt64 {
        try bytes(offset, count).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }
    func u16(_ offset: Int) throws -> UInt16 { UInt16(try unsigned(offset, 2)) }
    func u32(_ offset: Int) throws -> UInt32 { UInt32(try unsigned(offset, 4)) }
    func u64(_ offset: Int) throws -> UInt64 { try unsigned(offset, 8) }
}

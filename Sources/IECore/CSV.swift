import CCSV
import Foundation

/// A parsed CSV table: a header and rows, each row remembering its 1-based line number in the file
/// so that validation errors can name it.
public struct CSVTable: Sendable {
    public var header: [String]
    public var rows: [[String]]
    public var lineNumbers: [Int]
    public var source: String

    public init(header: [String], rows: [[String]], lineNumbers: [Int]? = nil, source: String = "<memory>") {
        self.header = header
        self.rows = rows
        self.lineNumbers = lineNumbers ?? rows.indices.map { $0 + 2 }
        self.source = source
    }

    public func columnIndex(_ name: String) -> Int? { header.firstIndex(of: name) }

    /// Column `name` of row `i`, or nil when the column is absent or the row is short.
    public func value(_ name: String, row i: Int) -> String? {
        guard let c = columnIndex(name), c < rows[i].count else { return nil }
        return rows[i][c]
    }

    /// Reads a CSV file (or "-" for stdin) through libcsv.
    public static func read(path: String) throws -> CSVTable {
        let data: Data
        if path == "-" {
            data = try StandardStream.readAll()
        } else {
            data = try StandardStream.readFile(atPath: path, expected: "a CSV file")
        }
        return try parse(data, source: path == "-" ? "<stdin>" : path)
    }

    public static func parse(_ text: String, source: String = "<memory>") throws -> CSVTable {
        try parse(Data(text.utf8), source: source)
    }

    private final class Collector {
        var records: [[String]] = []
        var lines: [Int] = []
        var current: [String] = []
        var line = 1          // line where the current record starts
        var newlinesSeen = 0
    }

    public static func parse(_ data: Data, source: String) throws -> CSVTable {
        try requireUTF8(data, source: source)
        var parser = csv_parser()
        guard csv_init(&parser, UInt8(CSV_APPEND_NULL)) == 0 else {
            throw IEError.failure("libcsv initialisation failed")
        }
        defer { csv_free(&parser) }
        let collector = Collector()
        let context = Unmanaged.passUnretained(collector).toOpaque()
        let fieldCallback: @convention(c) (UnsafeMutableRawPointer?, Int, UnsafeMutableRawPointer?) -> Void = { field, length, ctx in
            let c = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
            if let field {
                let bytes = UnsafeRawBufferPointer(start: field, count: length)
                c.current.append(String(decoding: bytes, as: UTF8.self))
            } else {
                c.current.append("")
            }
        }
        let rowCallback: @convention(c) (Int32, UnsafeMutableRawPointer?) -> Void = { _, ctx in
            let c = Unmanaged<Collector>.fromOpaque(ctx!).takeUnretainedValue()
            c.records.append(c.current)
            c.lines.append(c.line)
            c.current = []
        }
        // Feed line by line so each record knows the line it started on (quoted fields may span lines).
        var lineStart = 0
        let bytes = [UInt8](data)
        var lineNo = 0
        var recordsBefore = 0
        while lineStart < bytes.count {
            var end = lineStart
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            if end < bytes.count { end += 1 }
            lineNo += 1
            // A record starts on this line unless the parser is inside one (libcsv's pstate 0 is "row not begun";
            // a quoted field spanning lines keeps it in a field, and the record's line is where it began).
            if collector.current.isEmpty && collector.records.count == recordsBefore && parser.pstate == 0 {
                collector.line = lineNo
            }
            let n = bytes[lineStart..<end].withUnsafeBufferPointer { buf in
                csv_parse(&parser, buf.baseAddress, buf.count, fieldCallback, rowCallback, context)
            }
            if n != end - lineStart {
                throw IEError.badInput("malformed CSV: \(String(cString: csv_strerror(csv_error(&parser))))", file: source, line: lineNo)
            }
            if collector.records.count != recordsBefore {
                recordsBefore = collector.records.count
                collector.line = lineNo + 1
            }
            lineStart = end
        }
        csv_fini(&parser, fieldCallback, rowCallback, context)
        var records = collector.records
        var lines = collector.lines
        // Drop blank records (a trailing empty line, or lines with only whitespace).
        var keep: [Int] = []
        for (i, r) in records.enumerated() where !(r.count == 1 && r[0].trimmingCharacters(in: .whitespaces).isEmpty) && !r.isEmpty {
            keep.append(i)
        }
        records = keep.map { records[$0] }
        lines = keep.map { lines[$0] }
        guard let header = records.first else {
            throw IEError.badInput("empty CSV file, expected a header line", file: source, line: 1)
        }
        var trimmedHeader = header.map { $0.trimmingCharacters(in: .whitespaces) }
        // Spreadsheet programs like to start UTF-8 CSV files with a byte-order mark.
        if let first = trimmedHeader.first, first.hasPrefix("\u{FEFF}") { trimmedHeader[0] = String(first.dropFirst()) }
        return CSVTable(header: trimmedHeader, rows: Array(records.dropFirst()), lineNumbers: Array(lines.dropFirst()), source: source)
    }

    /// Serialises with minimal quoting (RFC 4180).
    public func serialized() -> String {
        var out = CSVTable.line(header)
        for r in rows { out += CSVTable.line(r) }
        return out
    }

    public static func line(_ fields: [String]) -> String {
        fields.map(quote).joined(separator: ",") + "\n"
    }

    public static func quote(_ field: String) -> String {
        if field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        return field
    }
}

extension CSVTable {
    /// Refuses bytes that are not UTF-8 (a Latin-1 export, say) with the line number, rather than turning them
    /// into U+FFFD in every file written from the table.
    static func requireUTF8(_ data: Data, source: String) throws {
        guard String(data: data, encoding: .utf8) == nil else { return }
        var line = 1
        for chunk in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if String(data: Data(chunk), encoding: .utf8) == nil {
                throw IEError.badInput("text is not valid UTF-8 (a Latin-1 or other 8-bit export?), expected a UTF-8 CSV file",
                                       file: source, line: line)
            }
            line += 1
        }
    }
}

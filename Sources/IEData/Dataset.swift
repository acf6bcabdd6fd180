import Foundation
import IECore

/// One row of dataset.csv: one (subject, channel) file.
public struct DatasetRow: Sendable, Equatable {
    public var subject: String
    public var channel: String
    /// As written in the CSV (relative to the CSV's folder unless absolute).
    public var filePath: String
    public var institutionId: String?
    public var seriesId: String?
    public var tags: String?
    /// 1-based line in the CSV file.
    public var line: Int
    /// Index into `Dataset.table.rows`.
    public var rowIndex: Int
}

/// dataset.csv (SPEC §2) after the structural checks that need no image: required columns, non-empty
/// subject/channel/filePath fields, no duplicate (subject, channel) rows. Errors name the CSV and line (exit 3).
public struct Dataset: Sendable {
    public static let requiredColumns = ["subject", "filePath", "channel"]

    public var path: String
    public var folder: String
    public var table: CSVTable
    public var rows: [DatasetRow]
    /// Unique subjects in order of first appearance (the order InnerEye's splits start from).
    public var subjectsInFileOrder: [String]

    /// Unique subjects in string-sorted order (the processing order).
    public var subjects: [String] { subjectsInFileOrder.sorted() }

    public static func load(path: String) throws -> Dataset {
        guard FileManager.default.fileExists(atPath: path) else {
            throw IEError.badInput("dataset file not found, expected a dataset.csv with columns subject,filePath,channel", file: path)
        }
        return try Dataset(table: CSVTable.read(path: path), path: path)
    }

    public init(table: CSVTable, path: String) throws {
        self.path = path
        self.folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        self.table = table
        for column in Dataset.requiredColumns where table.columnIndex(column) == nil {
            let hint = closestMatch(column, in: table.header).map { " (closest: \($0))" } ?? ""
            throw IEError.badInput("missing column '\(column)'\(hint), expected a header with subject,filePath,channel", file: path, line: 1)
        }
        let subjectColumn = table.columnIndex("subject")!, channelColumn = table.columnIndex("channel")!
        let fileColumn = table.columnIndex("filePath")!
        let institution = table.columnIndex("institutionId"), series = table.columnIndex("seriesId"), tags = table.columnIndex("tags")
        var rows: [DatasetRow] = []
        var seen: [String: Int] = [:]
        var order: [String] = []
        var known = Set<String>()
        var folderOwner: [String: (subject: String, line: Int)] = [:]
        for (i, fields) in table.rows.enumerated() {
            let line = table.lineNumbers[i]
            guard fields.count == table.header.count else {
                throw IEError.badInput("row has \(fields.count) fields, expected \(table.header.count) as in the header", file: path, line: line)
            }
            func field(_ c: Int?) -> String? {
                guard let c else { return nil }
                return fields[c].trimmingCharacters(in: .whitespaces)
            }
            let subject = field(subjectColumn)!, channel = field(channelColumn)!, file = field(fileColumn)!
            for (name, value) in [("subject", subject), ("channel", channel), ("filePath", file)] where value.isEmpty {
                throw IEError.badInput("empty \(name), expected a value in every row", file: path, line: line)
            }
            try SafeName.require(subject, what: "subject", file: path, line: line)
            try SafeName.require(channel, what: "channel", file: path, line: line)
            let key = subject + "\u{0}" + channel
            if let first = seen[key] {
                throw IEError.badInput("duplicate row for subject \(subject) channel \(channel) (first at line \(first)), expected one row per (subject, channel)", file: path, line: line)
            }
            seen[key] = line
            if !known.contains(subject) {
                // Outputs go to one folder per subject, named `<subject:03d>` for integer ids: "1", "01" and "+1"
                // would share a folder and overwrite each other's segmentations.
                let folder = RunLayout.subjectFolderName(subject)
                if let (other, otherLine) = folderOwner[folder] {
                    throw IEError.badInput("subjects \(other) (line \(otherLine)) and \(subject) both have output folder \(folder), expected subject ids that differ as numbers", file: path, line: line)
                }
                folderOwner[folder] = (subject, line)
                known.insert(subject); order.append(subject)
            }
            rows.append(DatasetRow(subject: subject, channel: channel, filePath: file, institutionId: field(institution),
                                   seriesId: field(series), tags: field(tags), line: line, rowIndex: i))
        }
        guard !rows.isEmpty else {
            throw IEError.badInput("no data rows, expected one row per (subject, channel)", file: path, line: 1)
        }
        self.rows = rows
        self.subjectsInFileOrder = order
    }

    /// The row of (subject, channel), if any.
    public func row(subject: String, channel: String) -> DatasetRow? {
        rows.first { $0.subject == subject && $0.channel == channel }
    }

    public func rows(subject: String) -> [DatasetRow] { rows.filter { $0.subject == subject } }

    /// Absolute path of a row's file.
    public func absolutePath(_ row: DatasetRow) -> String {
        row.filePath.hasPrefix("/") ? row.filePath : URL(fileURLWithPath: folder).appendingPathComponent(row.filePath).standardizedFileURL.path
    }

    /// The CSV rows (header kept) whose subject is in `subjects`, in file order. With `absolutePaths`, filePath
    /// holds each file's absolute path, so the table stays valid wherever it is written.
    public func table(subjects: Set<String>? = nil, absolutePaths: Bool = false) -> CSVTable {
        let keep = rows.filter { subjects?.contains($0.subject) ?? true }
        let fileColumn = table.columnIndex("filePath")!
        return CSVTable(header: table.header, rows: keep.map { row in
            var fields = table.rows[row.rowIndex]
            if absolutePaths { fields[fileColumn] = absolutePath(row) }
            return fields
        }, lineNumbers: keep.map(\.line), source: path)
    }

    /// Checks that every subject has a row for each required channel (image channels and mask always;
    /// structures unless `allowIncompleteLabels`). Errors name the CSV and the subject's first line.
    public func checkChannels(imageChannels: [String], groundTruthIds: [String], maskId: String?,
                              allowIncompleteLabels: Bool, subjects only: [String]? = nil) throws {
        var required = imageChannels
        if let maskId { required.append(maskId) }
        if !allowIncompleteLabels { required += groundTruthIds }
        var bySubject: [String: [String: DatasetRow]] = [:]
        for r in rows { bySubject[r.subject, default: [:]][r.channel] = r }
        let channelsInFile = Set(rows.map(\.channel))
        for subject in only ?? subjects {
            guard let channels = bySubject[subject] else {
                throw IEError.badInput("subject \(subject) has no rows, expected rows for channels \(required.joined(separator: ", "))", file: path)
            }
            for c in required where channels[c] == nil {
                let firstLine = channels.values.map(\.line).min()
                let hint = channelsInFile.contains(c) ? "" : (closestMatch(c, in: Array(channelsInFile)).map { " (no row anywhere has channel \(c); closest: \($0))" } ?? "")
                throw IEError.badInput("subject \(subject) has no row for channel \(c)\(hint), expected one row per (subject, channel)", file: path, line: firstLine)
            }
        }
    }
}

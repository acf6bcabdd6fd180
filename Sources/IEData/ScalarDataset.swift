import Foundation
import IECore
import IEConfig

/// How a scalar (classification or regression) model reads its dataset.csv: InnerEye's ScalarModelBase keys
/// (SPEC §13). Rows are `subject,channel,filePath,<label_value_column>,<feature columns>...`.
public struct ScalarDatasetOptions: Sendable, Equatable {
    /// Channels whose rows name the image files (`image_channels`), in the network's channel order.
    public var imageChannels: [String]
    /// Channels whose rows hold the label (`label_channels`); nil: each subject has exactly one row.
    public var labelChannels: [String]?
    public var labelValueColumn = "label"
    /// Columns of numbers and of categories fed to the network beside the images.
    public var numericalColumns: [String] = []
    public var categoricalColumns: [String] = []
    /// For each feature column, the channels whose rows it is read from (`non_image_feature_channels`);
    /// a column not listed is read from the label row.
    public var nonImageFeatureChannels: [String: [String]] = [:]
    public var isClassification = true
    /// Model outputs: 1 for binary classification and regression, the number of classes for multi-label.
    public var classCount = 1

    public init(imageChannels: [String]) { self.imageChannels = imageChannels }

    /// The options a classification or regression model config sets (SPEC §13).
    public init(config: ModelConfig) {
        self.init(imageChannels: config.imageChannels)
        labelChannels = config.labelChannels
        labelValueColumn = config.labelValueColumn
        numericalColumns = config.numericalColumns
        categoricalColumns = config.categoricalColumns
        if let channels = config.nonImageFeatureChannels {
            for column in numericalColumns + categoricalColumns { nonImageFeatureChannels[column] = channels }
        }
        isClassification = config.category == .classification
        classCount = config.scalarOutputs
    }
}

/// One subject of a scalar dataset.
public struct ScalarSubject: Sendable, Equatable {
    public var id: String
    /// One value per model output: 0/1 for classification (one-hot over `class_names` for multi-label),
    /// the target for regression.
    public var label: [Double]
    /// Absolute paths, one per image channel.
    public var imageFiles: [String]
    /// Values of the numerical feature columns, one per (column, channel) in option order.
    public var numericalFeatures: [Double]
    /// Raw values of each categorical column, one per channel.
    public var categoricalFeatures: [String: [String]]
    /// Line of the row the label came from.
    public var labelLine: Int
    /// Line of the row of the first image channel.
    public var imageLine: Int = 0
}

/// A scalar dataset.csv after every check that needs no image: labels parsed as InnerEye's
/// `extract_label_classification`, features as numbers, one row per (subject, channel). Every error names the
/// file and line (exit 3).
public struct ScalarDataset: Sendable {
    public var path: String
    public var subjects: [ScalarSubject]
    /// Categories of each categorical column (sorted, as scikit-learn's OneHotEncoder orders them).
    public var categories: [String: [String]]

    public static func load(path: String, options: ScalarDatasetOptions) throws -> ScalarDataset {
        guard FileManager.default.fileExists(atPath: path) else {
            throw IEError.badInput("dataset file not found, expected a dataset.csv with columns subject,channel,filePath,\(options.labelValueColumn)", file: path)
        }
        return try ScalarDataset(table: CSVTable.read(path: path), path: path, options: options)
    }

    public init(table: CSVTable, path: String, options: ScalarDatasetOptions) throws {
        self.path = path
        let header = table.header  // CSVTable.parse drops a byte-order mark
        let featureColumns = options.numericalColumns + options.categoricalColumns
        var columns: [String: Int] = [:]
        for name in ["subject", "channel", "filePath", options.labelValueColumn] + featureColumns {
            guard let index = header.firstIndex(of: name) else {
                let hint = closestMatch(name, in: header).map { " (closest: \($0))" } ?? ""
                throw IEError.badInput("missing column '\(name)'\(hint), expected it in the header", file: path, line: 1)
            }
            columns[name] = index
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        // Rows of each subject, by channel, in file order.
        var rowsBySubject: [String: [(channel: String, fields: [String], line: Int)]] = [:]
        var order: [String] = []
        for (i, fields) in table.rows.enumerated() {
            let line = table.lineNumbers[i]
            guard fields.count == header.count else {
                throw IEError.badInput("row has \(fields.count) fields, expected \(header.count) as in the header", file: path, line: line)
            }
            let subject = fields[columns["subject", default: 0]].trimmingCharacters(in: .whitespaces)
            let channel = fields[columns["channel", default: 0]].trimmingCharacters(in: .whitespaces)
            try SafeName.require(subject, what: "subject", file: path, line: line)
            if let first = rowsBySubject[subject]?.first(where: { $0.channel == channel }) {
                throw IEError.badInput("duplicate row for subject \(subject) channel '\(channel)' (first at line \(first.line)), expected one row per (subject, channel)", file: path, line: line)
            }
            if rowsBySubject[subject] == nil { order.append(subject) }
            rowsBySubject[subject, default: []].append((channel, fields, line))
        }
        guard !order.isEmpty else { throw IEError.badInput("no data rows, expected one row per (subject, channel)", file: path, line: 1) }

        var subjects: [ScalarSubject] = []
        for id in order {
            let rows = rowsBySubject[id] ?? []
            func row(_ channel: String?, for what: String) throws -> (fields: [String], line: Int) {
                if let channel {
                    guard let r = rows.first(where: { $0.channel == channel }) else {
                        throw IEError.badInput("subject \(id) has no row for channel '\(channel)' (\(what)), expected one", file: path, line: rows.first?.line)
                    }
                    return (r.fields, r.line)
                }
                guard rows.count == 1, let r = rows.first else {
                    throw IEError.badInput("subject \(id) has \(rows.count) rows and no label_channels is set, expected exactly one row", file: path, line: rows.first?.line)
                }
                return (r.fields, r.line)
            }
            func value(_ r: (fields: [String], line: Int), _ column: String) -> String {
                r.fields[columns[column, default: 0]].trimmingCharacters(in: .whitespaces)
            }
            var label: [Double] = []
            var labelLine = 0
            for channel in options.labelChannels.map({ $0.map(Optional.some) }) ?? [nil] {
                let r = try row(channel, for: "label")
                if labelLine == 0 { labelLine = r.line }
                label += try Self.parseLabel(value(r, options.labelValueColumn), options: options, subject: id, file: path, line: r.line)
            }
            var imageFiles: [String] = []
            var imageLine = 0
            for channel in options.imageChannels {
                let r = try row(channel, for: "image")
                if imageLine == 0 { imageLine = r.line }
                let file = value(r, "filePath")
                guard !file.isEmpty else {
                    throw IEError.badInput("subject \(id) channel '\(channel)': empty filePath, expected an image file", file: path, line: r.line)
                }
                imageFiles.append(file.hasPrefix("/") ? file : URL(fileURLWithPath: folder).appendingPathComponent(file).standardizedFileURL.path)
            }
            let labelChannel = options.labelChannels?.first
            var numerical: [Double] = []
            var categorical: [String: [String]] = [:]
            for column in featureColumns {
                for channel in options.nonImageFeatureChannels[column].map({ $0.map(Optional.some) }) ?? [labelChannel] {
                    let r = try row(channel, for: "column \(column)")
                    let text = value(r, column)
                    if options.numericalColumns.contains(column) {
                        guard let number = Double(text), number.isFinite else {
                            throw IEError.badInput("subject \(id) column \(column): '\(text)' is not a finite number, expected one", file: path, line: r.line)
                        }
                        numerical.append(number)
                    } else {
                        categorical[column, default: []].append(text)
                    }
                }
            }
            subjects.append(ScalarSubject(id: id, label: label, imageFiles: imageFiles, numericalFeatures: numerical,
                                          categoricalFeatures: categorical, labelLine: labelLine, imageLine: imageLine))
        }
        self.subjects = subjects
        var categories: [String: [String]] = [:]
        for column in options.categoricalColumns {
            categories[column] = Array(Set(subjects.flatMap { $0.categoricalFeatures[column] ?? [] }).filter { !$0.isEmpty }).sorted()
        }
        self.categories = categories
    }

    /// A label cell as InnerEye's `extract_label_classification` reads it, except that a missing label is an
    /// error here (InnerEye drops such a subject with a warning): binary classification takes 1/0, true/false,
    /// yes/no (case-insensitive words); multi-label a `|`-separated list of class indices (empty: no class);
    /// regression a finite number.
    static func parseLabel(_ text: String, options: ScalarDatasetOptions, subject: String, file: String, line: Int) throws -> [Double] {
        func bad(_ why: String) -> IEError {
            IEError.badInput("subject \(subject) column \(options.labelValueColumn): \(why)", file: file, line: line)
        }
        if options.isClassification && options.classCount > 1 {
            var oneHot = [Double](repeating: 0, count: options.classCount)
            if text.isEmpty { return oneHot }
            for part in text.split(separator: "|", omittingEmptySubsequences: false) {
                guard part.allSatisfy(\.isASCII), let index = Int(part), index >= 0 else {
                    throw bad("'\(text)' is not a list of class indices, expected e.g. 0|2")
                }
                guard index < options.classCount else {
                    throw bad("class index \(index) is out of range, expected 0...\(options.classCount - 1) (\(options.classCount) class_names)")
                }
                oneHot[index] = 1
            }
            return oneHot
        }
        guard !text.isEmpty else { throw bad("the label is missing, expected \(options.isClassification ? "0 or 1" : "a number")") }
        if options.isClassification {
            switch text.lowercased() {
            case "1", "true", "yes": return [1]
            case "0", "false", "no": return [0]
            default: throw bad("'\(text)' is not a binary label, expected 0/1, true/false or yes/no")
            }
        }
        guard let value = Double(text), value.isFinite else { throw bad("'\(text)' is not a finite number, expected a regression target") }
        return [value]
    }

    /// The one-hot encoding of a subject's categorical features (columns in option order, categories sorted;
    /// an empty or unseen value encodes as all zeros).
    public func encodedCategoricalFeatures(_ subject: ScalarSubject, columns: [String]) -> [Double] {
        var out: [Double] = []
        for column in columns {
            let known = categories[column] ?? []
            for value in subject.categoricalFeatures[column] ?? [] {
                out += known.map { $0 == value ? 1 : 0 }
            }
        }
        return out
    }
}

import Foundation
import IECore

/// One row of a per-subject metrics table: metrics.csv (SPEC §7), MetricsAcrossAllRuns.csv (SPEC §8) or one of
/// InnerEye's variants (Dice-only metrics.csv, `*_agg_splits.csv` with a `data_split` column).
public struct MetricsRecord: Sendable, Equatable {
    public var patient: String
    public var structure: String
    public var dice: Double
    public var hausdorffDistance: Double
    public var meanDistance: Double
    public var seriesId: String?
    public var institutionId: String?
    /// The run (cross-validation fold, ENSEMBLE, CURRENT, a baseline name) in MetricsAcrossAllRuns.csv.
    public var split: String?
    /// Test, Val or Train.
    public var mode: String?
    /// 1-based line in the source file, for error messages.
    public var line: Int

    public init(patient: String, structure: String, dice: Double, hausdorffDistance: Double = .nan,
                meanDistance: Double = .nan, seriesId: String? = nil, institutionId: String? = nil,
                split: String? = nil, mode: String? = nil, line: Int = 0) {
        self.patient = patient
        self.structure = structure
        self.dice = dice
        self.hausdorffDistance = hausdorffDistance
        self.meanDistance = meanDistance
        self.seriesId = seriesId
        self.institutionId = institutionId
        self.split = split
        self.mode = mode
        self.line = line
    }

    /// The key that pairs a subject across runs: seriesId when the table has one, else Patient (as InnerEye).
    public func pairingKey(useSeriesId: Bool) -> String {
        if useSeriesId, let seriesId, !seriesId.isEmpty { return seriesId }
        return patient
    }
}

/// A parsed metrics table and which optional columns it had.
public struct MetricsFile: Sendable {
    public var records: [MetricsRecord]
    public var hasHausdorffDistance: Bool
    public var hasMeanDistance: Bool
    public var hasSeriesId: Bool
    public var hasInstitutionId: Bool
    public var hasSplit: Bool
    public var hasMode: Bool
    public var source: String

    public init(records: [MetricsRecord], hasHausdorffDistance: Bool = true, hasMeanDistance: Bool = true,
                hasSeriesId: Bool = false, hasInstitutionId: Bool = false, hasSplit: Bool = false,
                hasMode: Bool = false, source: String = "<memory>") {
        self.records = records
        self.hasHausdorffDistance = hasHausdorffDistance
        self.hasMeanDistance = hasMeanDistance
        self.hasSeriesId = hasSeriesId
        self.hasInstitutionId = hasInstitutionId
        self.hasSplit = hasSplit
        self.hasMode = hasMode
        self.source = source
    }

    public static let requiredColumns = ["Patient", "Structure", "Dice"]

    /// Reads a metrics CSV from a file, or from stdin when `path` is "-".
    public static func read(path: String) throws -> MetricsFile {
        try parse(table: CSVTable.read(path: path))
    }

    public static func parse(text: String, source: String = "<memory>") throws -> MetricsFile {
        try parse(table: CSVTable.parse(text, source: source))
    }

    public static func parse(table: CSVTable) throws -> MetricsFile {
        // A column named twice would be read from its first occurrence only, silently.
        var firstLine: [String: Int] = [:]
        for (i, name) in table.header.enumerated() where !name.isEmpty {
            if let first = firstLine[name] {
                throw IEError.badInput("column \(name) appears twice (columns \(first + 1) and \(i + 1)), expected each column once",
                                       file: table.source, line: 1)
            }
            firstLine[name] = i
        }
        for column in requiredColumns where table.columnIndex(column) == nil {
            throw IEError.badInput("missing column \(column), expected a metrics CSV with columns "
                                   + "Patient,Structure,Dice[,HausdorffDistance_mm,MeanDistance_mm]",
                                   file: table.source, line: 1)
        }
        let patientColumn = table.columnIndex("Patient")!
        let structureColumn = table.columnIndex("Structure")!
        let diceColumn = table.columnIndex("Dice")!
        let hausdorffColumn = table.columnIndex("HausdorffDistance_mm")
        let meanDistanceColumn = table.columnIndex("MeanDistance_mm")
        let seriesColumn = table.columnIndex("seriesId")
        let institutionColumn = table.columnIndex("institutionId")
        let splitColumn = table.columnIndex("split")
        // InnerEye's intermediate *_agg_splits.csv files call the mode column data_split.
        let modeColumn = table.columnIndex("mode") ?? table.columnIndex("data_split")
        // MetricsAcrossAllRuns.csv (split and mode columns) holds Dice * 100, as InnerEye writes it.
        let diceScale: Double = splitColumn != nil && modeColumn != nil ? 100 : 1
        var records: [MetricsRecord] = []
        records.reserveCapacity(table.rows.count)
        for (i, row) in table.rows.enumerated() {
            let line = table.lineNumbers[i]
            guard row.count == table.header.count else {
                throw IEError.badInput("the row has \(row.count) fields, expected \(table.header.count) (one per header column)",
                                       file: table.source, line: line)
            }
            func field(_ column: Int?) -> String? {
                guard let column else { return nil }
                return column < row.count ? row[column] : ""
            }
            func number(_ column: Int?, _ name: String) throws -> Double {
                guard let text = field(column) else { return .nan }
                guard let value = parseMetricValue(text) else {
                    throw IEError.badInput("column \(name) holds '\(text)', expected a number, inf or an empty field",
                                           file: table.source, line: line)
                }
                return value
            }
            // NaN (an empty field) is a missing value; anything else must be a possible value of the metric.
            func checked(_ value: Double, _ name: String, in range: ClosedRange<Double>) throws -> Double {
                guard value.isNaN || range.contains(value) else {
                    throw IEError.badInput("column \(name) holds \(value), expected a value between \(range.lowerBound) and "
                                           + "\(range.upperBound), or an empty field", file: table.source, line: line)
                }
                return value
            }
            let patient = field(patientColumn)!.trimmingCharacters(in: .whitespaces)
            let structure = field(structureColumn)!.trimmingCharacters(in: .whitespaces)
            if patient.isEmpty || structure.isEmpty {
                throw IEError.badInput("empty Patient or Structure, expected both on every row",
                                       file: table.source, line: line)
            }
            records.append(MetricsRecord(
                patient: patient, structure: structure,
                dice: try checked(number(diceColumn, "Dice"), "Dice", in: 0...diceScale),
                hausdorffDistance: try checked(number(hausdorffColumn, "HausdorffDistance_mm"), "HausdorffDistance_mm",
                                               in: 0...Double.infinity),
                meanDistance: try checked(number(meanDistanceColumn, "MeanDistance_mm"), "MeanDistance_mm",
                                          in: 0...Double.infinity),
                seriesId: field(seriesColumn), institutionId: field(institutionColumn),
                split: field(splitColumn), mode: field(modeColumn), line: line))
        }
        return MetricsFile(records: records, hasHausdorffDistance: hausdorffColumn != nil,
                           hasMeanDistance: meanDistanceColumn != nil, hasSeriesId: seriesColumn != nil,
                           hasInstitutionId: institutionColumn != nil, hasSplit: splitColumn != nil,
                           hasMode: modeColumn != nil, source: table.source)
    }

    /// Distinct values of `key` in first-appearance order.
    public func distinct(_ key: (MetricsRecord) -> String?) -> [String] {
        var seen = Set<String>()
        var result: [String] = []
        for r in records {
            if let v = key(r), seen.insert(v).inserted { result.append(v) }
        }
        return result
    }
}

/// Parses a metric field: empty = NaN, `inf`/`-inf`/`nan` in any of the spellings pandas and SPEC use.
public func parseMetricValue(_ text: String) -> Double? {
    let t = text.trimmingCharacters(in: .whitespaces)
    if t.isEmpty { return .nan }
    switch t.lowercased() {
    case "inf", "+inf", "infinity", "+infinity": return .infinity
    case "-inf", "-infinity": return -.infinity
    default:
        // Decimal numbers only (SPEC §8): "nan" (only an empty field is missing) and C's hex floats ("0x1p-1")
        // that Double(_:) would also take are refused.
        guard t.allSatisfy({ "0123456789+-.eE".contains($0) }) else { return nil }
        return Double(t)
    }
}

/// `%.3f` with SPEC §7's spellings: `inf` for infinity, an empty field for NaN.
public func formatMetric3(_ value: Double) -> String {
    if value.isNaN { return "" }
    if value.isInfinite { return value > 0 ? "inf" : "-inf" }
    return String(format: "%.3f", value)
}

/// Python's `repr(float)` (what pandas' `to_csv` writes without a float_format): the shortest round-trip
/// digits, `.0` on integral values, exponent form below 1e-4 and from 1e16 on.
public func pythonFloatRepr(_ value: Double) -> String {
    if value.isNaN { return "nan" }
    if value.isInfinite { return value > 0 ? "inf" : "-inf" }
    if value == 0 { return value.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description is also the shortest round-trip form; only the notation switch points and the
    // exponent spelling differ from Python's.
    let magnitude = abs(value)
    if magnitude >= 1e16 || magnitude < 1e-4 {
        var s = String(describing: value)  // e.g. "1e-05", "1.5e+16" or "1e+16"
        if !s.contains("e") {
            // Swift prints some of these ranges positionally; fall back to %e with the shortest mantissa.
            s = String(format: "%.17g", value)
        }
        // Python writes the exponent with at least two digits and an explicit sign.
        if let eIndex = s.firstIndex(of: "e") {
            let mantissa = String(s[..<eIndex])
            var exponent = String(s[s.index(after: eIndex)...])
            var sign = "+"
            if exponent.hasPrefix("-") { sign = "-"; exponent.removeFirst() } else if exponent.hasPrefix("+") { exponent.removeFirst() }
            if exponent.count < 2 { exponent = "0" + exponent }
            return mantissa + "e" + sign + exponent
        }
        return s
    }
    var s = String(describing: value)
    if s.contains("e") {
        // Swift switches to exponent form at 2^53 / below 1e-4 differently; write positionally.
        s = String(format: "%.17g", value)
    }
    if !s.contains(".") { s += ".0" }
    return s
}

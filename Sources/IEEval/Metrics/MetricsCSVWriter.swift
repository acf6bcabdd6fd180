import Foundation
import IECore

/// One metrics.csv line: a (patient, structure) and its metrics.
public struct MetricsRow: Sendable, Equatable {
    public var patient: String
    public var structure: String
    public var metrics: SegmentationMetrics

    public init(patient: String, structure: String, metrics: SegmentationMetrics) {
        self.patient = patient
        self.structure = structure
        self.metrics = metrics
    }
}

/// metrics.csv as SPEC §7 (InnerEye's MetricsPerPatientWriter): header
/// `Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm` plus one column per extra metric,
/// values `%.3f`, infinity as `inf`, NaN as an empty field, rows sorted by Structure then rounded Dice ascending
/// (ties by Patient).
public enum MetricsCSVWriter {
    public static let baseHeader = ["Patient", "Structure", "Dice", "HausdorffDistance_mm", "MeanDistance_mm"]

    public static func header(extras: [ExtraMetric]) -> [String] {
        baseHeader + extras.map(\.columnName)
    }

    /// `%.3f`; `inf` / `-inf` for infinities; empty for NaN (pandas `na_rep=""`).
    public static func format(_ value: Double) -> String {
        if value.isNaN { return "" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        let text = String(format: "%.3f", value)
        return text == "-0.000" ? "0.000" : text
    }

    /// InnerEye's `format_metric` followed by `float()`: the value as `%.3f` read back (NaN and inf unchanged).
    /// metrics.csv is sorted on, and metrics_aggregates.csv computed from, these rounded values.
    public static func rounded(_ value: Double) -> Double {
        guard value.isFinite else { return value }
        return Double(String(format: "%.3f", value)) ?? value
    }

    /// InnerEye's order (MetricsPerPatientWriter: rows sorted by Patient then Structure, then stably by Structure
    /// then Dice): Structure (code-point order, as Python compares strings), then the Dice rounded to 3 decimals
    /// ascending with NaN last, ties by Patient (code-point order), then input order.
    public static func sorted(_ rows: [MetricsRow]) -> [MetricsRow] {
        let keyed = rows.enumerated().map { (offset: $0.offset, row: $0.element, dice: rounded($0.element.metrics.dice)) }
        return keyed.sorted { lhs, rhs in
            let a = lhs.row, b = rhs.row
            if a.structure != b.structure { return codePointOrder(a.structure, b.structure) }
            let da = lhs.dice, db = rhs.dice
            if da.isNaN != db.isNaN { return db.isNaN }
            if !da.isNaN && da != db { return da < db }
            if a.patient != b.patient { return codePointOrder(a.patient, b.patient) }
            return lhs.offset < rhs.offset
        }.map(\.row)
    }

    /// The whole file's text. Every row must carry one value per extra metric.
    public static func text(rows: [MetricsRow], extras: [ExtraMetric] = []) -> String {
        var out = CSVTable.line(header(extras: extras))
        for row in sorted(rows) {
            precondition(row.metrics.extras.count == extras.count,
                         "row \(row.patient)/\(row.structure) has \(row.metrics.extras.count) extra values, expected \(extras.count)")
            let values = [row.metrics.dice, row.metrics.hausdorffDistanceMM, row.metrics.meanDistanceMM] + row.metrics.extras
            out += CSVTable.line([row.patient, row.structure] + values.map(format))
        }
        return out
    }

    /// Writes atomically to `path`, or to stdout for "-".
    public static func write(rows: [MetricsRow], extras: [ExtraMetric] = [], to path: String) throws {
        let content = text(rows: rows, extras: extras)
        if path == "-" {
            try StandardStream.write(content)
        } else {
            try AtomicFile.write(content, to: path)
        }
    }
}

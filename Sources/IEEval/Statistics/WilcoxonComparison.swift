import Foundation

/// Scores arranged as InnerEye's wilcoxon_signed_rank_test.py does: run -> structure -> subject key -> Dice.
public struct ScoresByRun: Sendable {
    public var runs: [String: [String: [String: Double]]] = [:]
    /// How InnerEye's pandas would type each run's pairing column, which decides the order of the shared subjects
    /// (and so numpy's summation order for the means).
    public var keyOrders: [String: SubjectKeyOrder] = [:]

    public init() {}

    /// Groups the records of `file` (rows whose mode matches `subset`, case-insensitive, or all rows when
    /// `subset` is "all" or the file has no mode column). Records without a split go to `defaultRun`.
    /// Pairing key: seriesId if the file has that column, else Patient. A later duplicate row overwrites an
    /// earlier one, as InnerEye's dictionaries do.
    public mutating func add(_ file: MetricsFile, defaultRun: String, subset: String = "all",
                             excluding excluded: Set<String> = []) {
        let subsetLower = subset.lowercased()
        // pandas infers a column's dtype from all its rows, whatever mode or structure they belong to.
        let order = SubjectKeyOrder.inferred(file.records.map { $0.pairingKey(useSeriesId: file.hasSeriesId) })
        for r in file.records {
            if subsetLower != "all", let mode = r.mode, mode.lowercased() != subsetLower { continue }
            if excluded.contains(r.structure) { continue }
            let run = (file.hasSplit ? r.split : nil) ?? defaultRun
            runs[run, default: [:]][r.structure, default: [:]][r.pairingKey(useSeriesId: file.hasSeriesId)] = r.dice
            keyOrders[run] = keyOrders[run].map { $0.combined(with: order) } ?? order
        }
    }
}

/// The order of subject keys in InnerEye's `sorted(shared)`: its dictionaries are keyed by the values of a column
/// pandas read_csv parsed, int64 when every value is an integer, float64 when every value is a number, else str
/// (read_csv never mixes types within a column). So ids sort numerically (2 before 10) unless one is not a
/// number; then all sort as strings in code-point order.
public enum SubjectKeyOrder: Sendable, Equatable {
    case integer
    case float
    case string

    public static func inferred(_ keys: some Sequence<String>) -> SubjectKeyOrder {
        var order = SubjectKeyOrder.integer
        for key in keys {
            if Int64(key) != nil { continue }
            if decimalNumber(key) != nil { order = .float; continue }
            return .string
        }
        return order
    }

    /// Keys of two runs: both numeric compare as numbers (Python's 7 == 7.0). A numeric run against a string
    /// run pairs nothing in InnerEye (7 != '7'); we pair on the text and order as strings.
    public func combined(with other: SubjectKeyOrder) -> SubjectKeyOrder {
        switch (self, other) {
        case (.integer, .integer): return .integer
        case (.string, _), (_, .string): return .string
        default: return .float
        }
    }

    /// A decimal number as read_csv's float parser reads one (no hex floats, which Swift's Double(String) takes).
    static func decimalNumber(_ key: String) -> Double? {
        guard !key.contains(where: { $0 == "x" || $0 == "X" || $0 == "p" || $0 == "P" }) else { return nil }
        guard let value = Double(key), !value.isNaN else { return nil }
        return value
    }

    /// Strict order for sorting; keys equal as numbers (`7`, `07`) fall back to code points so the order is total.
    public func precedes(_ a: String, _ b: String) -> Bool {
        switch self {
        case .integer:
            if let x = Int64(a), let y = Int64(b), x != y { return x < y }
        case .float:
            if let x = SubjectKeyOrder.decimalNumber(a), let y = SubjectKeyOrder.decimalNumber(b), x != y { return x < y }
        case .string:
            break
        }
        return codePointOrder(a, b)
    }
}

/// Per-structure result of comparing two runs on the subjects they share.
public struct WilcoxonComparisonRow: Sendable {
    public var structure: String
    public var pairs: Int
    public var mean1: Double
    public var mean2: Double
    /// Pairs where run 1 scored higher / run 2 scored higher.
    public var firstHigher: Int
    public var secondHigher: Int
    public var median1: Double
    public var median2: Double
    /// InnerEye: the signed-rank sum W; exact/approx: scipy's min(R+, R-).
    public var statistic: Double
    public var z: Double
    public var p: Double
    /// "BETTER", "WORSE" or "" (only meaningful when `qualifies`).
    public var verdict: String
    /// InnerEye's rule: a test is reported only when N1>2 + N2>1 >= 5; otherwise statistic, z and p are NaN
    /// (InnerEye's line stops after Med2) and the verdict is empty.
    public var qualifies: Bool
    /// Direction of a two-sided test (exact/approx methods).
    public var secondIsHigher: Bool = false
}

public struct WilcoxonPairResult: Sendable {
    public var run1: String
    public var run2: String
    public var rows: [WilcoxonComparisonRow]
}

/// Paired comparisons of runs per structure, with InnerEye's report layout (SPEC §8).
public enum WilcoxonComparison {
    public enum Method: String, Sendable, CaseIterable {
        /// InnerEye's: p = Phi(z / f), one-sided in the direction of run 2 being better.
        case innereye
        case exact
        case approx
    }

    public static let notEnoughData = "There were not enough data points for any statistically meaningful comparisons."

    /// Compares two structure -> subject -> score maps. The shared subjects are taken in InnerEye's
    /// `sorted(shared)` order (`keyOrder`; nil: inferred from the keys of both maps), which numpy's sums follow.
    public static func compare(_ first: [String: [String: Double]], _ second: [String: [String: Double]],
                               method: Method = .innereye, raw: Bool = false, threshold: Double = 0.05,
                               holm: Bool = false, keyOrder: SubjectKeyOrder? = nil) -> [WilcoxonComparisonRow] {
        let keyOrder = keyOrder ?? SubjectKeyOrder.inferred(first.values.flatMap(\.keys))
            .combined(with: SubjectKeyOrder.inferred(second.values.flatMap(\.keys)))
        var rows: [WilcoxonComparisonRow] = []
        for structure in first.keys.sorted(by: codePointOrder) {
            guard let scores1 = first[structure], let scores2 = second[structure] else { continue }
            let shared = scores1.keys.filter { scores2[$0] != nil }.sorted(by: keyOrder.precedes)
            let values1 = shared.compactMap { scores1[$0] }
            let values2 = shared.compactMap { scores2[$0] }
            var n1 = 0, n2 = 0
            for (a, b) in zip(values1, values2) {
                if b - a > 0 { n2 += 1 } else if b - a < 0 { n1 += 1 }
            }
            var row = WilcoxonComparisonRow(
                structure: structure, pairs: shared.count,
                mean1: Descriptive.mean(values1), mean2: Descriptive.mean(values2),
                firstHigher: n1, secondHigher: n2,
                median1: Descriptive.median(values1), median2: Descriptive.median(values2),
                statistic: .nan, z: .nan, p: .nan, verdict: "", qualifies: n1 + n2 >= 5)
            switch method {
            case .innereye:
                let result = WilcoxonSignedRank.innerEyeStatistic(first: values1, second: values2)
                let factor = raw ? 1.0 : WilcoxonSignedRank.adjustmentFactor(structure: structure)
                row.statistic = result.w
                row.z = result.z
                row.p = Descriptive.normalCDF(result.z / factor)
            case .exact, .approx:
                let result = WilcoxonSignedRank.twoSided(first: values1, second: values2,
                                                         method: method == .exact ? .exact : .approx)
                row.statistic = result.statistic
                row.z = result.z
                row.p = result.p
                // A two-sided p has no direction: take it from the rank sums (R+ above its null mean
                // means run 2 scored higher).
                if result.n > 0 {
                    row.secondIsHigher = result.rankSumPositive > Double(result.n * (result.n + 1)) / 4
                }
            }
            if !row.qualifies { row.statistic = .nan; row.z = .nan; row.p = .nan }
            rows.append(row)
        }
        if holm && method != .innereye {
            let adjusted = WilcoxonSignedRank.holmAdjusted(rows.map { $0.qualifies ? $0.p : .nan })
            for i in rows.indices where rows[i].qualifies { rows[i].p = adjusted[i] }
        }
        for i in rows.indices where rows[i].qualifies {
            rows[i].verdict = verdict(rows[i], method: method, threshold: threshold)
        }
        return rows
    }

    static func verdict(_ row: WilcoxonComparisonRow, method: Method, threshold: Double) -> String {
        guard !row.p.isNaN else { return "" }
        switch method {
        case .innereye:
            if row.p < threshold / 2 { return "WORSE" }
            if row.p > 1 - threshold / 2 { return "BETTER" }
            return ""
        case .exact, .approx:
            guard row.p < threshold else { return "" }
            return row.secondIsHigher ? "BETTER" : "WORSE"
        }
    }

    /// All pairwise comparisons (or each run against the `against` runs), in InnerEye's order.
    public static func run(_ scores: ScoresByRun, against: [String]? = nil, method: Method = .innereye,
                           raw: Bool = false, threshold: Double = 0.05, holm: Bool = false) -> [WilcoxonPairResult] {
        var runs = scores.runs.keys.sorted(by: codePointOrder)
        let againstSet = against.flatMap { $0.isEmpty ? nil : Set($0) }
        if let againstSet {
            // Runs not in `against` first, then those in it, each group sorted (InnerEye sorts (in_against, run)).
            runs = runs.filter { !againstSet.contains($0) } + runs.filter { againstSet.contains($0) }
        }
        var results: [WilcoxonPairResult] = []
        while !runs.isEmpty {
            let run1 = runs.removeFirst()
            for run2 in runs {
                if let againstSet, !againstSet.contains(run2) { continue }
                let keyOrder = (scores.keyOrders[run1] ?? .string).combined(with: scores.keyOrders[run2] ?? .string)
                let rows = compare(scores.runs[run1, default: [:]], scores.runs[run2, default: [:]], method: method,
                                   raw: raw, threshold: threshold, holm: holm, keyOrder: keyOrder)
                results.append(WilcoxonPairResult(run1: run1, run2: run2, rows: rows))
            }
        }
        return results
    }

    /// InnerEye's text layout: for each pair with at least one qualifying structure, `Run 1:`/`Run 2:` lines,
    /// the header, one line per structure and a blank line. Returns the lines (no trailing newlines).
    public static func textLines(_ results: [WilcoxonPairResult]) -> [String] {
        var lines: [String] = []
        for result in results where result.rows.contains(where: { $0.qualifies }) {
            lines.append("Run 1: \(result.run1)")
            lines.append("Run 2: \(result.run2)")
            lines.append(header)
            let width = result.rows.map { $0.structure.unicodeScalars.count }.max() ?? 0
            for row in result.rows {
                var line = pad(row.structure, width) + " " + String(format: "%3d %7.3f %7.3f %4d %4d %7.3f %7.3f",
                    row.pairs, row.mean1, row.mean2, row.firstHigher, row.secondHigher, row.median1, row.median2)
                if row.qualifies {
                    line += " " + String(format: "%6.3f %5.3f", row.z, row.p) + " " + row.verdict
                }
                lines.append(line)
            }
            lines.append("")
        }
        return lines
    }

    /// The file text as InnerEye's may_write_lines_to_file writes it.
    public static func text(_ results: [WilcoxonPairResult]) -> String {
        let lines = textLines(results)
        return lines.isEmpty ? notEnoughData : lines.joined(separator: "\n") + "\n"
    }

    /// `Structure,N,Mean1,Mean2,N1>2,N2>1,Median1,Median2,W,z,p,verdict` for one pair; with several pairs each
    /// row is prefixed by `Run1,Run2` columns.
    public static func csv(_ results: [WilcoxonPairResult]) -> String {
        let several = results.count > 1
        var out = (several ? "Run1,Run2," : "") + "Structure,N,Mean1,Mean2,N1>2,N2>1,Median1,Median2,W,z,p,verdict\n"
        for result in results {
            for row in result.rows {
                var fields = [row.structure, String(row.pairs), csvNumber(row.mean1), csvNumber(row.mean2),
                              String(row.firstHigher), String(row.secondHigher), csvNumber(row.median1),
                              csvNumber(row.median2), csvNumber(row.statistic), csvNumber(row.z),
                              csvNumber(row.p), row.verdict]
                if several { fields = [result.run1, result.run2] + fields }
                out += fields.map(csvQuote).joined(separator: ",") + "\n"
            }
        }
        return out
    }

    public static func csv(_ result: WilcoxonPairResult) -> String { csv([result]) }

    /// `{'Name':<15s} {'N':^3s} {'Mean1':^7s} ...` of InnerEye, spelled out.
    public static let header = pad("Name", 15) + " " + center("N", 3) + " " + center("Mean1", 7) + " "
        + center("Mean2", 7) + " " + center("N1>2", 4) + " " + center("N2>1", 4) + " " + center("Med1", 7) + " "
        + center("Med2", 7) + " " + String(repeating: " ", count: 1) + "WilcZ" + " " + center("WilcP", 5) + " 2_vs_1"
}

/// Python's string order (code points), which InnerEye's `sorted` uses.
public func codePointOrder(_ a: String, _ b: String) -> Bool {
    a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
}

/// Left-justifies to `width` code points (Python's `{:<w}`).
func pad(_ s: String, _ width: Int) -> String {
    let n = s.unicodeScalars.count
    return n >= width ? s : s + String(repeating: " ", count: width - n)
}

/// Right-justifies to `width` code points (Python's `{:>w}`).
func padLeft(_ s: String, _ width: Int) -> String {
    let n = s.unicodeScalars.count
    return n >= width ? s : String(repeating: " ", count: width - n) + s
}

/// Python's `{:^w}`: extra padding goes to the right.
func center(_ s: String, _ width: Int) -> String {
    guard s.count < width else { return s }
    let total = width - s.count
    let left = total / 2
    return String(repeating: " ", count: left) + s + String(repeating: " ", count: total - left)
}

/// Numbers in our CSV outputs: shortest round-trip digits, empty for NaN.
func csvNumber(_ v: Double) -> String {
    if v.isNaN { return "" }
    if v.isInfinite { return v > 0 ? "inf" : "-inf" }
    return "\(v)"   // Swift's description is the shortest text that reads back to the same double
}

func csvQuote(_ s: String) -> String {
    if s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) {
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
    return s
}

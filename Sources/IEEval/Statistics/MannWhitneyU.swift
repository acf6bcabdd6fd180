import Foundation

/// The Mann-Whitney U test on two independent samples, as scipy.stats.mannwhitneyu(x, y,
/// alternative="two-sided") computes it.
public enum MannWhitneyU {
    public enum Method: String, Sendable, CaseIterable {
        /// Normal approximation with tie and continuity correction.
        case asymptotic
        /// Exact null distribution of U without ties, also when there are ties (as scipy's method='exact':
        /// the larger U, average ranks, truncated to an integer).
        case exact
    }

    public struct Result: Sendable, Equatable {
        /// U of the first sample: R1 - n1(n1+1)/2.
        public var u: Double
        public var p: Double
        public var method: Method
    }

    public static func test(_ x: [Double], _ y: [Double], method: Method = .asymptotic) -> Result {
        let n1 = x.count, n2 = y.count
        guard n1 > 0, n2 > 0 else { return Result(u: .nan, p: .nan, method: method) }
        let (ranks, ties) = Descriptive.averageRanks(x + y)
        let r1 = ranks[0..<n1].reduce(0, +)
        let u1 = r1 - Double(n1 * (n1 + 1)) / 2
        let u2 = Double(n1 * n2) - u1
        let u = max(u1, u2)
        if method == .exact && n1 * n2 <= exactPairLimit {
            let probabilities = uDistribution(n1, n2)
            // scipy takes sf(int(U)): with ties U can end in .5, and its exact p uses the no-ties distribution.
            let k = Int(u)
            let sf = k < probabilities.count ? probabilities[k...].reduce(0, +) : 0
            return Result(u: u1, p: min(1, max(0, 2 * sf)), method: .exact)
        }
        let nd1 = Double(n1), nd2 = Double(n2), n = nd1 + nd2
        let tieTerm = ties.reduce(0.0) { $0 + Double($1 * $1 * $1 - $1) }
        let s = (nd1 * nd2 / 12 * ((n + 1) - tieTerm / (n * (n - 1)))).squareRoot()
        let z = (u - nd1 * nd2 / 2 - 0.5) / s
        let p = z.isNaN ? Double.nan : min(1, max(0, 2 * Descriptive.normalSF(z)))
        return Result(u: u1, p: p, method: .asymptotic)
    }

    /// The exact null distribution of U for samples of m and n without ties: P(U = u) for u in 0...m*n.
    /// Probabilities rather than counts, so that no C(m+n, m) overflows: the largest of the m+n values is one
    /// of the i x's with probability i/(i+j) (it then exceeds all j y's: U grows by j), else one of the y's.
    public static func uDistribution(_ m: Int, _ n: Int) -> [Double] {
        var previousRow: [[Double]] = (0...n).map { _ in [1] }   // i = 0: only U = 0
        if m == 0 { return previousRow[n] }
        for i in 1...m {
            var row: [[Double]] = [[1]]   // j = 0
            row.reserveCapacity(n + 1)
            for j in 1...max(n, 1) where j <= n {
                let fromX = previousRow[j], fromY = row[j - 1]
                let px = Double(i) / Double(i + j), py = Double(j) / Double(i + j)
                var p = [Double](repeating: 0, count: i * j + 1)
                for (u, q) in fromX.enumerated() where u + j < p.count { p[u + j] += px * q }
                for (u, q) in fromY.enumerated() { p[u] += py * q }
                row.append(p)
            }
            previousRow = row
        }
        return previousRow[n]
    }

    /// Above this many pairs (n1 n2) the exact distribution costs (n1 n2)^2 / 4 steps: the normal approximation.
    public static let exactPairLimit = 40_000

    /// P(x < y) + 0.5 P(x = y) over all pairs (InnerEye's "ROC").
    public static func roc(_ x: [Double], _ y: [Double]) -> Double {
        guard !x.isEmpty, !y.isEmpty else { return 0.5 }
        var numerator = 0.0
        for a in x {
            for b in y {
                if a < b { numerator += 1 } else if a == b { numerator += 0.5 }
            }
        }
        return numerator / Double(x.count * y.count)
    }
}

/// One comparison line of InnerEye's mann_whitney_test.py (after putting the apparently larger sample in J).
public struct MannWhitneyComparisonRow: Sendable {
    public var structure: String
    /// 1-based indices of the groups compared (I has the apparently smaller values).
    public var i: Int
    public var j: Int
    public var countI: Int
    public var countJ: Int
    public var meanI: Double
    public var meanJ: Double
    public var stdI: Double
    public var stdJ: Double
    /// U of sample I.
    public var u: Double
    public var roc: Double
    public var pMannWhitney: Double
    public var pNormal: Double
}

public struct MannWhitneySplitResult: Sendable {
    public var split: String
    /// Group names (institutions) in index order 1, 2, ...
    public var groups: [String]
    public var rows: [MannWhitneyComparisonRow]
}

/// Unpaired comparisons of groups (institutions) per structure, as InnerEye's
/// CrossValidationMannWhitneyTestResults.txt (SPEC §8).
public enum MannWhitneyComparison {
    public static let minimumCount = 10

    /// Groups with fewer than `minimumCount` values are not compared; groups that never reach it for any
    /// structure are dropped from the index list (InnerEye's remove_rare_institutions).
    public static func compare(groups input: [String: [String: [Double]]], split: String,
                               method: MannWhitneyU.Method = .asymptotic,
                               minimumCount: Int = minimumCount) -> MannWhitneySplitResult {
        let groupNames = input.keys.sorted().filter { name in
            input[name]!.values.contains { $0.count >= minimumCount }
        }
        let lists = groupNames.map { input[$0]! }
        var keyCount: [String: Int] = [:]
        for values in lists { for key in values.keys { keyCount[key, default: 0] += 1 } }
        var rows: [MannWhitneyComparisonRow] = []
        for key in keyCount.keys.sorted() where keyCount[key]! > 1 {
            let samples = lists.map { values -> [Double] in
                let v = values[key] ?? []
                return v.count >= minimumCount ? v : []
            }
            let means = samples.map { $0.isEmpty ? 0 : Descriptive.mean($0) }
            let stds = samples.map { $0.count >= 2 ? Descriptive.sampleStandardDeviation($0) : 0 }
            for a in samples.indices {
                for b in samples.indices where b > a && !samples[a].isEmpty && !samples[b].isEmpty {
                    var i1 = a, i2 = b
                    var first = samples[a], second = samples[b]
                    // Old scipy refused samples whose values are all identical; InnerEye skipped those pairs.
                    if Set(first + second).count == 1 { continue }
                    let pMW = MannWhitneyU.test(first, second, method: method).p
                    var roc = MannWhitneyU.roc(first, second)
                    if roc > 0.5 {
                        swap(&i1, &i2)
                        swap(&first, &second)
                        roc = 1 - roc
                    }
                    let u = MannWhitneyU.test(first, second, method: method).u
                    rows.append(MannWhitneyComparisonRow(
                        structure: key, i: i1 + 1, j: i2 + 1, countI: first.count, countJ: second.count,
                        meanI: means[i1], meanJ: means[i2], stdI: stds[i1], stdJ: stds[i2], u: u, roc: roc,
                        pMannWhitney: pMW, pNormal: zTestP(means[i1], means[i2], stds[i1], stds[i2],
                                                           first.count, second.count)))
                }
            }
        }
        rows.sort { a, b in
            if a.pMannWhitney != b.pMannWhitney { return a.pMannWhitney < b.pMannWhitney }
            if a.pNormal != b.pNormal { return a.pNormal < b.pNormal }
            return line(a) < line(b)
        }
        return MannWhitneySplitResult(split: split, groups: groupNames, rows: rows)
    }

    /// InnerEye's z-test p: 0.5 for equal means, 0 when both spreads are zero, else Phi(-|z|).
    static func zTestP(_ mean1: Double, _ mean2: Double, _ std1: Double, _ std2: Double, _ n1: Int, _ n2: Int) -> Double {
        if mean1 == mean2 { return 0.5 }
        if std1 == 0 && std2 == 0 { return 0 }
        let se = (std1 * std1 / Double(n1) + std2 * std2 / Double(n2)).squareRoot()
        return Descriptive.normalCDF(-abs(mean2 - mean1) / se)
    }

    /// Per split of `file` (rows of mode `mode`), values grouped by `groupColumn` and structure.
    public static func run(_ file: MetricsFile, by groupColumn: (MetricsRecord) -> String?, mode: String = "test",
                           method: MannWhitneyU.Method = .asymptotic, defaultSplit: String = "") -> [MannWhitneySplitResult] {
        var data: [String: [String: [String: [Double]]]] = [:]
        for r in file.records {
            if let m = r.mode, m.lowercased() != mode.lowercased() { continue }
            let split = r.split ?? defaultSplit
            let group = groupColumn(r) ?? ""
            data[split, default: [:]][group, default: [:]][r.structure, default: []].append(r.dice)
        }
        return data.keys.sorted().map { compare(groups: data[$0]!, split: $0, method: method) }
    }

    public static let header = "\(center("ROC", 6)) \(padLeft("Mann-Wht p", 12)) \(padLeft("Normal p", 12)) | "
        + "I \(padLeft("N(I)", 5)) \(padLeft("Mean(I)", 11)) \(padLeft("Std(I)", 11)) | "
        + "I \(padLeft("N(J)", 5)) \(padLeft("Mean(J)", 11)) \(padLeft("Std(J)", 11)) | Statistic"

    public static func line(_ r: MannWhitneyComparisonRow) -> String {
        String(format: "%6.4f ", r.roc) + pythonExponent(r.pMannWhitney, width: 12, precision: 4) + " "
            + pythonExponent(r.pNormal, width: 12, precision: 4)
            + String(format: " | %d %5d %11.4f %11.4f | %d %5d %11.4f %11.4f | ",
                     r.i, r.countI, r.meanI, r.stdI, r.j, r.countJ, r.meanJ, r.stdJ) + r.structure
    }

    /// InnerEye's text: per split with comparisons, `For split S:`, the numbered groups, a blank line,
    /// the header and rows, a blank line.
    public static func textLines(_ results: [MannWhitneySplitResult]) -> [String] {
        var lines: [String] = []
        for result in results where !result.rows.isEmpty {
            lines.append("For split \(result.split):")
            for (index, name) in result.groups.enumerated() { lines.append("\(index + 1): \(name)") }
            lines.append("")
            lines.append(header)
            lines.append(contentsOf: result.rows.map(line))
            lines.append("")
        }
        return lines
    }

    public static func text(_ results: [MannWhitneySplitResult]) -> String {
        let lines = textLines(results)
        return lines.isEmpty ? WilcoxonComparison.notEnoughData : lines.joined(separator: "\n") + "\n"
    }

    public static func csv(_ results: [MannWhitneySplitResult]) -> String {
        var out = "Structure,I,J,N_I,N_J,Mean_I,Mean_J,Std_I,Std_J,U,ROC,p_mannwhitney,p_normal\n"
        for result in results {
            for r in result.rows {
                let fields = [r.structure, result.groups[r.i - 1], result.groups[r.j - 1], String(r.countI),
                              String(r.countJ), csvNumber(r.meanI), csvNumber(r.meanJ), csvNumber(r.stdI),
                              csvNumber(r.stdJ), csvNumber(r.u), csvNumber(r.roc), csvNumber(r.pMannWhitney),
                              csvNumber(r.pNormal)]
                out += fields.map(csvQuote).joined(separator: ",") + "\n"
            }
        }
        return out
    }
}

/// Python's `{:w.pe}`: C's %e already writes at least two exponent digits, as Python does.
func pythonExponent(_ v: Double, width: Int, precision: Int) -> String {
    if v.isNaN { return padLeft("nan", width) }
    if v.isInfinite { return padLeft(v > 0 ? "inf" : "-inf", width) }
    return String(format: "%\(width).\(precision)e", v)
}

import Foundation

/// Wilcoxon signed-rank tests on paired scores.
///
/// Two flavours: InnerEye's (`InnerEyeResult`: z from the signed-rank sum W with average ranks, no tie
/// correction, p = Phi(z / f) one-sided with a deflation factor f), and the standard two-sided test as
/// scipy.stats.wilcoxon computes it (`TwoSidedResult`).
public enum WilcoxonSignedRank {
    /// InnerEye's deflation factors (wilcoxon_signed_rank_test.py): scores of skin/external are highly
    /// correlated between models, so their z is divided by more.
    public static func adjustmentFactor(structure: String) -> Double {
        switch structure.lowercased() {
        case "skin", "external": return 2.0
        default: return 1.25
        }
    }

    public struct InnerEyeResult: Sendable, Equatable {
        /// Non-zero differences used.
        public var n: Int
        /// Sum of signed average ranks of d = B - A.
        public var w: Double
        public var z: Double
    }

    /// InnerEye's statistic on d = second - first: zero differences dropped, |d| ranked with average ranks,
    /// W = sum of sign * rank, z = W / sqrt(n(n+1)(2n+1)/6). With no non-zero difference z = 0.
    public static func innerEyeStatistic(first: [Double], second: [Double]) -> InnerEyeResult {
        precondition(first.count == second.count, "paired samples must have the same length")
        let differences = zip(first, second).compactMap { a, b -> Double? in a != b ? b - a : nil }
        let n = differences.count
        if n == 0 { return InnerEyeResult(n: 0, w: 0, z: 0) }
        let (ranks, _) = Descriptive.averageRanks(differences.map { abs($0) })
        var w = 0.0
        for (d, r) in zip(differences, ranks) { w += d > 0 ? r : -r }
        let nd = Double(n)
        let z = w / (nd * (nd + 1) * (2 * nd + 1) / 6).squareRoot()
        return InnerEyeResult(n: n, w: w, z: z)
    }

    public enum Method: String, Sendable, CaseIterable {
        /// Exact null distribution when n <= 50 and there are no ties or zero differences, else `approx`.
        case exact
        /// Normal approximation with tie correction, no continuity correction (scipy's defaults).
        case approx
    }

    public struct TwoSidedResult: Sendable, Equatable {
        /// Non-zero differences used.
        public var n: Int
        /// min(R+, R-), scipy's two-sided statistic.
        public var statistic: Double
        public var rankSumPositive: Double
        /// (R+ - n(n+1)/4) / sd, NaN when the exact distribution was used.
        public var z: Double
        public var p: Double
        /// The method that was used (exact falls back to approx with ties or zeros or n > 50).
        public var method: Method
    }

    /// Two-sided test of d = second - first as scipy.stats.wilcoxon(first, second) with zero_method "wilcox",
    /// correction False.
    public static func twoSided(first: [Double], second: [Double], method: Method = .exact) -> TwoSidedResult {
        precondition(first.count == second.count, "paired samples must have the same length")
        let all = zip(first, second).map { $1 - $0 }
        let zeroCount = all.filter { $0 == 0 }.count
        let d = all.filter { $0 != 0 }
        let n = d.count
        if n == 0 {
            return TwoSidedResult(n: 0, statistic: .nan, rankSumPositive: .nan, z: .nan, p: .nan, method: method)
        }
        let (ranks, tieSizes) = Descriptive.averageRanks(d.map { abs($0) })
        var rPlus = 0.0, rMinus = 0.0
        for (v, r) in zip(d, ranks) { if v > 0 { rPlus += r } else { rMinus += r } }
        let hasTies = tieSizes.contains { $0 > 1 }
        let useExact = method == .exact && all.count <= 50 && !hasTies && zeroCount == 0
        let statistic = min(rPlus, rMinus)
        if useExact {
            let distribution = nullDistribution(n: n)
            let total = distribution.reduce(0, +)
            // P(T <= k) and P(T >= k) for integral k.
            let k = Int(rPlus.rounded())
            let cdf = distribution[0...k].reduce(0, +) / total
            let sf = distribution[k...].reduce(0, +) / total
            let p = min(1, 2 * min(cdf, sf))
            return TwoSidedResult(n: n, statistic: statistic, rankSumPositive: rPlus, z: .nan, p: p, method: .exact)
        }
        let nd = Double(n)
        let mean = nd * (nd + 1) / 4
        let tieCorrection = tieSizes.reduce(0.0) { $0 + Double($1 * $1 * $1 - $1) }
        let sd = ((nd * (nd + 1) * (2 * nd + 1) - tieCorrection / 2) / 24).squareRoot()
        let z = (rPlus - mean) / sd
        let p = min(1, 2 * Descriptive.normalSF(abs(z)))
        return TwoSidedResult(n: n, statistic: statistic, rankSumPositive: rPlus, z: z, p: p, method: .approx)
    }

    /// Counts of subsets of {1..n} by their sum (the exact null distribution of R+ times 2^n).
    public static func nullDistribution(n: Int) -> [Double] {
        let maxSum = n * (n + 1) / 2
        var counts = [Double](repeating: 0, count: maxSum + 1)
        counts[0] = 1
        if n == 0 { return counts }
        var reached = 0
        for rank in 1...n {
            reached += rank
            var s = reached
            while s >= rank {
                counts[s] += counts[s - rank]
                s -= 1
            }
        }
        return counts
    }

    /// Holm's step-down adjustment of p-values (NaNs left out and kept as NaN).
    public static func holmAdjusted(_ pValues: [Double]) -> [Double] {
        let valid = pValues.indices.filter { !pValues[$0].isNaN }
        let m = valid.count
        let order = valid.sorted { pValues[$0] < pValues[$1] }
        var adjusted = pValues
        var running = 0.0
        for (rank, index) in order.enumerated() {
            let value = min(1, Double(m - rank) * pValues[index])
            running = max(running, value)
            adjusted[index] = running
        }
        return adjusted
    }
}

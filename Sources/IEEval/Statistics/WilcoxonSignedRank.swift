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
        /// scipy.stats.wilcoxon's method='auto' (scipy >= 1.13): the exact null distribution when n <= 50 and
        /// there are no ties or zero differences; else, for n <= 13 (zeros counted), the exact permutation test
        /// over all 2^n sign flips; else `approx`.
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
        /// The method that was used (exact falls back to approx with ties or zeros and n > 13, or n > 50).
        public var method: Method
    }

    /// scipy's method='auto' runs a permutation test up to this many pairs (zeros included) when there are ties
    /// or zeros: 2^13 sign flips fit its default n_resamples 9999, so every flip is enumerated (an exact test).
    public static let permutationLimit = 13

    /// Two-sided test of d = second - first as scipy.stats.wilcoxon(first, second) with zero_method "wilcox",
    /// correction False; `.exact` follows method='auto' of scipy >= 1.13 (SPEC §8).
    public static func twoSided(first: [Double], second: [Double], method: Method = .exact) -> TwoSidedResult {
        precondition(first.count == second.count, "paired samples must have the same length")
        let all = zip(first, second).map { $1 - $0 }
        let zeroCount = all.filter { $0 == 0 }.count
        let d = all.filter { $0 != 0 }
        let n = d.count
        // scipy's permutation_test refuses a single observation (ValueError): no p for one zero difference.
        let permutation = method == .exact && (2...permutationLimit).contains(all.count)
        if n == 0 {
            // Only zeros: every sign flip gives R+ = 0, so scipy's permutation test has p = 1 (the normal
            // approximation divides 0 by 0).
            return permutation && zeroCount > 0
                ? TwoSidedResult(n: 0, statistic: 0, rankSumPositive: 0, z: .nan, p: 1, method: .exact)
                : TwoSidedResult(n: 0, statistic: .nan, rankSumPositive: .nan, z: .nan, p: .nan, method: method)
        }
        let (ranks, tieSizes) = Descriptive.averageRanks(d.map { abs($0) })
        var rPlus = 0.0, rMinus = 0.0
        for (v, r) in zip(d, ranks) { if v > 0 { rPlus += r } else { rMinus += r } }
        let hasTies = tieSizes.contains { $0 > 1 }
        let useExact = method == .exact && all.count <= 50 && !hasTies && zeroCount == 0
        let statistic = min(rPlus, rMinus)
        if !useExact && permutation {
            let p = permutationPValue(ranks: ranks, rankSumPositive: rPlus)
            return TwoSidedResult(n: n, statistic: statistic, rankSumPositive: rPlus, z: .nan, p: p, method: .exact)
        }
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

    /// scipy.stats.permutation_test's two-sided p for R+ (permutation_type 'samples' on the one sample d, which
    /// flips signs), all 2^n flips enumerated: 2 min(#{R+* <= R+ + g}, #{R+* >= R+ - g}) / 2^n, clipped to 1,
    /// with scipy's tolerance g = 100 eps |R+|. A zero difference stays zero under a flip and is dropped, so it
    /// only repeats every outcome twice: counting over the non-zero ranks gives the same ratio, exactly (powers
    /// of two). Average ranks are multiples of 1/2, so every R+* is exact whatever the summation order.
    static func permutationPValue(ranks: [Double], rankSumPositive: Double) -> Double {
        let n = ranks.count
        precondition(n <= 30, "the permutation test is for small samples")
        let tolerance = abs(Double.ulpOfOne * 100 * rankSumPositive)
        var less = 0, greater = 0
        for mask in 0..<(1 << n) {
            var sum = 0.0
            for i in 0..<n where mask & (1 << i) != 0 { sum += ranks[i] }
            if sum <= rankSumPositive + tolerance { less += 1 }
            if sum >= rankSumPositive - tolerance { greater += 1 }
        }
        return min(1, 2 * Double(min(less, greater)) / Double(1 << n))
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

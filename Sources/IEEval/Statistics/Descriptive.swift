import Foundation

/// Small descriptive statistics with the conventions of numpy/pandas/Python's `statistics` module.
public enum Descriptive {
    /// numpy's float64 sum (`np.add.reduce` on a contiguous array): pairwise, below 8 values a plain loop,
    /// up to 128 values eight interleaved partial sums, above that the two halves (cut at a multiple of 8)
    /// summed recursively. The same additions in the same order, so the same bits as numpy and pandas.
    public static func sum(_ values: [Double]) -> Double {
        values.withUnsafeBufferPointer { pairwiseSum($0) }
    }

    private static func pairwiseSum(_ a: UnsafeBufferPointer<Double>) -> Double {
        let n = a.count
        if n < 8 {
            var result = 0.0
            for v in a { result += v }
            return result
        }
        if n <= 128 {
            var r = (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7])
            var i = 8
            while i < n - n % 8 {
                r.0 += a[i]; r.1 += a[i + 1]; r.2 += a[i + 2]; r.3 += a[i + 3]
                r.4 += a[i + 4]; r.5 += a[i + 5]; r.6 += a[i + 6]; r.7 += a[i + 7]
                i += 8
            }
            var result = ((r.0 + r.1) + (r.2 + r.3)) + ((r.4 + r.5) + (r.6 + r.7))
            while i < n { result += a[i]; i += 1 }
            return result
        }
        var half = n / 2
        half -= half % 8
        return pairwiseSum(UnsafeBufferPointer(rebasing: a[0..<half])) + pairwiseSum(UnsafeBufferPointer(rebasing: a[half..<n]))
    }

    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? .nan : sum(values) / Double(values.count)
    }

    /// Sample standard deviation (ddof 1); NaN for fewer than two values, as pandas.
    public static func sampleStandardDeviation(_ values: [Double]) -> Double {
        guard values.count >= 2 else { return .nan }
        let m = mean(values)
        if m.isInfinite || m.isNaN { return .nan }
        return (sum(values.map { (m - $0) * (m - $0) }) / Double(values.count - 1)).squareRoot()
    }

    /// pandas' `Series.mean()` (skipna): NaN entries count as 0 in numpy's sum over the whole array, the sum
    /// divided by the number of non-NaN entries; NaN when there are none.
    public static func skipNaNMean(_ values: [Double]) -> Double {
        let count = values.reduce(0) { $1.isNaN ? $0 : $0 + 1 }
        return count == 0 ? .nan : sum(values.map { $0.isNaN ? 0 : $0 }) / Double(count)
    }

    /// pandas' `Series.std()` (skipna, ddof 1), as its nanvar computes it: the mean as `skipNaNMean`, the squared
    /// deviations (0 at NaN entries) summed by numpy over the whole array, divided by count - 1; NaN for fewer
    /// than two values. An infinite value makes it NaN (inf - inf), as in pandas.
    public static func skipNaNSampleStandardDeviation(_ values: [Double]) -> Double {
        let count = values.reduce(0) { $1.isNaN ? $0 : $0 + 1 }
        guard count >= 2 else { return .nan }
        let m = skipNaNMean(values)
        return (sum(values.map { $0.isNaN ? 0 : (m - $0) * (m - $0) }) / Double(count - 1)).squareRoot()
    }

    /// numpy's `np.median`: the middle value, or for an even count the mean of the two middle values, (a + b) / 2
    /// as np.mean computes it (not the quantile's lerp `b - (b - a) * 0.5`, which can differ in the last bit and
    /// flip a half-way `%.3f`); NaN when empty or when any value is NaN. pandas' 50% is `quantile(_, 0.5)`.
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty, !values.contains(where: \.isNaN) else { return .nan }
        let sorted = values.sorted()
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }

    /// Quantile with linear interpolation between order statistics (numpy's and pandas' default), computed as
    /// numpy's `_lerp` does: below the midpoint `a + (b - a) t`, from it on `b - (b - a)(1 - t)`. With infinite
    /// values this gives numpy's answers, NaN included (`[1, inf]` has 25% inf, 50% NaN).
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let position = Double(sorted.count - 1) * q
        let lower = min(max(Int(position.rounded(.down)), 0), sorted.count - 1)
        let upper = min(lower + 1, sorted.count - 1)
        let t = position - position.rounded(.down)
        let (a, b) = (sorted[lower], sorted[upper])
        let difference = b - a
        return t >= 0.5 ? b - difference * (1 - t) : a + difference * t
    }

    /// Standard normal CDF.
    public static func normalCDF(_ x: Double) -> Double { 0.5 * erfc(-x / 2.0.squareRoot()) }

    /// Standard normal survival function, accurate in the far upper tail.
    public static func normalSF(_ x: Double) -> Double { 0.5 * erfc(x / 2.0.squareRoot()) }

    /// Average ranks (1-based) of `values`, ties sharing the mean of their positions, plus the tie-group sizes.
    public static func averageRanks(_ values: [Double]) -> (ranks: [Double], tieSizes: [Int]) {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var ranks = [Double](repeating: 0, count: values.count)
        var ties: [Int] = []
        var i = 0
        while i < order.count {
            var j = i + 1
            while j < order.count && values[order[j]] == values[order[i]] { j += 1 }
            let rank = Double(i + j + 1) / 2.0   // mean of positions i+1 ... j
            for k in i..<j { ranks[order[k]] = rank }
            ties.append(j - i)
            i = j
        }
        return (ranks, ties)
    }
}

import Foundation

/// Small descriptive statistics with the conventions of numpy/pandas/Python's `statistics` module.
public enum Descriptive {
    public static func mean(_ values: [Double]) -> Double {
        values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
    }

    /// Sample standard deviation (ddof 1); NaN for fewer than two values, as pandas.
    public static func sampleStandardDeviation(_ values: [Double]) -> Double {
        guard values.count >= 2 else { return .nan }
        let m = mean(values)
        if m.isInfinite || m.isNaN { return .nan }
        let squares = values.reduce(0) { $0 + ($1 - m) * ($1 - m) }
        return (squares / Double(values.count - 1)).squareRoot()
    }

    public static func median(_ values: [Double]) -> Double { quantile(values, 0.5) }

    /// Quantile with linear interpolation between order statistics (numpy's and pandas' default).
    public static func quantile(_ values: [Double], _ q: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let position = q * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let fraction = position - Double(lower)
        if fraction == 0 || sorted[lower] == sorted[upper] { return sorted[lower] }
        return sorted[lower] + (sorted[upper] - sorted[lower]) * fraction
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

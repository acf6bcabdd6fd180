import Foundation

/// ResultsByMode.csv and ResultsByModeAndStructure.csv (InnerEye's create_results_breakdown): mean, median,
/// min and max of Dice per mode, and per mode and structure, `%.3f`. pandas' groupby().describe() keeps each
/// group's rows in file order, and its mean sums the whole group with NaN as 0 (nanmean), which decides a
/// half-way `%.3f`: so the mean is `Descriptive.skipNaNMean` over the group in file order.
public enum ResultsBreakdown {
    public static func csv(_ records: [MetricsRecord], byStructure: Bool) -> String {
        var groups: [[String]: [Double]] = [:]
        for r in records {
            let key = byStructure ? [r.mode ?? "", r.structure] : [r.mode ?? ""]
            groups[key, default: []].append(r.dice)
        }
        var out = (byStructure ? "mode,Structure," : "mode,") + "mean,50%,min,max\n"
        let keys = groups.keys.sorted { a, b in
            for i in a.indices where a[i] != b[i] { return a[i].unicodeScalars.lexicographicallyPrecedes(b[i].unicodeScalars) }
            return false
        }
        for key in keys {
            let all = groups[key, default: []]
            let values = all.filter { !$0.isNaN }
            let stats = [Descriptive.skipNaNMean(all), Descriptive.quantile(values, 0.5), values.min() ?? .nan, values.max() ?? .nan]
            out += (key.map(csvQuote) + stats.map(formatMetric3)).joined(separator: ",") + "\n"
        }
        return out
    }
}

import Foundation

/// metrics_aggregates.csv of SPEC §7: per structure (sorted), count of non-NaN Dice values and mean, sample
/// std, min, max of Dice, HausdorffDistance_mm and MeanDistance_mm, `%.3f` (inf as `inf`, NaN empty). As InnerEye,
/// the statistics are computed from the values rounded to 3 decimals (what metrics.csv holds).
public enum MetricsAggregates {
    public static let header = ["Structure", "count",
                                "DiceNumeric_mean", "DiceNumeric_std", "DiceNumeric_min", "DiceNumeric_max",
                                "HausdorffDistance_mm_mean", "HausdorffDistance_mm_std",
                                "HausdorffDistance_mm_min", "HausdorffDistance_mm_max",
                                "MeanDistance_mm_mean", "MeanDistance_mm_std",
                                "MeanDistance_mm_min", "MeanDistance_mm_max"]

    public struct Summary: Sendable, Equatable {
        public var mean: Double
        public var std: Double
        public var min: Double
        public var max: Double

        /// pandas' describe() semantics on the group's values in InnerEye's row order (see `rows`): mean and std
        /// as pandas' nanmean/nanvar, which sum the whole column with NaN as 0 (numpy's pairwise sum, so the
        /// NaN positions and the order change the last bits, and with them a half-way `%.3f`); std NaN below two
        /// values or with infinite values. The values are rounded to 3 decimals first (InnerEye's format_metric).
        public init(_ values: [Double]) {
            let rounded = values.map(MetricsCSVWriter.rounded)
            let v = rounded.filter { !$0.isNaN }
            mean = Descriptive.skipNaNMean(rounded)
            std = Descriptive.skipNaNSampleStandardDeviation(rounded)
            min = v.min() ?? .nan
            max = v.max() ?? .nan
        }
    }

    public struct Row: Sendable, Equatable {
        public var structure: String
        public var count: Int
        public var dice: Summary
        public var hausdorffDistance: Summary
        public var meanDistance: Summary
    }

    /// One row per structure. Each group's values are taken in the order of InnerEye's data frame
    /// (MetricsPerPatientWriter.to_data_frame sorts by Patient, a str column, then Structure; pandas' multi-column
    /// sort is stable, so equal keys keep the file order), which pandas' sums follow.
    public static func rows(_ records: [MetricsRecord]) -> [Row] {
        let order = records.indices.sorted { i, j in
            let (a, b) = (records[i], records[j])
            // Code points both ways, not Swift's ==, which equates canonically equivalent strings Python tells apart.
            if codePointOrder(a.patient, b.patient) { return true }
            if codePointOrder(b.patient, a.patient) { return false }
            if codePointOrder(a.structure, b.structure) { return true }
            if codePointOrder(b.structure, a.structure) { return false }
            return i < j
        }
        var byStructure: [String: [MetricsRecord]] = [:]
        for i in order { byStructure[records[i].structure, default: []].append(records[i]) }
        return byStructure.keys.sorted(by: codePointOrder).map { s in
            let rs = byStructure[s, default: []]
            return Row(structure: s, count: rs.filter { !$0.dice.isNaN }.count,
                       dice: Summary(rs.map { $0.dice }),
                       hausdorffDistance: Summary(rs.map { $0.hausdorffDistance }),
                       meanDistance: Summary(rs.map { $0.meanDistance }))
        }
    }

    /// With `totalPatients` (a run with allow_incomplete_labels), InnerEye's `total_patients` column follows
    /// `count`: the number of distinct patients in the file (every structure's row has the same), an integer, so
    /// that a count below it shows how many patients lacked that structure's ground truth.
    public static func csv(_ records: [MetricsRecord], totalPatients: Bool = false) -> String {
        var columns = header
        if totalPatients { columns.insert("total_patients", at: 2) }
        var out = columns.joined(separator: ",") + "\n"
        let patients = totalPatients ? Set(records.map { $0.patient.unicodeScalars.map(\.value) }).count : 0
        for row in rows(records) {
            var fields = [csvQuote(row.structure), String(format: "%.3f", Double(row.count))]
            if totalPatients { fields.append(String(patients)) }
            for s in [row.dice, row.hausdorffDistance, row.meanDistance] {
                fields += [s.mean, s.std, s.min, s.max].map(formatMetric3)
            }
            out += fields.joined(separator: ",") + "\n"
        }
        return out
    }
}

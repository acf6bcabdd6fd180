import Foundation

/// `<Mode>_outliers.txt` of SPEC §8, laid out as InnerEye's save_outliers wrote it (a pandas
/// `groupby(...).describe()[metric][count, mean, min, max]` table per metric, as printed by pandas).
public enum OutlierReport {
    public enum Metric: String, Sendable, CaseIterable {
        case dice = "Dice"
        case hausdorffDistance = "HausdorffDistance_mm"

        func value(_ r: MetricsRecord) -> Double { self == .dice ? r.dice : r.hausdorffDistance }
    }

    public struct Group: Sendable, Equatable {
        public var keys: [String]
        public var count: Double
        public var mean: Double
        public var min: Double
        public var max: Double
    }

    /// Rows of `records` outside mean -/+ range * sd (sample sd over all rows, NaNs skipped): Dice below
    /// (low outliers), HausdorffDistance_mm above (high outliers).
    public static func outliers(_ records: [MetricsRecord], metric: Metric, range: Double) -> [MetricsRecord] {
        let values = records.map(metric.value).filter { !$0.isNaN }
        let mean = Descriptive.mean(values)
        let sd = Descriptive.sampleStandardDeviation(values)
        switch metric {
        case .dice:
            let limit = mean - range * sd
            return records.filter { metric.value($0) < limit }
        case .hausdorffDistance:
            let limit = mean + range * sd
            return records.filter { metric.value($0) > limit }
        }
    }

    /// Groups outlier rows by (Patient, Structure[, seriesId, institutionId]) with count, mean, min, max of the
    /// metric, sorted as pandas does: keys ascending (Patient numerically when all are integers), then a stable
    /// descending sort on (count, mean, min, max), NaN last.
    public static func groups(_ rows: [MetricsRecord], metric: Metric, withSeriesAndInstitution: Bool) -> [Group] {
        func keys(_ r: MetricsRecord) -> [String]? {
            if withSeriesAndInstitution {
                // pandas' groupby drops rows whose key is missing.
                guard let s = r.seriesId, !s.isEmpty, let i = r.institutionId, !i.isEmpty else { return nil }
                return [r.patient, r.structure, s, i]
            }
            return [r.patient, r.structure]
        }
        var valuesByKey: [[String]: [Double]] = [:]
        for r in rows {
            guard let k = keys(r) else { continue }
            valuesByKey[k, default: []].append(metric.value(r))
        }
        let numericPatients = valuesByKey.keys.allSatisfy { Int($0[0]) != nil }
        let sortedKeys = valuesByKey.keys.sorted { a, b in
            for level in a.indices where a[level] != b[level] {
                if level == 0 && numericPatients { return Int(a[0])! < Int(b[0])! }
                return a[level].unicodeScalars.lexicographicallyPrecedes(b[level].unicodeScalars)
            }
            return false
        }
        let unsorted: [Group] = sortedKeys.map { k in
            let values = valuesByKey[k]!.filter { !$0.isNaN }
            return Group(keys: k, count: Double(values.count),
                         mean: values.isEmpty ? .nan : Descriptive.mean(values),
                         min: values.min() ?? .nan, max: values.max() ?? .nan)
        }
        // Stable sort: compare (count, mean, min, max) descending with NaN last; ties keep key order.
        func descendingNaNLast(_ x: Double, _ y: Double) -> Bool? {
            if x.isNaN && y.isNaN { return nil }
            if x.isNaN { return false }
            if y.isNaN { return true }
            if x == y { return nil }
            return x > y
        }
        let indexed = Array(unsorted.enumerated())
        return indexed.sorted { a, b in
            for (x, y) in [(a.element.count, b.element.count), (a.element.mean, b.element.mean),
                           (a.element.min, b.element.min), (a.element.max, b.element.max)] {
                if let before = descendingNaNLast(x, y) { return before }
            }
            return a.offset < b.offset
        }.map { $0.element }
    }

    /// InnerEye's portal query naming the outliers' institutions and series (first-appearance order).
    public static func portalQuery(_ rows: [MetricsRecord]) -> String {
        var institutions: [String] = [], series: [String] = []
        var seenI = Set<String>(), seenS = Set<String>()
        for r in rows {
            if let i = r.institutionId, seenI.insert(i).inserted { institutions.append(i) }
            if let s = r.seriesId, seenS.insert(s).inserted { series.append(s) }
        }
        let institutionPart = institutions.map { "r.InstitutionId = \"\($0)\"" }.joined(separator: " OR ")
        let seriesPart = series.map { "STARTSWITH(r.VersionedDicomImageSeries.Latest.Series.InstanceUID,\"\($0)\")" }
            .joined(separator: " OR ")
        return "SELECT * FROM ROOT as r WHERE true AND (\(institutionPart)) AND (\(seriesPart))"
    }

    /// The whole `<Mode>_outliers.txt` for the rows of one mode. Metrics: Dice, and HausdorffDistance_mm when
    /// the table has that column. With seriesId and institutionId columns the tables are keyed by them too and
    /// followed by the portal query, as InnerEye; without them (a plain metrics.csv) by Patient and Structure.
    public static func text(_ records: [MetricsRecord], hasHausdorffDistance: Bool, hasSeriesAndInstitution: Bool,
                            range: Double = 3) -> String {
        var out = ""
        let metrics: [Metric] = hasHausdorffDistance ? [.dice, .hausdorffDistance] : [.dice]
        for metric in metrics {
            let rows = outliers(records, metric: metric, range: range)
            out += "\n\n=== METRIC: \(metric.rawValue) ===\n\n"
            if rows.isEmpty {
                out += "No outliers found"
                continue
            }
            let grouped = groups(rows, metric: metric, withSeriesAndInstitution: hasSeriesAndInstitution)
            let levelNames = hasSeriesAndInstitution ? ["Patient", "Structure", "seriesId", "institutionId"]
                                                     : ["Patient", "Structure"]
            out += PandasText.table(indexNames: levelNames, index: grouped.map { $0.keys },
                                    columns: ["count", "mean", "min", "max"],
                                    values: [grouped.map { $0.count }, grouped.map { $0.mean },
                                             grouped.map { $0.min }, grouped.map { $0.max }])
            if hasSeriesAndInstitution {
                out += "\n\n" + portalQuery(rows)
            }
        }
        return out + "\n"
    }
}

/// Prints a float table with a MultiIndex the way pandas' `DataFrame.__str__` did in the pandas that wrote
/// InnerEye's reference outlier files (checked against Tests/ML/test_data/Val_outliers*.txt).
enum PandasText {
    /// pandas' float column formatting with display.precision 6: `% .6f` for every value, trailing zeros
    /// trimmed jointly (keeping one decimal), scientific notation for tiny or long huge values, NaN as `NaN`,
    /// then right-justified to a common width.
    static func formatFloatColumn(_ values: [Double]) -> [String] {
        let digits = 6
        let finiteOrInf = values.filter { !$0.isNaN }
        var strings = values.map { $0.isNaN ? "NaN" : formatted($0, "% .\(digits)f") }
        let maxLength = strings.map { $0.count }.max() ?? 0
        let hasLarge = finiteOrInf.contains { abs($0) > 1e6 }
        let hasSmall = finiteOrInf.contains { abs($0) < pow(10, -Double(digits)) && $0 != 0 }
        if hasSmall || (maxLength > digits + 6 && hasLarge) {
            strings = values.map { $0.isNaN ? "NaN" : formatted($0, "% .\(digits)e") }
        } else {
            strings = trimZeros(strings)
        }
        let width = strings.map { $0.count }.max() ?? 0
        return strings.map { padLeft($0, width) }
    }

    static func formatted(_ v: Double, _ format: String) -> String {
        if v.isInfinite { return v > 0 ? " inf" : "-inf" }
        return String(format: format, v)
    }

    static func isDecimalNumber(_ s: String) -> Bool {
        var t = Substring(s.drop { $0 == " " })
        if t.first == "+" || t.first == "-" { t = t.dropFirst() }
        guard let dot = t.firstIndex(of: ".") else { return false }
        let whole = t[..<dot], fraction = t[t.index(after: dot)...]
        return !whole.isEmpty && whole.allSatisfy(\.isNumber) && fraction.allSatisfy(\.isNumber)
    }

    static func trimZeros(_ input: [String]) -> [String] {
        var strings = input
        while true {
            let numbers = strings.filter(isDecimalNumber)
            guard !numbers.isEmpty, numbers.allSatisfy({ $0.hasSuffix("0") }) else { break }
            strings = strings.map { isDecimalNumber($0) ? String($0.dropLast()) : $0 }
        }
        return strings.map { isDecimalNumber($0) && $0.hasSuffix(".") ? $0 + "0" : $0 }
    }

    static func table(indexNames: [String], index: [[String]], columns: [String], values: [[Double]]) -> String {
        // Index levels: left-justified, repeated leading keys blanked (pandas' sparsify).
        let levelWidths = indexNames.indices.map { level in
            max(indexNames[level].count, index.map { $0[level].count }.max() ?? 0)
        }
        var indexCells: [[String]] = []
        for (row, keys) in index.enumerated() {
            var cells: [String] = []
            for level in keys.indices {
                let sameAsAbove = row > 0 && Array(index[row - 1][0...level]) == Array(keys[0...level])
                cells.append(pad(sameAsAbove ? "" : keys[level], levelWidths[level]))
            }
            indexCells.append(cells)
        }
        let indexWidth = levelWidths.reduce(0, +) + levelWidths.count - 1
        // Numeric columns: the header gets a leading space; the header is right-justified and the (already
        // equal-width) values are left-justified within the column.
        var columnTexts: [(header: String, values: [String])] = []
        for (c, name) in columns.enumerated() {
            let formattedValues = formatFloatColumn(values[c])
            let header = " " + name
            let width = max(header.count, formattedValues.first?.count ?? 0)
            columnTexts.append((padLeft(header, width), formattedValues.map { pad($0, width) }))
        }
        var lines: [String] = []
        lines.append(String(repeating: " ", count: indexWidth) + " " + columnTexts.map { $0.header }.joined(separator: " "))
        let namesLine = zip(indexNames, levelWidths).map { pad($0, $1) }.joined(separator: " ")
        lines.append(String(namesLine.reversed().drop { $0 == " " }.reversed()))
        for row in index.indices {
            lines.append(indexCells[row].joined(separator: " ") + " "
                         + columnTexts.map { $0.values[row] }.joined(separator: " "))
        }
        return lines.joined(separator: "\n")
    }
}

import Foundation
import IECore
import IEEval

/// The report's and cross-validation's plots, drawn by gnuplot.
public enum Plots {
    static let palette = ["#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69",
                          "#fccde5", "#d9d9d9", "#bc80bd", "#ccebc5", "#ffed6f"]
    public static let maxStructuresPerPlot = 7

    /// Splits the structure names, sorted in code-point order, into plots of at most 7, as evenly as InnerEye's
    /// split_by_structures: n_plots = ceil(n / 7), plot i ends at int(0.5 + (i + 1) * n / n_plots).
    public static func structureGroups(_ names: [String]) -> [[String]] {
        let sorted = Array(Set(names)).sorted(by: codePointOrder)
        let plots = (sorted.count + maxStructuresPerPlot - 1) / maxStructuresPerPlot
        if plots <= 1 { return [sorted] }
        let perPlot = Double(sorted.count) / Double(plots)
        var groups: [[String]] = []
        var start = 0
        for i in 0..<plots {
            let end = Int(0.5 + Double(i + 1) * perPlot)
            groups.append(Array(sorted[start..<end]))
            start = end
        }
        return groups
    }

    /// One panel of box plots: one box per (category, series), categories along x, series side by side and
    /// coloured. Non-finite values are left out (they cannot be drawn); empty boxes are skipped.
    public struct BoxPanel {
        public var categories: [String]
        public var series: [String]
        public var values: (String, String) -> [Double]
        public var title: String
        public var yLabel: String
        public var xLabel: String = ""
        public var yRange: (Double, Double)?

        public init(categories: [String], series: [String], values: @escaping (String, String) -> [Double],
                    title: String, yLabel: String, xLabel: String = "", yRange: (Double, Double)? = nil) {
            self.categories = categories; self.series = series; self.values = values
            self.title = title; self.yLabel = yLabel; self.xLabel = xLabel; self.yRange = yRange
        }

        /// The gnuplot commands of this panel, its data going to `dataFile`.
        func script(dataFile: String) -> (body: String, data: String) {
            var data = ""
            var clauses: [String] = []
            var block = 0
            let width = 0.8 / Double(max(series.count, 1))
            var titled = Set<String>()
            for (c, category) in categories.enumerated() {
                for (s, name) in series.enumerated() {
                    let v = values(category, name).filter { $0.isFinite }
                    guard !v.isEmpty else { continue }
                    data += v.map { String($0) }.joined(separator: "\n") + "\n\n\n"
                    let x = Double(c + 1) - 0.4 + width * (Double(s) + 0.5)
                    let legend = titled.insert(name).inserted ? "title \(Gnuplot.quoted(name))" : "notitle"
                    clauses.append("'\(dataFile)' index \(block) using (\(x)):1 with boxplot lc rgb '\(palette[s % palette.count])' \(legend)")
                    block += 1
                }
            }
            // No finite value at all (a model that found nothing): an empty panel on a fixed range, since gnuplot
            // refuses to autoscale a plot without points.
            if clauses.isEmpty { clauses.append("NaN notitle") }
            let tics = categories.enumerated().map { "\(Gnuplot.quoted($0.element)) \($0.offset + 1)" }.joined(separator: ", ")
            let body = """
                set title \(Gnuplot.quoted(title))
                set ylabel \(Gnuplot.quoted(yLabel))
                set xlabel \(Gnuplot.quoted(xLabel))
                set style fill solid 0.6 border -1
                set style boxplot outliers pointtype 7
                set pointsize 0.5
                set boxwidth \(width * 0.9)
                set grid ytics
                set key outside right top
                set xtics (\(tics))
                set xrange [0.4:\(Double(categories.count) + 0.6)]
                \(yRange.map { "set yrange [\($0.0):\($0.1)]" } ?? (block == 0 ? "set yrange [0:1]" : "set yrange [*:*]"))
                plot \(clauses.joined(separator: ", \\\n     "))
                """
            return (body, data)
        }
    }

    /// Box plots in one panel (see BoxPanel).
    public static func boxPlot(categories: [String], series: [String], values: @escaping (String, String) -> [Double],
                               title: String, yLabel: String, xLabel: String = "",
                               yRange: (Double, Double)? = nil) throws -> Data {
        let panel = BoxPanel(categories: categories, series: series, values: values, title: title, yLabel: yLabel,
                             xLabel: xLabel, yRange: yRange)
        let (body, data) = panel.script(dataFile: "box.dat")
        return try Gnuplot.png(body: body, dataFiles: ["box.dat": data], width: 1100, height: 600)
    }

    /// Panels stacked in one PNG (gnuplot multiplot), each 600 pixels high.
    public static func boxPlots(_ panels: [BoxPanel]) throws -> Data {
        var body = "set multiplot layout \(panels.count),1\n"
        var files: [String: String] = [:]
        for (i, panel) in panels.enumerated() {
            let (script, data) = panel.script(dataFile: "box\(i).dat")
            body += script + "\n"
            files["box\(i).dat"] = data
        }
        return try Gnuplot.png(body: body + "unset multiplot", dataFiles: files, width: 1100, height: 600 * panels.count)
    }

    /// InnerEye's scatterplot of per-subject Dice of run A (x) against run B (y), one marker set per structure
    /// with `structure, A_better:B_better` in the legend and the diagonal drawn.
    public static func scatterPlot(x: [String: [String: Double]], y: [String: [String: Double]],
                                   xName: String, yName: String) throws -> Data {
        let maxDice = ([x, y].flatMap { $0.values.flatMap { $0.values } }.max() ?? 1) > 1.001 ? 100.0 : 1.0
        var data = ""
        var clauses: [String] = []
        var block = 0
        for (s, structure) in x.keys.sorted().enumerated() {
            guard let a = x[structure], let b = y[structure] else { continue }
            var xBetter = 0, yBetter = 0
            var points = ""
            for subject in a.keys.sorted() {
                guard let u = a[subject], let v = b[subject] else { continue }
                if u > v { xBetter += 1 } else if v > u { yBetter += 1 }
                points += "\(min(max(u, -0.01 * maxDice), 1.01 * maxDice)) \(min(max(v, -0.01 * maxDice), 1.01 * maxDice))\n"
            }
            guard !points.isEmpty else { continue }
            data += points + "\n\n"
            clauses.append("'scatter.dat' index \(block) using 1:2 with points pt \(5 + 2 * (s / palette.count) % 6) "
                           + "lc rgb '\(darkPalette[s % darkPalette.count])' "
                           + "title \(Gnuplot.quoted("\(structure), \(xBetter):\(yBetter)"))")
            block += 1
        }
        if clauses.isEmpty { clauses.append("NaN notitle") }
        let body = """
            set title \(Gnuplot.quoted("Dice scores for \(xName) (x axis) and \(yName) (y axis)"))
            set xlabel \(Gnuplot.quoted(xName))
            set ylabel \(Gnuplot.quoted(yName))
            set size square
            set xrange [\(-0.2 * maxDice):\(1.02 * maxDice)]
            set yrange [\(-0.02 * maxDice):\(1.02 * maxDice)]
            set key left top
            set grid
            set arrow from 0,0 to \(maxDice),\(maxDice) nohead lc rgb 'black'
            set arrow from 0,0 to 0,\(maxDice) nohead lc rgb 'black'
            set arrow from 0,0 to \(maxDice),0 nohead lc rgb 'black'
            set arrow from \(maxDice),0 to \(maxDice),\(maxDice) nohead lc rgb 'black'
            set arrow from 0,\(maxDice) to \(maxDice),\(maxDice) nohead lc rgb 'black'
            plot \(clauses.joined(separator: ", \\\n     "))
            """
        return try Gnuplot.png(body: body, dataFiles: ["scatter.dat": data], width: 900, height: 800)
    }

    static let darkPalette = ["#1f77b4", "#2ca02c", "#d62728", "#17becf", "#9467bd", "#bcbd22", "#ff7f0e", "#8c564b"]

    /// One training curve: a column of Train and Val epoch_metrics.csv against epoch.
    public static func trainingCurve(train: [(Double, Double)], val: [(Double, Double)], title: String,
                                     yLabel: String, logScale: Bool = false) throws -> Data {
        var clauses: [String] = []
        var files: [String: String] = [:]
        for (name, all, color) in [("Train", train, "#1f77b4"), ("Val", val, "#d62728")] {
            let points = all.filter { $0.0.isFinite && $0.1.isFinite && (!logScale || $0.1 > 0) }
            guard !points.isEmpty else { continue }
            let file = "\(name.lowercased()).dat"
            files[file] = points.map { "\($0.0) \($0.1)" }.joined(separator: "\n") + "\n"
            clauses.append("'\(file)' using 1:2 with linespoints pt 7 ps 0.6 lc rgb '\(color)' title '\(name)'")
        }
        // No finite value at all (an empty panel): gnuplot refuses to autoscale an empty plot, so fix the ranges.
        let empty = clauses.isEmpty
        if empty { clauses.append("NaN notitle") }
        let body = """
            set title \(Gnuplot.quoted(title))
            set xlabel 'epoch'
            set ylabel \(Gnuplot.quoted(yLabel))
            set grid
            set key top right
            \(logScale && !empty ? "set logscale y" : "")
            \(empty ? "set xrange [0:1]\nset yrange [0:1]" : "")
            plot \(clauses.joined(separator: ", "))
            """
        return try Gnuplot.png(body: body, dataFiles: files, width: 800, height: 450)
    }

    /// One of SPEC §10's cross-validation box plots and what it shows.
    public struct CrossValidationPlot {
        public var name: String
        public var png: Data
        public var mode: String
        /// The metrics column: Dice or HausdorffDistance_mm.
        public var metric: String
        public var structures: [String]
        public var title: String
        public var yLabel: String
    }

    /// SPEC §10's cross-validation box plots: per mode and metric, splits along x, structures as coloured
    /// boxes, at most 7 structures a plot. Named `Dice_Test_Splits.png`, `HausdorffDistance_mm_Test_splits.png`,
    /// with `_1`, `_2`... when split.
    public static func crossValidationBoxPlots(_ records: [MetricsRecord], epochLabel: String = "") throws -> [CrossValidationPlot] {
        var result: [CrossValidationPlot] = []
        let modes = Array(Set(records.compactMap { $0.mode })).sorted()
        for mode in modes {
            let rows = records.filter { $0.mode == mode }
            let splits = Array(Set(rows.compactMap { $0.split })).sorted()
            let groups = structureGroups(Array(Set(rows.map { $0.structure })))
            for (metric, stem, label) in [(OutlierReport.Metric.dice, "Dice_\(mode)_Splits", "Dice Score (%)"),
                                          (.hausdorffDistance, "HausdorffDistance_mm_\(mode)_splits", "Hausdorff Distance (mm)")] {
                if metric == .hausdorffDistance && !rows.contains(where: { !$0.hausdorffDistance.isNaN }) { continue }
                let title = "Segmentation Results on \(mode) Dataset\(epochLabel.isEmpty ? "" : " (Epoch \(epochLabel))")"
                for (g, group) in groups.enumerated() {
                    let png = try boxPlot(
                        categories: splits, series: group,
                        values: { split, structure in
                            rows.filter { $0.split == split && $0.structure == structure }
                                .map { metric == .dice ? $0.dice : $0.hausdorffDistance }
                        },
                        title: title, yLabel: label, xLabel: "Cross-Validation Splits",
                        yRange: metric == .dice ? (0, 100.5) : nil)
                    result.append(CrossValidationPlot(
                        name: stem + (groups.count > 1 ? "_\(g + 1)" : "") + ".png", png: png, mode: mode,
                        metric: metric == .dice ? "Dice" : "HausdorffDistance_mm", structures: group, title: title, yLabel: label))
                }
            }
        }
        return result
    }
}

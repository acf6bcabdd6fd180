import Foundation
import IECore
import IEEval

extension Plots {
    /// One set of predictions on a ROC / PR plot (a model on one mode, a fold, the ensemble).
    public struct ScoredSet {
        public var name: String
        public var labels: [Bool]
        public var scores: [Double]
        public init(name: String, labels: [Bool], scores: [Double]) {
            self.name = name; self.labels = labels; self.scores = scores
        }
    }

    /// The data blocks of the ROC and PR panels: one block per set (`fpr tpr` and `recall precision` rows, the
    /// curves of ScalarMetrics, i.e. scikit-learn's), and the legend title of each with its area.
    static func rocAndPRData(_ sets: [ScoredSet]) -> (roc: String, pr: String, rocTitles: [String], prTitles: [String]) {
        var roc = "", pr = ""
        var rocTitles: [String] = [], prTitles: [String] = []
        for set in sets {
            let rocCurve = ScalarMetrics.rocCurve(labels: set.labels, scores: set.scores) ?? []
            let prCurve = ScalarMetrics.precisionRecallCurve(labels: set.labels, scores: set.scores) ?? []
            roc += rocCurve.map { "\($0.falsePositiveRate) \($0.truePositiveRate)" }.joined(separator: "\n") + "\n\n\n"
            pr += prCurve.map { "\($0.recall) \($0.precision)" }.joined(separator: "\n") + "\n\n\n"
            let auc = ScalarMetrics.areaUnderROC(labels: set.labels, scores: set.scores)
            let aucPR = ScalarMetrics.areaUnderPR(labels: set.labels, scores: set.scores)
            rocTitles.append(set.name + (auc.map { String(format: " (AUC %.3f)", $0) } ?? " (one class only)"))
            prTitles.append(set.name + (aucPR.map { String(format: " (AUC %.3f)", $0) } ?? " (one class only)"))
        }
        return (roc, pr, rocTitles, prTitles)
    }

    /// InnerEye's classification report figure: the ROC curve (with the chance diagonal) and the
    /// precision-recall curve side by side, one coloured curve per set.
    public static func rocAndPRCurves(_ sets: [ScoredSet], title: String) throws -> Data {
        let data = rocAndPRData(sets)
        func clauses(_ file: String, _ titles: [String]) -> String {
            let curves = titles.enumerated().map { i, t in
                "'\(file)' index \(i) using 1:2 with lines lw 2 lc rgb '\(darkPalette[i % darkPalette.count])' title \(Gnuplot.quoted(t))"
            }
            return curves.isEmpty ? "NaN notitle" : curves.joined(separator: ", ")
        }
        let body = """
            set multiplot layout 1,2 title \(Gnuplot.quoted(title))
            set size ratio 1
            set grid
            set xrange [0:1]
            set yrange [0:1.02]
            set key bottom right
            set title 'ROC curve'
            set xlabel 'false positive rate'
            set ylabel 'true positive rate'
            plot x with lines dt 2 lc rgb '#999999' notitle, \(clauses("roc.dat", data.rocTitles))
            set title 'Precision-recall curve'
            set xlabel 'recall'
            set ylabel 'precision'
            set key bottom left
            plot \(clauses("pr.dat", data.prTitles))
            unset multiplot
            """
        return try Gnuplot.png(body: body, dataFiles: ["roc.dat": data.roc, "pr.dat": data.pr], width: 1100, height: 560)
    }
}

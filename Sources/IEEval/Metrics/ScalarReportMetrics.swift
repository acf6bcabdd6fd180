import Foundation

/// The classification report's metrics (InnerEye's `classification_report.get_all_metrics`): the threshold is
/// chosen on one set (Val) and applied to another (Test). Beside ScalarMetrics' per-set values: sensitivity and
/// specificity at that threshold (a prediction is positive when its score is >= the threshold, as
/// `recall_score(labels, scores >= threshold)`), while the accuracy keeps InnerEye's strict `>`.
public struct ScalarReportMetrics: Equatable, Sendable {
    public var areaUnderPR: Double
    public var areaUnderROC: Double
    public var optimalThreshold: Double
    public var accuracyAtOptimalThreshold: Double
    public var accuracyAtThreshold05: Double
    public var sensitivity: Double
    public var specificity: Double

    /// The report's rows in InnerEye's order, with its descriptions.
    public var rows: [(name: String, value: Double)] {
        [("Area under PR Curve", areaUnderPR), ("Area under ROC Curve", areaUnderROC),
         ("Optimal threshold", optimalThreshold), ("Accuracy at optimal threshold", accuracyAtOptimalThreshold),
         ("Accuracy at threshold 0.5", accuracyAtThreshold05), ("Sensitivity at optimal threshold", sensitivity),
         ("Specificity at optimal threshold", specificity)]
    }

    /// `thresholdSet` chooses the threshold (unless `threshold` is given); the metrics are those of `evaluated`.
    /// A set with one class only has NaN areas (InnerEye's report; its per-epoch metrics use 1).
    public init(thresholdSet: (labels: [Bool], scores: [Double]), evaluated: (labels: [Bool], scores: [Double]),
                threshold: Double? = nil) {
        // A Val set of one class has no ROC curve; InnerEye's recipe (roc_curve's NaN rates, np.argmax picking the
        // first point) then takes the first threshold, +inf, as ScalarMetrics.classification does.
        let chosen = threshold ?? ScalarMetrics.optimalThreshold(labels: thresholdSet.labels, scores: thresholdSet.scores)?.threshold
            ?? (thresholdSet.labels.isEmpty ? .nan : .infinity)
        let (labels, scores) = evaluated
        areaUnderPR = ScalarMetrics.areaUnderPR(labels: labels, scores: scores) ?? .nan
        areaUnderROC = ScalarMetrics.areaUnderROC(labels: labels, scores: scores) ?? .nan
        optimalThreshold = chosen
        let numeric = labels.map { $0 ? 1.0 : 0.0 }
        accuracyAtOptimalThreshold = ScalarMetrics.accuracy(labels: numeric, scores: scores, threshold: chosen)
        accuracyAtThreshold05 = ScalarMetrics.accuracy(labels: numeric, scores: scores, threshold: 0.5)
        func recall(of positive: Bool) -> Double {
            let members = labels.indices.filter { labels[$0] == positive }
            guard !members.isEmpty else { return .nan }
            return Double(members.filter { (scores[$0] >= chosen) == positive }.count) / Double(members.count)
        }
        sensitivity = recall(of: true)
        specificity = recall(of: false)
    }

    /// The k most confident correct and wrong predictions of `evaluated` at the threshold chosen on
    /// `thresholdSet` (InnerEye's get_k_best_and_worst_performing: positive when score >= threshold; true and
    /// false positives by decreasing score, true and false negatives by increasing score; equal scores in input
    /// order). Values are indices into `evaluated`.
    public static func bestAndWorst(thresholdSet: (labels: [Bool], scores: [Double]),
                                    evaluated: (labels: [Bool], scores: [Double]), k: Int)
        -> (truePositives: [Int], trueNegatives: [Int], falsePositives: [Int], falseNegatives: [Int])? {
        guard let threshold = ScalarMetrics.optimalThreshold(labels: thresholdSet.labels, scores: thresholdSet.scores)?.threshold
        else { return nil }
        let (labels, scores) = evaluated
        func pick(predicted: Bool, label: Bool, decreasing: Bool) -> [Int] {
            let members = labels.indices.filter { (scores[$0] >= threshold) == predicted && labels[$0] == label }
            let sorted = members.enumerated().sorted { a, b in
                scores[a.element] != scores[b.element]
                    ? (decreasing ? scores[a.element] > scores[b.element] : scores[a.element] < scores[b.element])
                    : a.offset < b.offset
            }.map(\.element)
            return Array(sorted.prefix(k))
        }
        return (pick(predicted: true, label: true, decreasing: true), pick(predicted: false, label: false, decreasing: false),
                pick(predicted: true, label: false, decreasing: true), pick(predicted: false, label: true, decreasing: false))
    }
}

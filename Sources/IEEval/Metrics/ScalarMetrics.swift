import Foundation

/// Metrics of classification and regression models (InnerEye's scalar models, SPEC §13), computed as InnerEye
/// computes them: ROC and precision-recall curves as scikit-learn's `roc_curve` / `precision_recall_curve`
/// build them (ties share one threshold, a prediction is positive when its score is >= the threshold), the
/// optimal threshold as InnerEye's `MetricsDict.get_optimal_idx` (the first point maximising TPR - FPR on the
/// ROC curve with intermediate points dropped), accuracies as InnerEye's `binary_classification_accuracy`
/// (positive when the score is strictly above the threshold, compared in single precision as torch does).
public enum ScalarMetrics {
    /// One point of a ROC curve: the rates of predictions with score >= `threshold` (+infinity for the first).
    public struct ROCPoint: Equatable, Sendable {
        public var falsePositiveRate: Double
        public var truePositiveRate: Double
        public var threshold: Double
    }

    /// One point of a precision-recall curve (the last has recall 0, precision 1 and no threshold).
    public struct PRPoint: Equatable, Sendable {
        public var precision: Double
        public var recall: Double
        public var threshold: Double?
    }

    /// Cumulative true and false positives at each distinct score, highest score first
    /// (scikit-learn's `_binary_clf_curve`).
    static func cumulativeCounts(labels: [Bool], scores: [Double]) -> (tps: [Double], fps: [Double], thresholds: [Double]) {
        // A stable sort keeps equal scores together; their order does not matter since only the last of each
        // run of equal scores is kept.
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var tps: [Double] = [], fps: [Double] = [], thresholds: [Double] = []
        var truePositives = 0.0
        for (rank, index) in order.enumerated() {
            if labels[index] { truePositives += 1 }
            let isLastOfItsScore = rank == order.count - 1 || scores[order[rank + 1]] != scores[index]
            if isLastOfItsScore {
                tps.append(truePositives)
                fps.append(Double(rank + 1) - truePositives)
                thresholds.append(scores[index])
            }
        }
        return (tps, fps, thresholds)
    }

    /// The ROC curve as `sklearn.metrics.roc_curve(labels, scores)` (drop_intermediate=True by default): points
    /// collinear with equal steps are dropped and a first point (0, 0) at threshold +infinity is added. Nil when
    /// only one class is present (the rates are undefined).
    public static func rocCurve(labels: [Bool], scores: [Double], dropIntermediate: Bool = true) -> [ROCPoint]? {
        precondition(labels.count == scores.count, "one score per label")
        var (tps, fps, thresholds) = cumulativeCounts(labels: labels, scores: scores)
        guard let positives = tps.last, let negatives = fps.last, positives > 0, negatives > 0 else { return nil }
        if dropIntermediate && tps.count > 2 {
            var keep = [0]
            for i in 1..<(tps.count - 1) {
                let secondDifferenceFP = fps[i + 1] - 2 * fps[i] + fps[i - 1]
                let secondDifferenceTP = tps[i + 1] - 2 * tps[i] + tps[i - 1]
                if secondDifferenceFP != 0 || secondDifferenceTP != 0 { keep.append(i) }
            }
            keep.append(tps.count - 1)
            (tps, fps, thresholds) = (keep.map { tps[$0] }, keep.map { fps[$0] }, keep.map { thresholds[$0] })
        }
        var curve = [ROCPoint(falsePositiveRate: 0, truePositiveRate: 0, threshold: .infinity)]
        for i in tps.indices {
            curve.append(ROCPoint(falsePositiveRate: fps[i] / negatives, truePositiveRate: tps[i] / positives,
                                  threshold: thresholds[i]))
        }
        return curve
    }

    /// The precision-recall curve as `sklearn.metrics.precision_recall_curve(labels, scores)`, in its order
    /// (increasing thresholds, then the point recall 0 / precision 1). Nil without positives.
    public static func precisionRecallCurve(labels: [Bool], scores: [Double]) -> [PRPoint]? {
        precondition(labels.count == scores.count, "one score per label")
        let (tps, fps, thresholds) = cumulativeCounts(labels: labels, scores: scores)
        guard let positives = tps.last, positives > 0 else { return nil }
        var curve: [PRPoint] = []
        for i in tps.indices.reversed() {
            curve.append(PRPoint(precision: tps[i] / (tps[i] + fps[i]), recall: tps[i] / positives,
                                 threshold: thresholds[i]))
        }
        curve.append(PRPoint(precision: 1, recall: 0, threshold: nil))
        return curve
    }

    /// Trapezoidal area under a curve whose x values are monotonic (`sklearn.metrics.auc`): positive for
    /// decreasing x as well.
    public static func trapezoidArea(x: [Double], y: [Double]) -> Double {
        guard x.count > 1 else { return 0 }
        var area = 0.0
        for i in 1..<x.count { area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2 }
        return x[x.count - 1] < x[0] ? -area : area
    }

    /// Area under the ROC curve (`roc_auc_score`); nil when only one class is present.
    public static func areaUnderROC(labels: [Bool], scores: [Double]) -> Double? {
        guard let curve = rocCurve(labels: labels, scores: scores, dropIntermediate: false) else { return nil }
        return trapezoidArea(x: curve.map(\.falsePositiveRate), y: curve.map(\.truePositiveRate))
    }

    /// Area under the precision-recall curve as InnerEye computes it: `auc(recall, precision)` over
    /// `precision_recall_curve` (trapezoids, not scikit-learn's step-wise average precision); nil when only one
    /// class is present.
    public static func areaUnderPR(labels: [Bool], scores: [Double]) -> Double? {
        guard labels.contains(false), let curve = precisionRecallCurve(labels: labels, scores: scores) else { return nil }
        return trapezoidArea(x: curve.map(\.recall), y: curve.map(\.precision))
    }

    /// scikit-learn's `average_precision_score`: the sum over thresholds of (R_n - R_{n-1}) P_n. Nil without positives.
    public static func averagePrecision(labels: [Bool], scores: [Double]) -> Double? {
        guard let curve = precisionRecallCurve(labels: labels, scores: scores) else { return nil }
        var sum = 0.0
        for i in 0..<(curve.count - 1) { sum += (curve[i].recall - curve[i + 1].recall) * curve[i].precision }
        return sum
    }

    /// The threshold maximising TPR - FPR (the first such point of the ROC curve, InnerEye's rule), with the
    /// false positive and false negative rates there. Nil when only one class is present.
    public static func optimalThreshold(labels: [Bool], scores: [Double])
        -> (threshold: Double, falsePositiveRate: Double, falseNegativeRate: Double)? {
        guard let curve = rocCurve(labels: labels, scores: scores) else { return nil }
        var best = 0
        for i in curve.indices where curve[i].truePositiveRate - curve[i].falsePositiveRate
            > curve[best].truePositiveRate - curve[best].falsePositiveRate { best = i }
        return (curve[best].threshold, curve[best].falsePositiveRate, 1 - curve[best].truePositiveRate)
    }

    /// InnerEye's `binary_classification_accuracy`: predicted positive when the score is strictly above the
    /// threshold, a label is positive when above 0.5; both compared in single precision (torch float32).
    public static func accuracy(labels: [Double], scores: [Double], threshold: Double = 0.5) -> Double {
        precondition(labels.count == scores.count, "one score per label")
        guard !labels.isEmpty else { return .nan }
        let cut = Float(threshold)
        var correct = 0
        for i in labels.indices where (Float(scores[i]) > cut) == (Float(labels[i]) > 0.5) { correct += 1 }
        return Double(correct) / Double(labels.count)
    }

    /// Binary cross-entropy as `sklearn.metrics.log_loss(labels, scores, labels=[0, 1])`: scores clipped to
    /// [eps, 1 - eps] with eps the double-precision machine epsilon.
    public static func crossEntropy(labels: [Bool], scores: [Double]) -> Double {
        precondition(labels.count == scores.count, "one score per label")
        guard !labels.isEmpty else { return .nan }
        let eps = Double.ulpOfOne
        var sum = 0.0
        for i in labels.indices {
            let p = min(max(scores[i], eps), 1 - eps)
            sum -= labels[i] ? Foundation.log(p) : Foundation.log(1 - p)
        }
        return sum / Double(labels.count)
    }

    /// The row of metrics InnerEye reports for a binary classifier on one mode (SPEC §13).
    public struct Classification: Equatable, Sendable {
        public var areaUnderROC: Double
        public var areaUnderPR: Double
        public var optimalThreshold: Double
        public var accuracyAtOptimalThreshold: Double
        public var falsePositiveRateAtOptimalThreshold: Double
        public var falseNegativeRateAtOptimalThreshold: Double
        public var crossEntropy: Double
        public var accuracyAtThreshold05: Double
        public var subjectCount: Int
    }

    /// All classification metrics of one set of predictions. When only one class is present the areas are 1
    /// (InnerEye's MetricsDict: "we could always get a classifier threshold that correctly classifies
    /// everything"), and the threshold values are what MetricsDict's get_metrics_at_optimal_cutoff makes of
    /// roc_curve's NaN rates for the missing class: np.argmax(tpr - fpr) over all-NaN picks index 0, the added
    /// first point, so the threshold is its +inf (scikit-learn >= 1.3; InnerEye's pinned 0.23.2 had max score
    /// + 1, which predicts the same), nothing is predicted positive, FPR = fpr[0] (0, or NaN without negatives)
    /// and FNR = 1 - tpr[0] (1, or NaN without positives).
    public static func classification(labels: [Bool], scores: [Double]) -> Classification {
        let numeric = labels.map { $0 ? 1.0 : 0.0 }
        var optimal = optimalThreshold(labels: labels, scores: scores)
        if optimal == nil && !labels.isEmpty {
            let allPositive = labels.allSatisfy { $0 }
            optimal = (threshold: .infinity, falsePositiveRate: allPositive ? .nan : 0,
                       falseNegativeRate: allPositive ? 1 : .nan)
        }
        let singleClass: Double = labels.isEmpty ? .nan : 1
        return Classification(
            areaUnderROC: areaUnderROC(labels: labels, scores: scores) ?? singleClass,
            areaUnderPR: areaUnderPR(labels: labels, scores: scores) ?? singleClass,
            optimalThreshold: optimal?.threshold ?? .nan,
            accuracyAtOptimalThreshold: optimal.map { accuracy(labels: numeric, scores: scores, threshold: $0.threshold) } ?? .nan,
            falsePositiveRateAtOptimalThreshold: optimal?.falsePositiveRate ?? .nan,
            falseNegativeRateAtOptimalThreshold: optimal?.falseNegativeRate ?? .nan,
            crossEntropy: crossEntropy(labels: labels, scores: scores),
            accuracyAtThreshold05: accuracy(labels: numeric, scores: scores),
            subjectCount: labels.count)
    }

    /// The metrics of a regression model on one mode: mean absolute and squared error, the coefficient of
    /// determination R² (`sklearn.metrics.r2_score`, which InnerEye reports under the name ExplainedVariance) and
    /// scikit-learn's `explained_variance_score`.
    public struct Regression: Equatable, Sendable {
        public var meanAbsoluteError: Double
        public var meanSquaredError: Double
        public var r2: Double
        public var explainedVariance: Double
        public var subjectCount: Int
    }

    public static func regression(labels: [Double], outputs: [Double]) -> Regression {
        precondition(labels.count == outputs.count, "one output per label")
        let n = Double(labels.count)
        guard n > 0 else { return Regression(meanAbsoluteError: .nan, meanSquaredError: .nan, r2: .nan, explainedVariance: .nan, subjectCount: 0) }
        let errors = labels.indices.map { labels[$0] - outputs[$0] }
        let meanLabel = labels.reduce(0, +) / n
        let meanError = errors.reduce(0, +) / n
        let squaredErrorSum = errors.reduce(0) { $0 + $1 * $1 }
        let labelVariationSum = labels.reduce(0) { $0 + ($1 - meanLabel) * ($1 - meanLabel) }
        let errorVariationSum = errors.reduce(0) { $0 + ($1 - meanError) * ($1 - meanError) }
        // scikit-learn: a constant label vector gives 1 for a perfect prediction and 0 otherwise.
        func score(_ numerator: Double) -> Double {
            labelVariationSum == 0 ? (numerator == 0 ? 1 : 0) : 1 - numerator / labelVariationSum
        }
        return Regression(meanAbsoluteError: errors.reduce(0) { $0 + abs($1) } / n,
                          meanSquaredError: squaredErrorSum / n,
                          r2: score(squaredErrorSum), explainedVariance: score(errorVariationSum),
                          subjectCount: labels.count)
    }
}

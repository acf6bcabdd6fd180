import Foundation
import XCTest
import IETestSupport
import IECore
@testable import IEEval

/// The scalar (classification and regression) metrics against scikit-learn, and the optimal-threshold and
/// accuracy rules written from InnerEye's MetricsDict / binary_classification_accuracy, on random scores with ties.
final class ScalarMetricsTests: XCTestCase {
    /// sklearn's curves and scores, InnerEye's threshold rule, for the label/score sets on stdin (JSON).
    static let oracle = """
    import json, sys, numpy as np
    from sklearn.metrics import (roc_curve, precision_recall_curve, roc_auc_score, auc, average_precision_score,
                                 log_loss, r2_score, explained_variance_score, mean_absolute_error, mean_squared_error)
    out = []
    for case in json.load(sys.stdin):
        y = np.array(case["labels"], dtype=float); s = np.array(case["scores"], dtype=float)
        fpr, tpr, thr = roc_curve(y, s)
        i = int(np.argmax(tpr - fpr))                       # InnerEye MetricsDict.get_optimal_idx
        acc = lambda t: float(np.mean((s.astype(np.float32) > np.float32(t)) == (y > 0.5)))
        p, r, _ = precision_recall_curve(y, s)
        out.append(dict(fpr=fpr.tolist(), tpr=tpr.tolist(), thr=[t if np.isfinite(t) else None for t in thr.tolist()],
                        precision=p.tolist(), recall=r.tolist(),
                        auc_roc=roc_auc_score(y, s), auc_pr=auc(r, p), ap=average_precision_score(y, s),
                        threshold=float(thr[i]) if np.isfinite(thr[i]) else "inf", fpr_opt=float(fpr[i]), fnr_opt=float(1 - tpr[i]),
                        acc_opt=acc(thr[i]), acc05=acc(0.5), ce=log_loss(y, s, labels=[0, 1]),
                        mae=mean_absolute_error(y, s), mse=mean_squared_error(y, s),
                        r2=r2_score(y, s), ev=explained_variance_score(y, s)))
    print(json.dumps(out))
    """

    struct Case { var labels: [Bool]; var scores: [Double] }

    /// Random cases: scores rounded to one or two decimals (many ties), some with a perfect separation, one with
    /// all scores equal, sizes from 2 to 200.
    func randomCases() -> [Case] {
        var rng = SystemRandomNumberGenerator()
        var cases: [Case] = []
        for n in [2, 3, 5, 17, 60, 200] {
            for decimals in [1.0, 100.0] {
                var labels = (0..<n).map { _ in Bool.random(using: &rng) }
                labels[0] = true; labels[n - 1] = false   // both classes present
                let scores = labels.map { label in
                    (min(1, max(0, Double.random(in: 0...1, using: &rng) * 0.8 + (label ? 0.2 : 0))) * decimals).rounded() / decimals
                }
                cases.append(Case(labels: labels, scores: scores))
            }
        }
        cases.append(Case(labels: [true, false, true, false], scores: [0.9, 0.1, 0.8, 0.2]))
        cases.append(Case(labels: [true, false, true, false, true], scores: [0.5, 0.5, 0.5, 0.5, 0.5]))
        return cases
    }

    func testAgainstScikitLearnAndInnerEyesRules() throws {
        let cases = randomCases()
        let input = try JSONSerialization.data(withJSONObject: cases.map {
            ["labels": $0.labels.map { $0 ? 1 : 0 }, "scores": $0.scores]
        })
        let expected = try XCTUnwrap(PythonOracle.json(Self.oracle, input: input) as? [[String: Any]])
        XCTAssertEqual(expected.count, cases.count)
        for (c, want) in zip(cases, expected) {
            let context = "labels \(c.labels.map { $0 ? 1 : 0 }) scores \(c.scores)"
            let roc = try XCTUnwrap(ScalarMetrics.rocCurve(labels: c.labels, scores: c.scores))
            // scikit-learn's array-API arithmetic may round the rates differently in the last bit.
            func closeCurve(_ values: [Double], _ key: String) {
                guard let reference = want[key] as? [Double], reference.count == values.count else {
                    return XCTFail("\(key): \(values) vs \(String(describing: want[key])): \(context)")
                }
                for (v, r) in zip(values, reference) { XCTAssertEqual(v, r, accuracy: 1e-14, "\(key): \(context)") }
            }
            closeCurve(roc.map(\.falsePositiveRate), "fpr")
            closeCurve(roc.map(\.truePositiveRate), "tpr")
            let thresholds = try XCTUnwrap(want["thr"] as? [Any])
            XCTAssertEqual(roc.map { $0.threshold.isFinite ? $0.threshold : nil }, thresholds.map { $0 as? Double }, context)
            let pr = try XCTUnwrap(ScalarMetrics.precisionRecallCurve(labels: c.labels, scores: c.scores))
            closeCurve(pr.map(\.precision), "precision")
            closeCurve(pr.map(\.recall), "recall")

            func close(_ value: Double?, _ key: String, accuracy: Double = 1e-12) {
                guard let value, let reference = want[key] as? Double else { return XCTFail("\(key) missing: \(context)") }
                XCTAssertEqual(value, reference, accuracy: accuracy, "\(key): \(context)")
            }
            let m = ScalarMetrics.classification(labels: c.labels, scores: c.scores)
            close(m.areaUnderROC, "auc_roc")
            close(m.areaUnderPR, "auc_pr")
            close(ScalarMetrics.averagePrecision(labels: c.labels, scores: c.scores), "ap")
            // +infinity (no subject above it) when no threshold separates better than chance.
            if want["threshold"] as? String == "inf" { XCTAssertEqual(m.optimalThreshold, .infinity, context) } else {
                close(m.optimalThreshold, "threshold", accuracy: 0)
            }
            close(m.falsePositiveRateAtOptimalThreshold, "fpr_opt")
            close(m.falseNegativeRateAtOptimalThreshold, "fnr_opt")
            close(m.accuracyAtOptimalThreshold, "acc_opt", accuracy: 1e-14)
            close(m.accuracyAtThreshold05, "acc05", accuracy: 1e-14)
            close(m.crossEntropy, "ce", accuracy: 1e-9)
            XCTAssertEqual(m.subjectCount, c.labels.count)

            let r = ScalarMetrics.regression(labels: c.labels.map { $0 ? 1 : 0 }, outputs: c.scores)
            close(r.meanAbsoluteError, "mae")
            close(r.meanSquaredError, "mse")
            close(r.r2, "r2", accuracy: 1e-9)
            close(r.explainedVariance, "ev", accuracy: 1e-9)
        }
    }

    /// A test set with one class only: InnerEye's MetricsDict recipe (get_metrics_at_optimal_cutoff: roc_curve,
    /// np.argmax(tpr - fpr), binary_classification_accuracy in float32 with `>`) run by the installed
    /// scikit-learn on random single-class sets, all positive and all negative, scores with ties.
    func testSingleClassThresholdValuesMatchInnerEyesRecipe() throws {
        var random = SplitMix64(seed: 5)
        var cases: [[String: [Double]]] = []
        for index in 0..<60 {
            let n = 1 + index % 15
            let label = index % 2 == 0 ? 1.0 : 0.0
            let scores = (0..<n).map { _ in Double(random.next() % 1000) / 1000 }
            cases.append(["labels": [Double](repeating: label, count: n), "scores": scores])
        }
        let reference = try XCTUnwrap(try PythonOracle.json("""
            import json, sys, warnings, numpy as np
            from sklearn.metrics import roc_curve
            warnings.filterwarnings('ignore')
            def accuracy(outputs, labels, threshold):
                return float(np.mean((np.float32(outputs) > np.float32(threshold)) == (labels > 0.5)))
            out = []
            for c in json.load(sys.stdin):
                labels, scores = np.array(c['labels']), np.array(c['scores'])
                fpr, tpr, thr = roc_curve(labels, scores)
                idx = np.argmax(tpr - fpr)
                out.append([str(float(x)) for x in (thr[idx], accuracy(scores, labels, thr[idx]), fpr[idx], 1 - tpr[idx])])
            print(json.dumps(out))
            """, input: try JSONSerialization.data(withJSONObject: cases)) as? [[String]])
        XCTAssertEqual(reference.count, cases.count)
        for (c, expected) in zip(cases, reference) {
            let labels = (c["labels"] ?? []).map { $0 > 0.5 }
            let m = ScalarMetrics.classification(labels: labels, scores: c["scores"] ?? [])
            let ours = [m.optimalThreshold, m.accuracyAtOptimalThreshold, m.falsePositiveRateAtOptimalThreshold,
                        m.falseNegativeRateAtOptimalThreshold]
            for (name, (a, b)) in zip(["threshold", "accuracy", "FPR", "FNR"], zip(ours, expected)) {
                let value = Double(b) ?? (b == "inf" ? .infinity : .nan)
                XCTAssertTrue(a == value || (a.isNaN && value.isNaN), "\(name) of \(c): ours \(a), InnerEye \(b)")
            }
        }
    }

    /// Analytic cases: a perfect ranking, a reversed one, a single class (InnerEye: areas 1, threshold +inf).
    func testAnalyticCases() {
        let perfect = ScalarMetrics.classification(labels: [false, false, true, true], scores: [0.1, 0.2, 0.7, 0.9])
        XCTAssertEqual(perfect.areaUnderROC, 1)
        XCTAssertEqual(perfect.areaUnderPR, 1)
        XCTAssertEqual(perfect.optimalThreshold, 0.7)
        // Positive means "strictly above the threshold" in InnerEye's accuracy: the subject at 0.7 counts as negative.
        XCTAssertEqual(perfect.accuracyAtOptimalThreshold, 0.75)
        XCTAssertEqual(perfect.accuracyAtThreshold05, 1)
        XCTAssertEqual(ScalarMetrics.areaUnderROC(labels: [true, true, false, false], scores: [0.1, 0.2, 0.7, 0.9]), 0)
        let single = ScalarMetrics.classification(labels: [true, true], scores: [0.3, 0.8])
        XCTAssertEqual(single.areaUnderROC, 1)
        XCTAssertEqual(single.areaUnderPR, 1)
        XCTAssertEqual(single.optimalThreshold, .infinity)
        XCTAssertEqual(single.accuracyAtOptimalThreshold, 0)
        XCTAssertEqual(single.accuracyAtThreshold05, 0.5)
        let constant = ScalarMetrics.regression(labels: [2, 2, 2], outputs: [2, 2, 2])
        XCTAssertEqual(constant.r2, 1)
        XCTAssertEqual(ScalarMetrics.regression(labels: [2, 2, 2], outputs: [1, 2, 3]).r2, 0)
    }
}

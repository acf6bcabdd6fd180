import Foundation
import XCTest
import IECore
import IETestSupport
@testable import IEEval

/// The classification report's metrics on InnerEye's own test files (Tests/ML/reports/*_metrics_classification.csv,
/// copied into Fixtures), against the values InnerEye's test_classification_report.py asserts.
final class ScalarReportMetricsTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/InnerEyeClassification").path

    func load(_ name: String, split: String? = nil, mode: String? = nil) throws -> (labels: [Bool], scores: [Double]) {
        let table = try CSVTable.read(path: Self.folder + "/" + name)
        var labels: [Bool] = [], scores: [Double] = []
        for i in table.rows.indices {
            if let split, table.value("cross_validation_split_index", row: i) != split { continue }
            if let mode, table.value("data_split", row: i) != mode { continue }
            labels.append(table.value("label", row: i) == "1")
            scores.append(Double(table.value("model_output", row: i) ?? "") ?? .nan)
        }
        return (labels, scores)
    }

    /// test_get_metric and test_get_metrics_table_single_run.
    func testSingleRun() throws {
        let val = try load("val_metrics_classification.csv"), test = try load("test_metrics_classification.csv")
        let m = ScalarReportMetrics(thresholdSet: val, evaluated: test)
        XCTAssertEqual(m.optimalThreshold, 0.6)
        XCTAssertEqual(m.areaUnderROC, 0.5)
        XCTAssertEqual(m.areaUnderPR, 13.0 / 24, accuracy: 1e-15)
        XCTAssertEqual(m.accuracyAtOptimalThreshold, 0.5)
        XCTAssertEqual(m.accuracyAtThreshold05, 0.5)
        XCTAssertEqual(m.sensitivity, 0.5)
        XCTAssertEqual(m.specificity, 0.5)
        XCTAssertEqual(ScalarReportMetrics(thresholdSet: val, evaluated: test, threshold: 0.3).optimalThreshold, 0.3)
        let low = ScalarReportMetrics(thresholdSet: val, evaluated: test, threshold: 0.1)
        XCTAssertEqual(low.accuracyAtOptimalThreshold, 0.5)
        XCTAssertEqual(low.specificity, 1.0 / 6)
        XCTAssertEqual(low.sensitivity, 5.0 / 6, accuracy: 1e-15)
        XCTAssertEqual(m.rows.map { String(format: "%.4f", $0.value) }, ["0.5417", "0.5000", "0.6000", "0.5000", "0.5000", "0.5000", "0.5000"])
    }

    /// A Val set of one class: the threshold is what the report notebook's python computes (sklearn roc_curve,
    /// np.argmax of tpr - fpr: the first threshold, inf), and the Test metrics at it; it was NaN here, so the
    /// saved table and the re-executed notebook disagreed.
    func testOneClassValSetTakesTheFirstROCThreshold() throws {
        let test = try load("test_metrics_classification.csv")
        for positive in [true, false] {
            let val = (labels: [Bool](repeating: positive, count: 4), scores: [0.2, 0.7, 0.4, 0.9])
            let m = ScalarReportMetrics(thresholdSet: val, evaluated: test)
            let reference = try XCTUnwrap(PythonOracle.json("""
                import json, sys, warnings, numpy as np
                from sklearn.metrics import roc_curve
                warnings.simplefilter('ignore')
                y = np.array(json.loads(sys.argv[1])); s = np.array(json.loads(sys.argv[2]))
                ty = np.array(json.loads(sys.argv[3])) > 0.5; ts = np.array(json.loads(sys.argv[4]))
                fpr, tpr, thr = roc_curve(y, s); t = float(thr[int(np.argmax(tpr - fpr))])
                acc = float(np.mean((ts.astype(np.float32) > np.float32(t)) == ty))
                print(json.dumps([str(t), acc, float(np.mean(ts[ty] >= t)), float(np.mean((ts[~ty] >= t) == False))]))
                """, arguments: [val.labels.map { $0 ? 1 : 0 }.description, val.scores.description,
                                 test.labels.map { $0 ? 1 : 0 }.description, test.scores.description]) as? [Any])
            XCTAssertEqual(reference[0] as? String, "inf")
            XCTAssertEqual(m.optimalThreshold, .infinity)
            XCTAssertEqual(m.accuracyAtOptimalThreshold, reference[1] as? Double)
            XCTAssertEqual(m.sensitivity, reference[2] as? Double)
            XCTAssertEqual(m.specificity, reference[3] as? Double)
        }
    }

    /// test_get_metrics_table_crossval: each split's Val sets the threshold for its Test rows.
    func testCrossValidationTable() throws {
        var columns: [[String]] = []
        for split in ["0", "1", "2"] {
            let m = ScalarReportMetrics(thresholdSet: try load("crossval_metrics_classification.csv", split: split, mode: "Val"),
                                        evaluated: try load("crossval_metrics_classification.csv", split: split, mode: "Test"))
            columns.append(m.rows.map { String(format: "%.4f", $0.value) })
        }
        let expected = [["0.5417", "0.4481", "0.6889"], ["0.5000", "0.2778", "0.7222"], ["0.6000", "0.6000", "0.6000"],
                        ["0.5000", "0.2500", "0.7500"], ["0.5000", "0.1667", "0.8333"], ["0.5000", "0.1667", "0.8333"],
                        ["0.5000", "0.1667", "0.8333"]]
        for (row, values) in expected.enumerated() {
            XCTAssertEqual(columns.map { $0[row] }, values, "row \(row)")
        }
    }

    /// test_get_correct_and_misclassified_examples and test_get_k_best_and_worst_performing (subject i is row i).
    func testBestAndWorst() throws {
        let val = try load("val_metrics_classification.csv"), test = try load("test_metrics_classification.csv")
        let all = try XCTUnwrap(ScalarReportMetrics.bestAndWorst(thresholdSet: val, evaluated: test, k: 12))
        XCTAssertEqual(Set(all.truePositives), [3, 4, 5])
        XCTAssertEqual(Set(all.trueNegatives), [6, 7, 8])
        XCTAssertEqual(Set(all.falsePositives), [9, 10, 11])
        XCTAssertEqual(Set(all.falseNegatives), [0, 1, 2])
        let two = try XCTUnwrap(ScalarReportMetrics.bestAndWorst(thresholdSet: val, evaluated: test, k: 2))
        XCTAssertEqual(two.truePositives, [5, 4])
        XCTAssertEqual(two.trueNegatives, [6, 7])
        XCTAssertEqual(two.falsePositives, [11, 10])
        XCTAssertEqual(two.falseNegatives, [0, 1])
    }
}

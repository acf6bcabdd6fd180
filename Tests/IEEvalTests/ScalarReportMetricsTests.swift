import Foundation
import XCTest
import IECore
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

import IECore
import XCTest
@testable import IEEval

final class StatsOutlierTests: XCTestCase {
    func testValOutliersMatchInnerEyeReferenceByteForByte() throws {
        let file = try MetricsFile.read(path: StatsFixtures.path("Val_agg_splits.csv"))
        XCTAssertTrue(file.hasMode)
        let text = OutlierReport.text(file.records, hasHausdorffDistance: file.hasHausdorffDistance,
                                      hasSeriesAndInstitution: true, range: 0)
        XCTAssertEqual(text, try StatsFixtures.text("Val_outliers.txt"))
    }

    func testPrunedVariantWithoutSeriesAndInstitution() throws {
        var table = try CSVTable.read(path: StatsFixtures.path("Val_agg_splits.csv"))
        let keep = table.header.indices.filter { !["seriesId", "institutionId"].contains(table.header[$0]) }
        table.header = keep.map { table.header[$0] }
        table.rows = table.rows.map { row in keep.map { row[$0] } }
        let file = try MetricsFile.parse(table: table)
        let text = OutlierReport.text(file.records, hasHausdorffDistance: false, hasSeriesAndInstitution: false, range: 0)
        XCTAssertEqual(text, try StatsFixtures.text("Val_outliers_pruned.txt"))
    }

    func testSameRowsAsReference() throws {
        // The (Patient, Structure) pairs listed, independent of layout: all Val rows with Dice below the mean.
        let file = try MetricsFile.read(path: StatsFixtures.path("Val_agg_splits.csv"))
        let rows = OutlierReport.outliers(file.records, metric: .dice, range: 0)
        let mean = file.records.map { $0.dice }.reduce(0, +) / Double(file.records.count)
        XCTAssertEqual(rows.count, file.records.filter { $0.dice < mean }.count)
        XCTAssertEqual(rows.count, 50)
    }

    func testNoOutliersMatchesInnerEyeCrossValidationFile() throws {
        var records: [MetricsRecord] = []
        for k in ["0", "1", "ENSEMBLE"] {
            let input = MetricsAcrossRuns.Input(
                split: k, mode: "Test",
                metrics: try MetricsFile.read(path: StatsFixtures.path("PR_TrainEnsemble/\(k)/Test/metrics.csv")),
                dataset: try CSVTable.read(path: StatsFixtures.path("PR_TrainEnsemble/dataset_subject5.csv")))
            records += try MetricsAcrossRuns.rows(input).map { $0.record }
        }
        let text = OutlierReport.text(records, hasHausdorffDistance: true, hasSeriesAndInstitution: true, range: 3)
        XCTAssertEqual(text, try StatsFixtures.text("PR_TrainEnsemble_Test_outliers.txt"))
    }

    func testHausdorffHighOutliersHandWorked() {
        // Ten subjects with HD 2 and one with 40: mean 60/11 = 5.4545, sd = sqrt(1312.727/10) = 11.4574;
        // 40 > mean + 3 sd = 39.83, but not > mean + 4 sd = 51.28.
        var records = (0..<10).map { MetricsRecord(patient: "\($0)", structure: "bladder", dice: 0.9, hausdorffDistance: 2) }
        records.append(MetricsRecord(patient: "10", structure: "bladder", dice: 0.9, hausdorffDistance: 40))
        let rows = OutlierReport.outliers(records, metric: .hausdorffDistance, range: 1)
        XCTAssertEqual(rows.map { $0.patient }, ["10"])
        XCTAssertTrue(OutlierReport.outliers(records, metric: .hausdorffDistance, range: 4).isEmpty)
        // Layout by the rules of the reference files: index levels 7 ("Patient") and 9 ("Structure") wide,
        // numeric headers get a leading space and are right-justified, values (" 40.0") left-justified.
        let text = OutlierReport.text(records, hasHausdorffDistance: true, hasSeriesAndInstitution: false, range: 1)
        XCTAssertEqual(text, """


            === METRIC: Dice ===

            No outliers found

            === METRIC: HausdorffDistance_mm ===

                               count  mean   min   max
            Patient Structure
            10      bladder    1.0    40.0  40.0  40.0

            """)
    }
}

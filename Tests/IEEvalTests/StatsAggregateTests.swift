import IECore
import XCTest
@testable import IEEval

final class StatsAggregateTests: XCTestCase {
    func testInnerEyeHandEnteredExample() throws {
        // InnerEye's test_metrics_file rows: liver Dice 1.0, 0.4, 0.8; kidney 0.7, 0.4; HD 1.0; MSD 0.5 .. 0.1.
        let metrics = try MetricsFile.parse(text: """
            Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm
            1,liver,1.000,1.000,0.500
            2,liver,0.400,1.000,0.400
            3,liver,0.800,1.000,0.300
            1,kidney,0.700,1.000,0.200
            2,kidney,0.400,1.000,0.100
            """)
        XCTAssertEqual(MetricsAggregates.csv(metrics.records), try StatsFixtures.text("metrics_aggregates.csv"))
    }

    /// Values no metric can take, and rows with missing fields, are refused with the file and line (issue 11);
    /// MetricsAcrossAllRuns.csv (split and mode columns) holds Dice * 100, as InnerEye writes it.
    func testImpossibleValuesAndShortRowsNameTheLine() throws {
        let header = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n"
        let cases: [(String, [String])] = [
            ("1,liver,1.5,1.0,0.5\n", ["Dice", "1.5", "between 0.0 and 1.0"]),
            ("1,liver,inf,1.0,0.5\n", ["Dice", "inf"]),
            ("1,liver,-0.1,1.0,0.5\n", ["Dice", "-0.1"]),
            ("1,liver,0.5,-1,0.5\n", ["HausdorffDistance_mm", "-1.0"]),
            ("1,liver,0.5,1.0,-inf\n", ["MeanDistance_mm", "-inf"]),
            ("1,liver,0.5\n", ["3 fields", "expected 5"]),
            ("1,liver,0.5,1,1,9\n", ["6 fields", "expected 5"]),
            ("1,liver,nan,1.0,0.5\n", ["column Dice holds 'nan'"]),
            ("1,liver,0x1p-1,1.0,0.5\n", ["column Dice holds '0x1p-1'"]),
        ]
        for (row, fragments) in cases {
            do {
                _ = try MetricsFile.parse(text: header + "2,liver,0.9,1.0,0.5\n" + row, source: "m.csv")
                XCTFail("accepted \(row)")
            } catch let error as IEError {
                XCTAssertEqual(error.code, .badInput, row)
                for fragment in ["m.csv:3"] + fragments {
                    XCTAssertTrue(error.description.contains(fragment), "\(error.description) lacks \(fragment)")
                }
            }
        }
        // A column named twice would be read from its first occurrence only: refused, naming both.
        XCTAssertThrowsError(try MetricsFile.parse(text: "Patient,Structure,Dice,Dice\n1,liver,0.5,0.9\n", source: "d.csv")) { error in
            XCTAssertTrue("\(error)".contains("d.csv:1: column Dice appears twice (columns 3 and 4)"), "\(error)")
        }
        // A spreadsheet's byte-order mark (and CRLF line ends) are not part of the first column's name.
        let bom = try MetricsFile.parse(text: "\u{FEFF}Patient,Structure,Dice\r\n1,liver,0.5\r\n", source: "bom.csv")
        XCTAssertEqual(bom.records.map(\.patient), ["1"])
        XCTAssertEqual(bom.records.first?.dice, 0.5)
        let across = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,split,mode\n1,liver,91.5,1.0,0.5,0,Test\n"
        XCTAssertEqual(try MetricsFile.parse(text: across).records.first?.dice, 91.5)
        XCTAssertThrowsError(try MetricsFile.parse(text: across.replacingOccurrences(of: "91.5", with: "100.5")))
    }

    func testSingleRowWithInfinityAndNaNStd() throws {
        // One row: std is NaN (empty field), inf stays inf (the lung_l row of InnerEye's PR_BasicModel2Epochs).
        let metrics = try MetricsFile.parse(text: "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n5,lung_l,0.000,inf,inf\n")
        XCTAssertEqual(MetricsAggregates.csv(metrics.records).split(separator: "\n")[1],
                       "lung_l,1.000,0.000,,0.000,0.000,inf,,inf,inf,inf,,inf,inf")
    }

    func testCountIgnoresNaNDiceAndValuesMatchNumpy() throws {
        let dice: [Double] = [0.91, 0.85, .nan, 0.77, 0.88]
        let hd: [Double] = [3.2, 4.1, .nan, 7.5, 2.25]
        var text = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n"
        for i in dice.indices { text += "\(i),bladder,\(dice[i].isNaN ? "" : String(dice[i])),\(hd[i].isNaN ? "" : String(hd[i])),1.5\n" }
        let row = MetricsAggregates.rows(try MetricsFile.parse(text: text).records)[0]
        let ref = numbers(try pythonReference("""
            import numpy as np
            d = np.array(\(pythonList(dice))); h = np.array(\(pythonList(hd)))
            print(np.nanmean(d), np.nanstd(d, ddof=1), np.nanmean(h), np.nanstd(h, ddof=1))
            """))
        XCTAssertEqual(row.count, 4)
        XCTAssertEqual(row.dice.mean, ref[0], accuracy: 1e-12)
        XCTAssertEqual(row.dice.std, ref[1], accuracy: 1e-12)
        XCTAssertEqual(row.hausdorffDistance.mean, ref[2], accuracy: 1e-12)
        XCTAssertEqual(row.hausdorffDistance.std, ref[3], accuracy: 1e-12)
    }

    func testReadsDiceOnlyAndBadValues() throws {
        let file = try MetricsFile.parse(text: "Patient,Structure,Dice\n320,bladder,0.000\n")
        XCTAssertFalse(file.hasHausdorffDistance)
        XCTAssertTrue(file.records[0].hausdorffDistance.isNaN)
        XCTAssertThrowsError(try MetricsFile.parse(text: "Patient,Structure,Dice\n1,a,abc\n", source: "m.csv")) { error in
            let e = error as? IEError
            XCTAssertEqual(e?.code, .badInput)
            XCTAssertEqual(e?.line, 2)
        }
        XCTAssertThrowsError(try MetricsFile.parse(text: "Patient,Dice\n1,0.5\n"))
    }
}

final class StatsAcrossRunsTests: XCTestCase {
    func testBaselineComparisonFileMatchesInnerEyeByteForByte() throws {
        // InnerEye's PR_BasicModel2Epochs: the CURRENT run and baseline "Single" share the metrics; subject 5
        // has 6 dataset rows, so pandas' merged row labels are 0, 6, 12.
        let metrics = try MetricsFile.read(path: StatsFixtures.path("PR_BasicModel2Epochs_metrics.csv"))
        let dataset = try CSVTable.read(path: StatsFixtures.path("PR_TrainEnsemble/dataset_subject5.csv"))
        let inputs = ["CURRENT", "Single"].map {
            MetricsAcrossRuns.Input(split: $0, mode: "Test", metrics: metrics, dataset: dataset)
        }
        XCTAssertEqual(try MetricsAcrossRuns.csv(inputs, withIndex: true),
                       try StatsFixtures.text("PR_BasicModel2Epochs_MetricsAcrossAllRuns.csv"))
    }

    func testDiceTimesHundredUsesPythonRepr() throws {
        let metrics = try MetricsFile.parse(text: "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n007,a,0.666,1.732,\n")
        let csv = try MetricsAcrossRuns.csv([.init(split: "0", mode: "Val", metrics: metrics, dataset: nil)], withIndex: false)
        // Python: 0.666 * 100 == 66.60000000000001; Patient read as int drops the leading zeros.
        XCTAssertEqual(csv, "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,seriesId,institutionId,split,mode\n"
                       + "7,a,66.60000000000001,1.732,,,,0,Val\n")
    }

    func testUnknownSubjectIsAnError() throws {
        let metrics = try MetricsFile.parse(text: "Patient,Structure,Dice\n9,a,0.5\n", source: "m.csv")
        let dataset = try CSVTable.parse("subject,filePath,channel\n1,x.nii.gz,ct\n", source: "dataset.csv")
        XCTAssertThrowsError(try MetricsAcrossRuns.rows(.init(split: "0", mode: "Test", metrics: metrics, dataset: dataset)))
    }

    func testPythonFloatRepr() {
        XCTAssertEqual(pythonFloatRepr(0.0), "0.0")
        XCTAssertEqual(pythonFloatRepr(81.0), "81.0")
        XCTAssertEqual(pythonFloatRepr(0.1 + 0.2), "0.30000000000000004")
        XCTAssertEqual(pythonFloatRepr(1e-05), "1e-05")
        XCTAssertEqual(pythonFloatRepr(1.5e16), "1.5e+16")
        XCTAssertEqual(pythonFloatRepr(.infinity), "inf")
    }
}

final class StatsBreakdownTests: XCTestCase {
    func testResultsBreakdownMatchesInnerEyeFiles() throws {
        // InnerEye's test_create_summary input and expected outputs.
        let file = try MetricsFile.read(path: StatsFixtures.path("MetricsAcrossAllRuns.csv"))
        XCTAssertEqual(ResultsBreakdown.csv(file.records, byStructure: false), try StatsFixtures.text("ResultsByMode.csv"))
        XCTAssertEqual(ResultsBreakdown.csv(file.records, byStructure: true),
                       try StatsFixtures.text("ResultsByModeAndStructure.csv"))
    }
}

import XCTest
import IEImage
@testable import IEEval

/// InnerEye's own expected metrics.csv (Tests/ML/test_data/train_and_test_data/metrics.csv, test_model_test):
/// a model predicting `region` everywhere, scored against id1_region / id2_region (75^3, 1 mm).
final class MetricsInnerEyeDataTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func testAllForegroundPredictionMatchesInnerEyeExpectedMetrics() throws {
        // Foreground counts from the data's README: 210535 (id1) and 210773 (id2) of 421875 voxels.
        let cases: [(file: String, patient: String, foreground: Int, hausdorff: String)] = [
            ("id1_region.nii.gz", "1", 210_535, "1.732"),
            ("id2_region.nii.gz", "2", 210_773, "2.000"),
        ]
        var rows: [MetricsRow] = []
        for c in cases {
            let truth = try NIfTI.read(Self.fixtures + "/" + c.file)
            XCTAssertEqual(truth.count, 421_875)
            let grid = MetricsEvaluation.grid(of: truth)
            let truthMask = try MetricsEvaluation.binaryMask(truth, path: c.file)
            let all = [Bool](repeating: true, count: truth.count)
            let m = SegmentationMetrics.compute(prediction: all, groundTruth: truthMask, grid: grid)
            XCTAssertEqual(m.dice, 2.0 * Double(c.foreground) / Double(421_875 + c.foreground), accuracy: 1e-12)
            XCTAssertEqual(MetricsCSVWriter.format(m.hausdorffDistanceMM), c.hausdorff)
            // The prediction fills the image, so it has no contour: NaN where InnerEye printed 1.8e19.
            XCTAssertTrue(m.meanDistanceMM.isNaN)
            rows.append(MetricsRow(patient: c.patient, structure: "region", metrics: m))
        }
        XCTAssertEqual(MetricsCSVWriter.text(rows: rows), """
            Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm
            1,region,0.666,1.732,
            2,region,0.666,2.000,

            """)
    }

    func testRunOnNIfTIFilesWritesCSVAndPNGThumbnails() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-nifti-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Prediction = id2's ground truth, scored against id1's: the same geometry, different masks.
        let cases = [MetricsCase(patient: "1", structure: "region", predictionPath: Self.fixtures + "/id2_region.nii.gz",
                                 groundTruthPath: Self.fixtures + "/id1_region.nii.gz")]
        let rows = try MetricsEvaluation.run(cases: cases, outputFolder: folder, extras: [.hd95])
        XCTAssertEqual(rows.count, 1)
        XCTAssertGreaterThan(rows[0].metrics.dice, 0)
        XCTAssertLessThan(rows[0].metrics.dice, 1)
        let csv = try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8)
        XCTAssertTrue(csv.hasPrefix("Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,HD95_mm\n1,region,"), csv)
        let thumbnails = try FileManager.default.contentsOfDirectory(atPath: folder + "/thumbnails")
        XCTAssertEqual(thumbnails.count, 1)
        XCTAssertTrue(thumbnails[0].hasPrefix("001_region_slice_"), thumbnails[0])
        let png = try Data(contentsOf: URL(fileURLWithPath: folder + "/thumbnails/" + thumbnails[0]))
        XCTAssertEqual(Array(png.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
    }
}

import XCTest
@testable import IEEval

final class MetricsCSVTests: XCTestCase {
    func testFormatting() {
        XCTAssertEqual(MetricsCSVWriter.format(0.66581), "0.666")
        XCTAssertEqual(MetricsCSVWriter.format(1.7320508), "1.732")
        XCTAssertEqual(MetricsCSVWriter.format(2), "2.000")
        XCTAssertEqual(MetricsCSVWriter.format(0.0005), "0.001")   // printf rounding of the binary value 0.000500000000000000010...
        XCTAssertEqual(MetricsCSVWriter.format(.infinity), "inf")
        XCTAssertEqual(MetricsCSVWriter.format(.nan), "")
    }

    func testHeaderSortingAndEmptyFields() {
        func row(_ patient: String, _ structure: String, _ dice: Double, _ hd: Double, _ msd: Double) -> MetricsRow {
            MetricsRow(patient: patient, structure: structure,
                       metrics: SegmentationMetrics(dice: dice, hausdorffDistanceMM: hd, meanDistanceMM: msd))
        }
        let rows = [
            row("2", "liver", 0.9, 1, 0.5),
            row("1", "Liver", 0.1, 2, 0.25),          // upper case sorts before lower case (code points)
            row("3", "kidney", .nan, .nan, .nan),
            row("1", "kidney", 0.4, 3.5, 0.125),
            row("4", "liver", 0.2, .infinity, .infinity),
            row("5", "kidney", 0.4, 7, 1),             // Dice tie with patient 1: Patient order
        ]
        let expected = """
        Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm
        1,Liver,0.100,2.000,0.250
        1,kidney,0.400,3.500,0.125
        5,kidney,0.400,7.000,1.000
        3,kidney,,,
        4,liver,0.200,inf,inf
        2,liver,0.900,1.000,0.500

        """
        XCTAssertEqual(MetricsCSVWriter.text(rows: rows), expected)
    }

    func testExtraColumnsAndParsing() throws {
        let extras = try ExtraMetric.parseList("hd95, ASSD,nsd@2,nsd@1.5,hd95")
        XCTAssertEqual(extras, [.hd95, .assd, .surfaceDice(toleranceMM: 2), .surfaceDice(toleranceMM: 1.5)])
        XCTAssertEqual(MetricsCSVWriter.header(extras: extras),
                       ["Patient", "Structure", "Dice", "HausdorffDistance_mm", "MeanDistance_mm",
                        "HD95_mm", "ASSD_mm", "SurfaceDice_2mm", "SurfaceDice_1.5mm"])
        XCTAssertEqual(try ExtraMetric.parseList(""), [])
        XCTAssertThrowsError(try ExtraMetric.parseList("hd99")) { error in
            XCTAssertTrue("\(error)".contains("hd95"), "\(error)")
        }
        XCTAssertThrowsError(try ExtraMetric.parseList("nsd@x"))
        let row = MetricsRow(patient: "7", structure: "lung", metrics: SegmentationMetrics(
            dice: 0.5, hausdorffDistanceMM: 3, meanDistanceMM: 1, extras: [2.5, 0.75, 1, .nan]))
        XCTAssertEqual(MetricsCSVWriter.text(rows: [row], extras: extras).split(separator: "\n").last,
                       "7,lung,0.500,3.000,1.000,2.500,0.750,1.000,")
    }

    func testWritesAtomicallyToAFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-csv-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("metrics.csv").path
        let row = MetricsRow(patient: "1", structure: "a", metrics: SegmentationMetrics(dice: 1, hausdorffDistanceMM: 0, meanDistanceMM: 0))
        try MetricsCSVWriter.write(rows: [row], to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8),
                       "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n1,a,1.000,0.000,0.000\n")
    }
}

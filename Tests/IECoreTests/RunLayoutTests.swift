import Foundation
import XCTest
import IECore

/// The run layout of SPEC §9, spelt out here by hand once more as the independent reference.
final class RunLayoutTests: XCTestCase {
    func testEveryPathOfARunFolder() {
        let layout = RunLayout(run: "/r/exp/exp_20260101T000000Z_ab12/")
        let run = "/r/exp/exp_20260101T000000Z_ab12"
        XCTAssertEqual(layout.run, run)
        XCTAssertEqual(layout.runJSON, run + "/run.json")
        XCTAssertEqual(layout.runJSONLock, run + "/.run.json.lock")
        XCTAssertEqual(layout.lock, run + "/.lock")
        XCTAssertEqual(layout.log(tool: "ie-evaluate"), run + "/logs/ie-evaluate.log")
        XCTAssertEqual(layout.splitCSV("val"), run + "/outputs/val_dataset.csv")
        XCTAssertEqual(layout.checkpoint(epoch: 7), run + "/outputs/checkpoints/epoch_007.ckpt")
        XCTAssertEqual(layout.autosave, run + "/outputs/checkpoints/autosave.ckpt")
        XCTAssertEqual(layout.ensembleFolder(epoch: 12), run + "/outputs/checkpoints/ensemble_epoch_012")
        XCTAssertEqual(layout.epochMetrics(mode: "Val"), run + "/outputs/Val/epoch_metrics.csv")
        XCTAssertEqual(layout.metrics(epoch: 100, mode: "Test"), run + "/outputs/epoch_100/Test/metrics.csv")
        XCTAssertEqual(layout.aggregates(epoch: 1, mode: "Val"), run + "/outputs/epoch_001/Val/metrics_aggregates.csv")
        XCTAssertEqual(layout.outliers(epoch: 1, mode: "Val"), run + "/outputs/epoch_001/Val/Val_outliers.txt")
        XCTAssertEqual(layout.crossValResults, run + "/outputs/CrossValResults")
        XCTAssertEqual(layout.reportHTML, run + "/outputs/report.html")
        XCTAssertEqual(RunLayout.subjectFolderName("7"), "007")
        XCTAssertEqual(RunLayout.subjectFolderName("p7"), "p7")
        XCTAssertEqual(RunLayout.epoch(folderName: "epoch_012"), 12)
        XCTAssertNil(RunLayout.epoch(folderName: "ENSEMBLE"))
    }

    func testLocateAcceptsARunOrAnOutputsFolder() throws {
        let folder = NSTemporaryDirectory() + "runlayout-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder + "/outputs/epoch_002", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: folder + "/outputs/epoch_010", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertEqual(RunLayout.locate(folder).outputs, folder + "/outputs")
        XCTAssertEqual(RunLayout.locate(folder + "/outputs").outputs, folder + "/outputs")
        XCTAssertEqual(RunLayout.locate(folder).epochFolders(), [2, 10])
    }

    func testShape3DIndexAndCoordinatesAreInverse() {
        let shape = Shape3D(3, 4, 5)
        XCTAssertEqual(shape.count, 60)
        for i in 0..<shape.count {
            let c = shape.coordinates(i)
            XCTAssertEqual(shape.index(c.z, c.y, c.x), i)
        }
        XCTAssertEqual(shape.coordinates(23), Shape3D(1, 0, 3))
    }
}

/// Folder names of subjects and epochs are Python's `f"{n:03d}"` for any 64-bit integer (issue found by the
/// first-contact audit: `String(format: "%03d")` reads 32 bits on Linux, so subject 4294967297 got subject 1's
/// folder and overwrote its segmentation).
final class ZeroPaddedNameTests: XCTestCase {
    func testMatchesPythonsFormatForLargeAndNegativeIds() {
        let ids = [0, 1, 7, 42, 999, 1000, -1, -12, -123, 2147483647, 2147483648, 3000000000, 4294967297, Int.max, Int.min + 1]
        // What Python prints for each (f"{n:03d}"), written out by hand.
        let python = ["000", "001", "007", "042", "999", "1000", "-01", "-12", "-123", "2147483647", "2147483648", "3000000000", "4294967297", "9223372036854775807", "-9223372036854775807"]
        XCTAssertEqual(ids.map { RunLayout.zeroPadded($0, width: 3) }, python)
        XCTAssertEqual(RunLayout.subjectFolderName("4294967297"), "4294967297")
        XCTAssertNotEqual(RunLayout.subjectFolderName("4294967297"), RunLayout.subjectFolderName("1"))
        XCTAssertEqual(RunLayout.epochFolderName(99999999999), "epoch_99999999999")
    }
}

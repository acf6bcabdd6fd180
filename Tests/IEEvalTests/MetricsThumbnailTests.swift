import XCTest
import IECore
import IEImage
@testable import IEEval

final class MetricsThumbnailTests: XCTestCase {
    func testLargestSliceAndColours() {
        // 4 slices of 6x8; ground truth is a 2x3 block on z = 1 and a 4x4 block on z = 2; prediction a 4x4 block
        // one pixel to the right on z = 2.
        let grid = VoxelGrid(shape: (4, 6, 8))
        let truth = metricsMask(grid) { z, y, x in
            (z == 1 && (1..<3).contains(y) && (1..<4).contains(x)) || (z == 2 && (1..<5).contains(y) && (1..<5).contains(x))
        }
        let prediction = metricsMask(grid) { z, y, x in z == 2 && (1..<5).contains(y) && (2..<6).contains(x) }
        XCTAssertEqual(MetricsThumbnail.largestSlice(groundTruth: truth, prediction: prediction, grid: grid), 2)
        XCTAssertEqual(MetricsThumbnail.largestSlice(groundTruth: nil, prediction: prediction, grid: grid), 2)
        XCTAssertNil(MetricsThumbnail.largestSlice(groundTruth: [Bool](repeating: false, count: grid.count),
                                                   prediction: [Bool](repeating: false, count: grid.count), grid: grid))
        // Image: a ramp of values 0..47 per slice (not CT), so grey is stretched between the 1st and 99th percentile.
        let image = (0..<grid.count).map { Float($0 % 48) }
        let picture = MetricsThumbnail.render(image: image, groundTruth: truth, prediction: prediction, grid: grid, z: 2,
                                              minimumSize: 16)
        XCTAssertEqual(picture.width, 16)   // 8 pixels enlarged twice
        XCTAssertEqual(picture.height, 12)
        func at(_ y: Int, _ x: Int) -> (UInt8, UInt8, UInt8) { let p = picture.pixel(x: 2 * x, y: 2 * y); return (p.r, p.g, p.b) }
        XCTAssertTrue(at(2, 1) == (255, 0, 0))       // left edge of the truth only
        XCTAssertTrue(at(2, 5) == (0, 0, 255))       // right edge of the prediction only
        XCTAssertTrue(at(1, 2) == (255, 0, 255))     // top edges of both
        XCTAssertTrue(at(2, 3) == (at(2, 3).0, at(2, 3).0, at(2, 3).0))   // interior: grey
        // Grey: 1st percentile of 0..47 is 0, 99th is 46; pixel (y 0, x 7) has value 7 -> 7/46*255 = 38.8 -> 39.
        XCTAssertTrue(at(0, 7) == (39, 39, 39))
        XCTAssertEqual(MetricsThumbnail.fileName(subject: "7", structure: "lung_l", z: 12), "007_lung_l_slice_012.png")
    }

    func testCTWindow() {
        // Level 40, width 400: -160 -> 0, 240 -> 255, 40 -> 128 (127.5 rounded), -1000 clipped to 0.
        XCTAssertEqual(MetricsThumbnail.greyLevels([-1000, -160, 40, 240, 3000]), [0, 0, 128, 255, 255])
    }

    func testRunWritesSortedCSVAndThumbnails() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-run-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let shape = (z: 3, y: 4, x: 5)
        func volume(_ inside: (Int, Int, Int) -> Bool) -> Volume<Float> {
            let grid = VoxelGrid(shape: shape, spacing: (2, 1, 1))
            return Volume(shape: shape, spacing: (2, 1, 1), data: metricsMask(grid, inside).map { $0 ? 1 : 0 })
        }
        let files: [String: Volume<Float>] = [
            "p1": volume { z, _, _ in z == 1 }, "g1": volume { z, _, _ in z >= 1 },
            "p2": volume { z, _, _ in z == 1 }, "g2": volume { z, _, _ in z == 1 },
            "img": Volume(shape: shape, spacing: (2, 1, 1), data: (0..<60).map(Float.init)),
            "bad": Volume(shape: shape, spacing: (2, 1, 1), data: [Float](repeating: 2, count: 60)),
        ]
        let load: MetricsEvaluation.VolumeLoader = { path in
            guard let v = files[path] else { throw IEError.badInput("no such file", file: path) }
            return v
        }
        var written: [String] = []
        let cases = [
            MetricsCase(patient: "1", structure: "s", predictionPath: "p1", groundTruthPath: "g1", imagePath: "img"),
            MetricsCase(patient: "2", structure: "s", predictionPath: "p2", groundTruthPath: "g2", imagePath: "img"),
            MetricsCase(patient: "3", structure: "s", predictionPath: "p2", groundTruthPath: nil),
        ]
        try MetricsEvaluation.run(cases: cases, outputFolder: folder, load: load) { picture, path in
            XCTAssertEqual(picture.width, 5 * 52)
            written.append(String(path.dropFirst(folder.count)))
        }
        // Patient 1: Dice 2*20/(20+40) = 0.667; all-voxel HD 2 mm (z = 2 to z = 1). The image border is no boundary,
        // so B's contour is its z = 1 layer (next to z = 0), which is A's contour too: MSD 0.
        // Patient 3: missing ground truth, all NaN, sorted last.
        XCTAssertEqual(try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8), """
            Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm
            1,s,0.667,2.000,0.000
            2,s,1.000,0.000,0.000
            3,s,,,

            """)
        XCTAssertEqual(written, ["/thumbnails/001_s_slice_001.png", "/thumbnails/002_s_slice_001.png",
                                 "/thumbnails/003_s_slice_001.png"])
        XCTAssertThrowsError(try MetricsEvaluation.run(
            cases: [MetricsCase(patient: "1", structure: "s", predictionPath: "bad", groundTruthPath: "g1")],
            outputFolder: folder, load: load)) { error in
            XCTAssertTrue("\(error)".hasPrefix("bad: voxel 0 has value 2.0, expected a binary mask"), "\(error)")
        }
    }
}

import XCTest
import IECore
import IEImage
import IETestSupport
@testable import IEEval

final class MetricsThumbnailTests: XCTestCase {
    func testLargestSliceAndColours() {
        // 4 slices of 6x8; ground truth is a 2x3 block on z = 1 and a 4x4 block on z = 2; prediction a 4x4 block
        // one pixel to the right on z = 2.
        let grid = VoxelGrid(shape: Shape3D(4, 6, 8))
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
        let shape = Shape3D(z: 3, y: 4, x: 5)
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
            XCTAssertTrue("\(error)".hasPrefix("bad: voxel (z=0, y=0, x=0) has value 2.0, expected a binary mask"), "\(error)")
        }
    }

    /// Subjects spread over threads: the same rows, metrics.csv and thumbnails as on one thread; a bad mask fails.
    func testRunOnSeveralThreads() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-threads-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let shape = Shape3D(z: 4, y: 6, x: 5), grid = VoxelGrid(shape: shape, spacing: (2, 0.5, 1))
        func path(_ kind: String, _ subject: Int, _ structure: Int) -> String { "\(kind)\(subject)_\(structure)" }
        var files: [String: Volume<Float>] = ["img": Volume(shape: shape, spacing: (2, 0.5, 1), data: (0..<120).map(Float.init))]
        var cases: [MetricsCase] = []
        for subject in 1...7 {
            for structure in 1...2 {
                for (kind, shift) in [("p", subject % 3), ("g", structure)] {
                    files[path(kind, subject, structure)] = Volume(shape: shape, spacing: (2, 0.5, 1), data: metricsMask(grid) { z, y, x in
                        z >= shift && y + x <= 2 + subject && (x + structure) % 4 != 0 }.map { $0 ? 1 : 0 })
                }
                cases.append(MetricsCase(patient: "\(subject)", structure: "s\(structure)", predictionPath: path("p", subject, structure),
                                         groundTruthPath: subject == 5 ? nil : path("g", subject, structure), imagePath: "img"))
            }
        }
        let load: MetricsEvaluation.VolumeLoader = { name in
            guard let v = files[name] else { throw IEError.badInput("no such file", file: name) }
            return v
        }
        var outputs: [(rows: [MetricsRow], csv: String, pictures: Set<String>)] = []
        for threads in [1, 3] {
            let folder = root + "/\(threads)"
            var pictures = Set<String>()
            let lock = NSLock()
            let rows = try MetricsEvaluation.run(cases: cases, outputFolder: folder, load: load, writePNG: { picture, path in
                lock.lock()
                pictures.insert(String(path.dropFirst(folder.count)) + " \(picture.pixels.hashValue)")
                lock.unlock()
            }, threads: threads)
            outputs.append((rows, try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8), pictures))
        }
        XCTAssertEqual(outputs[0].rows.map(\.structure).count, 14)
        XCTAssertEqual(outputs[0].rows, outputs[1].rows)
        XCTAssertEqual(outputs[0].csv, outputs[1].csv)
        XCTAssertEqual(outputs[0].pictures, outputs[1].pictures)
        XCTAssertEqual(outputs[0].pictures.count, 14)
        files[path("g", 4, 2)]?.data[3] = 0.5
        XCTAssertThrowsError(try MetricsEvaluation.run(cases: cases, outputFolder: root + "/bad", load: load, writePNG: nil,
                                                       threads: 3)) { error in
            XCTAssertTrue("\(error)".hasPrefix("g4_2: voxel (z=0, y=0, x=3) has value 0.5"), "\(error)")
        }
    }

    /// The slice with the largest predicted area is shown, not the largest ground-truth slice; ties take the lowest
    /// z; an empty prediction falls back to the largest ground-truth slice. The PNG is read back by PIL.
    func testPredictedMaximalSliceWithBothContours() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("thumbs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let shape = Shape3D(z: 5, y: 8, x: 10)
        let grid = VoxelGrid(shape: shape)
        typealias Box = (z: Int, y: ClosedRange<Int>, x: ClosedRange<Int>)
        func volume(_ boxes: [Box]) -> Volume<Float> {
            Volume(shape: shape, spacing: (1, 1, 1), data: metricsMask(grid) { z, y, x in
                boxes.contains { $0.z == z && $0.y.contains(y) && $0.x.contains(x) }
            }.map { $0 ? 1 : 0 })
        }
        // Ground truth largest on z = 1 (48 voxels); prediction largest on z = 3 and z = 4 (20 voxels each).
        let truth: [Box] = [(1, 1...6, 1...8), (3, 2...4, 2...4)]
        let prediction: [Box] = [(1, 1...2, 1...2), (3, 2...5, 3...7), (4, 2...5, 3...7)]
        let files = ["truth": volume(truth), "prediction": volume(prediction), "empty": volume([])]
        let load: MetricsEvaluation.VolumeLoader = { path in
            guard let v = files[path] else { throw IEError.badInput("no such file", file: path) }
            return v
        }
        try MetricsEvaluation.run(cases: [
            MetricsCase(patient: "1", structure: "s", predictionPath: "prediction", groundTruthPath: "truth"),
            MetricsCase(patient: "2", structure: "s", predictionPath: "empty", groundTruthPath: "truth"),
        ], outputFolder: folder, load: load)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder + "/thumbnails").sorted(),
                       ["001_s_slice_003.png", "002_s_slice_001.png"])
        // Expected colours on z = 3 from the boxes' borders: R truth only, B prediction only, M both, G grey.
        func border(_ boxes: [Box], _ y: Int, _ x: Int) -> Bool {
            boxes.contains { $0.z == 3 && $0.y.contains(y) && $0.x.contains(x)
                && (y == $0.y.lowerBound || y == $0.y.upperBound || x == $0.x.lowerBound || x == $0.x.upperBound) }
        }
        let expected = (0..<shape.y).map { y in
            String((0..<shape.x).map { x -> Character in
                switch (border(truth, y, x), border(prediction, y, x)) {
                case (true, true): return "M"
                case (true, false): return "R"
                case (false, true): return "B"
                case (false, false): return "G"
                }
            })
        }.joined(separator: "\n")
        let decoded = try PythonOracle.run("""
            import sys
            from PIL import Image
            image = Image.open(sys.argv[1]).convert('RGB')
            scale = image.width // \(shape.x)
            assert image.size == (\(shape.x) * scale, \(shape.y) * scale), image.size
            names = {(255, 0, 0): 'R', (0, 0, 255): 'B', (255, 0, 255): 'M'}
            for y in range(\(shape.y)):
                row = ''
                for x in range(\(shape.x)):
                    colours = {image.getpixel((x * scale + dx, y * scale + dy)) for dx in range(scale) for dy in range(scale)}
                    assert len(colours) == 1, colours
                    c = colours.pop()
                    row += names.get(c, 'G' if c[0] == c[1] == c[2] else '?')
                print(row)
            """, arguments: [folder + "/thumbnails/001_s_slice_003.png"])
        XCTAssertEqual(decoded.trimmingCharacters(in: .whitespacesAndNewlines), expected)
        XCTAssertTrue(expected.contains("M") && expected.contains("R") && expected.contains("B"))
    }
}

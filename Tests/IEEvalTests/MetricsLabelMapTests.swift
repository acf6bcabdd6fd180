import XCTest
import IECore
import IEImage
import IETestSupport
@testable import IEEval

/// `ie-metrics labels`: every label of a prediction label map against a ground-truth label map, each row checked
/// against SimpleITK called InnerEye's way on (prediction == L, ground truth == L), the masks split by the oracle
/// from the files it reads itself.
final class MetricsLabelMapTests: XCTestCase {
    /// Reads both label maps with SimpleITK, scores every non-zero label of either map and the labels of argv[3]
    /// (comma-separated), ascending: one line `label dice hd msd` each.
    static let oracle = MetricsSimpleITKTests.oracleFunctions + """
    pred_img, truth_img = sitk.ReadImage(sys.argv[1]), sitk.ReadImage(sys.argv[2])
    pred, truth = sitk.GetArrayFromImage(pred_img), sitk.GetArrayFromImage(truth_img)
    spacing = tuple(reversed(truth_img.GetSpacing()))
    labels = (set(np.unique(pred).tolist()) | set(np.unique(truth).tolist()) | {int(v) for v in sys.argv[3].split(",")}) - {0}
    for label in sorted(labels):
        print(label, " ".join(repr(float(v)) for v in metrics(pred == label, truth == label, spacing)))
    """

    var folder = ""

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-labels-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// Ground truth: labels 1 (box touching the z border), 2 (ellipsoid), 4 (thin diagonal line) and 7 (a blob
    /// the prediction misses). Prediction: 1 shifted, 2 shrunk with noise, 4 moved, 9 (absent from the ground
    /// truth), and label 2 written over part of label 1. Anisotropic spacing.
    static func labelMaps() -> (prediction: Volume<Float>, truth: Volume<Float>) {
        let shape = Shape3D(9, 22, 19), spacing = (z: 2.5, y: 0.8, x: 1.1)
        var random = MetricsTestRandom(seed: 14_4)
        func labelVolume(_ label: (Int, Int, Int) -> Int) -> Volume<Float> {
            var data = [Float](repeating: 0, count: shape.count)
            for z in 0..<shape.z { for y in 0..<shape.y { for x in 0..<shape.x { data[shape.index(z, y, x)] = Float(label(z, y, x)) } } }
            return Volume(shape: shape, spacing: spacing, data: data)
        }
        func inEllipsoid(_ z: Int, _ y: Int, _ x: Int, _ c: (Double, Double, Double), _ r: (Double, Double, Double)) -> Bool {
            let dz = (Double(z) - c.0) / r.0, dy = (Double(y) - c.1) / r.1, dx = (Double(x) - c.2) / r.2
            return dz * dz + dy * dy + dx * dx <= 1
        }
        let truth = labelVolume { z, y, x in
            if z <= 3 && (2...9).contains(y) && (3...8).contains(x) { return 1 }
            if inEllipsoid(z, y, x, (5, 14, 12), (3, 6, 5)) { return 2 }
            if z == 7 && y - 2 == x && x < 8 { return 4 }
            if (6...7).contains(z) && (17...19).contains(y) && (1...3).contains(x) { return 7 }
            return 0
        }
        let noise = (0..<shape.count).map { _ in random.unitDouble() < 0.04 }
        let prediction = labelVolume { z, y, x in
            if inEllipsoid(z, y, x, (5, 14, 12), (2.5, 5, 4.5)) != noise[shape.index(z, y, x)] && y > 4 { return 2 }
            if z <= 4 && (3...10).contains(y) && (3...9).contains(x) { return 1 }
            if z == 6 && y - 3 == x && x < 7 { return 4 }
            if z == 8 && y == 0 && x >= 15 { return 9 }
            return 0
        }
        return (prediction, truth)
    }

    func write(_ volume: Volume<Float>, _ name: String) throws -> String {
        let path = folder + "/" + name
        try NIfTI.write(volume, to: path, datatype: .uint16)
        return path
    }

    func testEveryLabelAgainstSimpleITK() throws {
        let maps = Self.labelMaps()
        let predictionPath = try write(maps.prediction, "prediction.nii.gz"), truthPath = try write(maps.truth, "truth.nii.gz")
        // Label 12 is in neither map: named (as with --names) it is scored as empty.
        let rows = try MetricsEvaluation.evaluateLabelMaps(
            predictionPath: predictionPath, groundTruthPath: truthPath, selection: .present(including: [12]),
            names: [12: "absent", 2: "ellipsoid"], patient: "3", threads: 1)
        let output = try PythonOracle.run(Self.oracle, arguments: [predictionPath, truthPath, "12"])
        let lines = output.split(separator: "\n")
        XCTAssertEqual(rows.map(\.structure), ["1", "ellipsoid", "4", "7", "9", "absent"])
        XCTAssertEqual(lines.count, rows.count)
        for (row, line) in zip(rows, lines) {
            let fields = line.split(separator: " ").map { Double($0) ?? .nan }
            XCTAssertEqual(row.patient, "3")
            let message = "label \(Int(fields[0])) (\(row.structure))"
            MetricsSimpleITKTests.assertClose(row.metrics.dice, fields[1], message + " Dice")
            MetricsSimpleITKTests.assertClose(row.metrics.hausdorffDistanceMM, fields[2], message + " Hausdorff")
            MetricsSimpleITKTests.assertClose(row.metrics.meanDistanceMM, fields[3], message + " MeanDistance")
        }
        // The cases the test is about, so that it cannot pass vacuously.
        XCTAssertEqual(rows[3].metrics.dice, 0)                      // 7: missing in the prediction
        XCTAssertEqual(rows[4].metrics.hausdorffDistanceMM, .infinity) // 9: absent from the ground truth
        XCTAssertTrue(rows[5].metrics.dice.isNaN)                    // 12: absent from both
        XCTAssertTrue(rows[0...1].allSatisfy { $0.metrics.dice > 0.2 && $0.metrics.dice < 1 && $0.metrics.meanDistanceMM > 0 }, "\(rows)")
        XCTAssertTrue(rows[2].metrics.dice == 0 && rows[2].metrics.hausdorffDistanceMM.isFinite, "\(rows[2])") // 4: disjoint lines
    }

    func testSameValuesOnOneAndSeveralThreadsAndAsBinaryMasks() throws {
        let maps = Self.labelMaps()
        let prediction = try LabelMap(maps.prediction, path: "p"), truth = try LabelMap(maps.truth, path: "t")
        let extras: [ExtraMetric] = [.hd95, .surfaceDice(toleranceMM: 1.5)]
        let one = LabelMapMetrics.compute(prediction: prediction, groundTruth: truth, selection: .labels([7, 1, 2, 12, 4, 9]),
                                          extras: extras, threads: 1)
        XCTAssertEqual(one.map(\.label), [7, 1, 2, 12, 4, 9])
        for threads in [2, 3] {
            let several = LabelMapMetrics.compute(prediction: prediction, groundTruth: truth,
                                                  selection: .labels([7, 1, 2, 12, 4, 9]), extras: extras, threads: threads)
            XCTAssertEqual(several.map(\.label), one.map(\.label))
            XCTAssertEqual(several.map(\.metrics), one.map(\.metrics), "\(threads) threads")
        }
        // The per-label boxes give what the whole-image binary masks give.
        for (label, metrics) in one {
            let a = prediction.labels.map { Int($0) == label }, b = truth.labels.map { Int($0) == label }
            XCTAssertEqual(metrics, SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: truth.grid, extras: extras),
                           "label \(label)")
        }
    }

    func testBadInputs() throws {
        let maps = Self.labelMaps()
        var fractional = maps.prediction
        fractional.data[40] = 1.5
        XCTAssertThrowsError(try LabelMap(fractional, path: "p.nii.gz")) { error in
            XCTAssertTrue("\(error)".contains("p.nii.gz") && "\(error)".contains("voxel (z=0, y=2, x=2) has value 1.5"), "\(error)")
        }
        var negative = maps.truth
        negative.data[7] = -2
        XCTAssertThrowsError(try LabelMap(negative, path: "t.nii.gz"))
        negative.data[7] = .nan
        XCTAssertThrowsError(try LabelMap(negative, path: "t.nii.gz"))

        let truthPath = try write(maps.truth, "truth.nii.gz")
        let smaller = Volume<Float>(shape: Shape3D(9, 22, 18), repeating: 0, spacing: maps.truth.spacing)
        let other = Volume<Float>(shape: maps.truth.shape, repeating: 1, spacing: (2.5, 0.8, 1.0))
        for (volume, name) in [(smaller, "smaller.nii.gz"), (other, "spacing.nii.gz")] {
            let path = try write(volume, name)
            XCTAssertThrowsError(try MetricsEvaluation.evaluateLabelMaps(
                predictionPath: path, groundTruthPath: truthPath, selection: .labels([1]), patient: "1", threads: 2)) { error in
                XCTAssertTrue("\(error)".contains(name), "\(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        XCTAssertEqual(try LabelNames.parse("1 Precentral_L 2001\r\n\r\n116 Vermis_10 9170\r\n", path: "n.txt"),
                       [1: "Precentral_L", 116: "Vermis_10"])
        XCTAssertThrowsError(try LabelNames.parse("1 a\nx b\n", path: "n.txt")) { error in
            XCTAssertTrue("\(error)".hasPrefix("n.txt:2: "), "\(error)")
        }
        XCTAssertThrowsError(try LabelNames.parse("1 a\n1 b\n", path: "n.txt"))
    }
}

import IECore
import XCTest
@testable import IETrain

final class SlidingWindowTests: XCTestCase {
    func testPatchStartsIncludeAFlushLastPatch() {
        XCTAssertEqual(SlidingWindow.starts(length: 10, patch: 4, stride: 3), [0, 3, 6])
        XCTAssertEqual(SlidingWindow.starts(length: 11, patch: 4, stride: 3), [0, 3, 6, 7])
        XCTAssertEqual(SlidingWindow.starts(length: 16, patch: 16, stride: 16), [0])
        XCTAssertEqual(SlidingWindow.starts(length: 48, patch: 32, stride: 32), [0, 16])
    }

    func testPaddedShapeIsAMultipleOf16AndAtLeastOnePatch() throws {
        let w = try SlidingWindow(patch: Shape3D(32, 16, 16), classCount: 2)
        XCTAssertEqual(w.paddedShape(Shape3D(19, 33, 16)), Shape3D(32, 48, 16))
    }

    /// A per-voxel "network": class 1 = sigmoid(3 * (channel0 - channel1)), class 0 = 1 - class 1.
    static func perVoxel(_ batch: [Float], count: Int, patch: Shape3D, channels: Int = 2) -> [Float] {
        let p = patch.count
        var out = [Float](repeating: 0, count: count * 2 * p)
        for b in 0..<count {
            for i in 0..<p {
                let v = batch[(b * channels) * p + i] - batch[(b * channels + 1) * p + i]
                let s = 1 / (1 + exp(-3 * v))
                out[(b * 2) * p + i] = 1 - s
                out[(b * 2 + 1) * p + i] = s
            }
        }
        return out
    }

    func testStitchedOutputEqualsThePerVoxelFunction() throws {
        let shape = Shape3D(19, 23, 29)   // no axis a multiple of the patch or of 16
        let image = testValues(2 * shape.count, seed: 5, range: -1...1)
        let n = shape.count
        let configurations: [(Shape3D, Shape3D, SlidingWindow.Weighting, [[Int]], PaddingMode)] = [
            (Shape3D(16, 16, 16), Shape3D(16, 16, 16), .uniform, [[]], .edge),
            (Shape3D(16, 16, 16), Shape3D(8, 5, 11), .uniform, [[]], .zero),
            (Shape3D(16, 32, 16), Shape3D(8, 16, 8), .gaussian, [[]], .edge),
            (Shape3D(16, 16, 16), Shape3D(8, 8, 8), .gaussian, SlidingWindow.allMirrorings, .reflect),
        ]
        for (patch, stride, weighting, mirrorings, mode) in configurations {
            let window = try SlidingWindow(patch: patch, stride: stride, classCount: 2, batchSize: 3,
                                           paddingMode: mode, weighting: weighting, mirrorings: mirrorings)
            var calls = 0
            let out = try window.run(image: image, channels: 2, shape: shape) { batch, count, p in
                XCTAssertLessThanOrEqual(count, 3)
                XCTAssertEqual(batch.count, count * 2 * p.count)
                calls += 1
                return SlidingWindowTests.perVoxel(batch, count: count, patch: p)
            }
            var expected = [Double](repeating: 0, count: 2 * n)
            for i in 0..<n {
                let s = 1 / (1 + exp(-3 * Double(image[i] - image[n + i])))
                expected[i] = 1 - s; expected[n + i] = s
            }
            assertClose(out, expected, tolerance: 2e-6, "patch \(patch) stride \(stride) \(weighting) \(mirrorings.count) mirrorings")
            XCTAssertGreaterThan(calls, 1)
        }
    }

    func testOverlappingPatchesAreAveragedUniformly() throws {
        // Shape (16, 16, 40): padded x = 48, offset (48 - 40 + 1) / 2 = 4; x starts 0, 8, 16, 24, 32.
        // Patch j (in call order) predicts the constant v_j = 0.1 * (j + 1) for class 1 everywhere.
        let shape = Shape3D(16, 16, 40)
        let window = try SlidingWindow(patch: Shape3D(16, 16, 16), stride: Shape3D(16, 16, 8), classCount: 2, batchSize: 2)
        var seen = 0
        let out = try window.run(image: [Float](repeating: 0, count: shape.count), channels: 1, shape: shape) { _, count, p in
            var o = [Float]()
            for _ in 0..<count {
                seen += 1
                let v = Float(seen) * 0.1
                o += [Float](repeating: 1 - v, count: p.count) + [Float](repeating: v, count: p.count)
            }
            return o
        }
        XCTAssertEqual(seen, 5)
        let n = shape.count
        for x in 0..<40 {
            let px = x + 4
            let covering = (0..<5).filter { 8 * $0 <= px && px < 8 * $0 + 16 }
            let mean = covering.map { 0.1 * Double($0 + 1) }.reduce(0, +) / Double(covering.count)
            XCTAssertEqual(Double(out[n + shape.index(7, 3, x)]), mean, accuracy: 1e-6, "x = \(x)")
            XCTAssertEqual(Double(out[shape.index(7, 3, x)]), 1 - mean, accuracy: 1e-6)
        }
    }

    func testGaussianWeightsPeakAtTheCentreAndAreSymmetric() throws {
        let w = try SlidingWindow(patch: Shape3D(16, 16, 16), classCount: 2, weighting: .gaussian).weights()
        let s = Shape3D(16, 16, 16)
        XCTAssertEqual(w[s.index(8, 8, 8)], 1)
        XCTAssertEqual(w.max(), 1)
        // sigma = 16 / 8 = 2: one voxel off-centre along x is exp(-1/8).
        XCTAssertEqual(Double(w[s.index(8, 8, 9)]), exp(-1.0 / 8), accuracy: 1e-6)
        XCTAssertEqual(w[s.index(8, 5, 8)], w[s.index(8, 11, 8)])
        XCTAssertGreaterThan(w[s.index(0, 0, 0)], 0)
    }

    func testMirrorIsAnInvolutionAndFlipsTheRightAxis() throws {
        let w = try SlidingWindow(patch: Shape3D(2, 2, 3), classCount: 2)
        let data = (0..<12).map(Float.init)
        XCTAssertEqual(w.mirror(data, volumes: 1, axes: [2]), [2, 1, 0, 5, 4, 3, 8, 7, 6, 11, 10, 9])
        XCTAssertEqual(w.mirror(data, volumes: 1, axes: [0]), [6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 4, 5])
        XCTAssertEqual(w.mirror(w.mirror(data, volumes: 1, axes: [0, 1, 2]), volumes: 1, axes: [0, 1, 2]), data)
    }

    func testWrongNetworkOutputSizeIsAnError() throws {
        let w = try SlidingWindow(patch: Shape3D(16, 16, 16), classCount: 3)
        XCTAssertThrowsError(try w.run(image: [Float](repeating: 0, count: 16 * 16 * 16), channels: 1,
                                       shape: Shape3D(16, 16, 16)) { _, count, p in [Float](repeating: 0, count: count * 2 * p.count) })
        XCTAssertThrowsError(try SlidingWindow(patch: Shape3D(16, 16, 16), stride: Shape3D(17, 16, 16), classCount: 2))
    }
}

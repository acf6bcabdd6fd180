import XCTest
import IECore
@testable import IEEval

final class MetricsDistanceTransformTests: XCTestCase {
    func testMatchesBruteForceOnRandomAnisotropicMasks() {
        var random = MetricsTestRandom(seed: 7)
        for trial in 0..<40 {
            let grid = VoxelGrid(shape: Shape3D(random.int(1...7), random.int(1...7), random.int(1...7)),
                                 spacing: (0.5 + 3 * random.unitDouble(), 0.3 + random.unitDouble(), 0.3 + 2 * random.unitDouble()))
            let density = [0.02, 0.1, 0.5, 0.9][trial % 4]
            let feature = (0..<grid.count).map { _ in random.unitDouble() < density }
            let fast = DistanceTransform.squaredDistance(to: feature, grid: grid)
            let slow = BruteForceMetrics.edt(feature, grid)
            for i in 0..<grid.count {
                if slow[i].isInfinite {
                    XCTAssertTrue(fast[i].isInfinite, "trial \(trial) voxel \(i)")
                } else {
                    XCTAssertEqual(fast[i], slow[i], accuracy: 1e-9 * max(1, slow[i]), "trial \(trial) voxel \(i) grid \(grid)")
                }
            }
        }
    }

    func testSingleFeatureGivesExactAnisotropicDistances() {
        let grid = VoxelGrid(shape: Shape3D(4, 5, 6), spacing: (3, 0.8, 0.5))
        let feature = metricsMask(grid) { z, y, x in z == 1 && y == 2 && x == 3 }
        let d = DistanceTransform.distance(to: feature, grid: grid)
        // (3, 4, 5): dz = 2 * 3 = 6 mm, dy = 2 * 0.8 = 1.6 mm, dx = 2 * 0.5 = 1 mm.
        XCTAssertEqual(d[grid.index(3, 4, 5)], (36 + 2.56 + 1).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(d[grid.index(1, 2, 3)], 0)
        XCTAssertEqual(d[grid.index(0, 2, 3)], 3, accuracy: 1e-12)
        XCTAssertEqual(d[grid.index(1, 2, 0)], 1.5, accuracy: 1e-12)
    }

    func testNoFeatureIsInfiniteEverywhere() {
        let grid = VoxelGrid(shape: Shape3D(2, 3, 4))
        let d = DistanceTransform.squaredDistance(to: [Bool](repeating: false, count: grid.count), grid: grid)
        XCTAssertTrue(d.allSatisfy { $0 == .infinity })
    }

    func testMatchesScipyOnLargerMask() throws {
        // Independent reference: scipy.ndimage.distance_transform_edt with sampling, on a 20x30x25 random mask.
        var random = MetricsTestRandom(seed: 11)
        let grid = VoxelGrid(shape: Shape3D(20, 30, 25), spacing: (2.5, 0.7, 1.1))
        let feature = (0..<grid.count).map { _ in random.unitDouble() < 0.01 }
        let script = """
        import sys, numpy as np
        from scipy import ndimage
        m = np.array([c == '1' for c in sys.stdin.read().strip()]).reshape(20, 30, 25)
        d = ndimage.distance_transform_edt(~m, sampling=(2.5, 0.7, 1.1))
        print(' '.join(repr(float(v)) for v in d.ravel()))
        """
        let output = try metricsRunPython(script, input: feature.map { $0 ? "1" : "0" }.joined())
        let reference = output.split(separator: " ").map { Double($0.trimmingCharacters(in: .whitespacesAndNewlines))! }
        XCTAssertEqual(reference.count, grid.count)
        let ours = DistanceTransform.distance(to: feature, grid: grid)
        var worst = 0.0
        for i in 0..<grid.count { worst = max(worst, abs(ours[i] - reference[i])) }
        XCTAssertLessThan(worst, 1e-9)
    }
}

import XCTest
import IECore
@testable import IEEval

/// Cross-check of all metrics on a mid-sized case against an independent numpy/scipy computation:
/// SPEC contour = mask & ~binary_erosion(mask, border_value=1) (outside the image counts as inside, so the border
/// is no boundary) sampled at the distance to the 26-neighbour boundary (erosion by the 3x3x3 cube), MONAI edge = mask ^ binary_erosion(mask) (border_value 0), distances from
/// scipy.ndimage.distance_transform_edt with sampling, percentiles from numpy.percentile.
final class MetricsScipyReferenceTests: XCTestCase {
    func testAllMetricsMatchScipyOnNoisyBlobsTouchingTheBorder() throws {
        let grid = VoxelGrid(shape: Shape3D(12, 30, 26), spacing: (3, 0.8, 0.9))
        var random = MetricsTestRandom(seed: 99)
        // Ellipsoids that reach the image border (z = 0 and x = 25), with a few flipped voxels.
        func blob(_ cz: Double, _ cy: Double, _ cx: Double, _ r: Double) -> [Bool] {
            var m = metricsMask(grid) { z, y, x in
                let dz = (Double(z) - cz) * 3, dy = (Double(y) - cy) * 0.8, dx = (Double(x) - cx) * 0.9
                return dz * dz + dy * dy + dx * dx <= r * r
            }
            for i in m.indices where random.unitDouble() < 0.01 { m[i].toggle() }
            return m
        }
        let a = blob(2, 14, 20, 11), b = blob(3, 16, 18, 12)
        let text = (a + b).map { $0 ? "1" : "0" }.joined()
        let script = """
        import sys, numpy as np
        from scipy import ndimage
        s = sys.stdin.read().strip()
        n = 12 * 30 * 26
        a = np.array([c == '1' for c in s[:n]]).reshape(12, 30, 26)
        b = np.array([c == '1' for c in s[n:]]).reshape(12, 30, 26)
        sp = (3, 0.8, 0.9)
        edt = lambda f: ndimage.distance_transform_edt(~f, sampling=sp)
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        hd = max(edt(b)[a].max(), edt(a)[b].max())
        ca = a & ~ndimage.binary_erosion(a, border_value=1)
        cb = b & ~ndimage.binary_erosion(b, border_value=1)
        cube = np.ones((3, 3, 3), bool)
        ba = a & ~ndimage.binary_erosion(a, structure=cube, border_value=1)
        bb = b & ~ndimage.binary_erosion(b, structure=cube, border_value=1)
        msd = np.concatenate([edt(bb)[ca], edt(ba)[cb]]).mean()
        ea = a ^ ndimage.binary_erosion(a)
        eb = b ^ ndimage.binary_erosion(b)
        fa, fb = edt(eb)[ea], edt(ea)[eb]
        hd95 = max(np.percentile(fa, 95), np.percentile(fb, 95))
        both = np.concatenate([fa, fb])
        assd = both.mean()
        nsd = (both <= 2.0).sum() / both.size
        print(' '.join(repr(float(v)) for v in [dice, hd, msd, hd95, assd, nsd]))
        """
        let output = try metricsRunPython(script, input: text)
        let reference = output.split(separator: " ").map { Double($0.trimmingCharacters(in: .whitespacesAndNewlines))! }
        let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid,
                                            extras: [.hd95, .assd, .surfaceDice(toleranceMM: 2)])
        let ours = [m.dice, m.hausdorffDistanceMM, m.meanDistanceMM] + m.extras
        XCTAssertEqual(reference.count, 6)
        for (k, (x, y)) in zip(ours, reference).enumerated() {
            XCTAssertEqual(x, y, accuracy: 1e-9, "metric \(k)")
        }
        // The case is not degenerate: the two surface definitions really differ here.
        XCTAssertNotEqual(m.meanDistanceMM, m.extras[1])
    }
}

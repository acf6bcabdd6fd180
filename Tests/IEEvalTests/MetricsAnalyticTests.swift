import XCTest
import IECore
@testable import IEEval

/// Metrics on shapes whose values are known by hand (the derivations are in the comments).
final class MetricsAnalyticTests: XCTestCase {
    let allExtras: [ExtraMetric] = [.hd95, .assd, .surfaceDice(toleranceMM: 1)]

    func testShiftedCubeWithAnisotropicSpacing() {
        // A = 4x4x4 cube at z,y,x in [2,6); B = the same cube shifted by one voxel along z (3 mm).
        let grid = VoxelGrid(shape: Shape3D(10, 10, 10), spacing: (3, 0.8, 0.8))
        let a = metricsMask(grid) { z, y, x in (2..<6).contains(z) && (2..<6).contains(y) && (2..<6).contains(x) }
        let b = metricsMask(grid) { z, y, x in (3..<7).contains(z) && (2..<6).contains(y) && (2..<6).contains(x) }
        let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid, extras: allExtras)
        // |A ∩ B| = 3 layers of 16 = 48.
        XCTAssertEqual(m.dice, 2.0 * 48 / 128, accuracy: 1e-12)
        // The z = 2 layer of A is 3 mm from B; every other voxel of A is in B (and symmetrically).
        XCTAssertEqual(m.hausdorffDistanceMM, 3, accuracy: 1e-12)
        // contour(A) has 56 voxels: bottom layer (16) 3 mm from B's bottom layer; top layer z = 5: its 12 ring voxels
        // lie on B's ring (0), its 4 inner voxels are 0.8 mm from that ring; the side rings at z = 3, 4 (24) are on
        // B's contour (0). Sum 16 * 3 + 4 * 0.8 = 51.2, the same from B by symmetry: MSD = 102.4 / 112.
        XCTAssertEqual(m.meanDistanceMM, 102.4 / 112, accuracy: 1e-12)
        // Away from the image border MONAI's edges are the same voxels. Sorted directed list: 36 zeros, 4 x 0.8,
        // 16 x 3; the 95th percentile sits at position 52.25, among the 3s.
        XCTAssertEqual(m.extras[0], 3, accuracy: 1e-12)
        XCTAssertEqual(m.extras[1], 102.4 / 112, accuracy: 1e-12)
        XCTAssertEqual(m.extras[2], 80.0 / 112, accuracy: 1e-12)   // 36 + 4 per side within 1 mm
    }

    func testTwoSpheresOfKnownOverlap() {
        // Spheres of radius 10 mm, centres 6 mm apart along x, spacing (2, 1, 1) mm.
        let grid = VoxelGrid(shape: Shape3D(16, 28, 36), spacing: (2, 1, 1))
        let r = 10.0, d = 6.0
        let c1 = (z: 16.0, y: 14.0, x: 15.0), c2 = (z: 16.0, y: 14.0, x: 15.0 + d)
        func inside(_ c: (z: Double, y: Double, x: Double), _ z: Int, _ y: Int, _ x: Int) -> Bool {
            let dz = Double(z) * 2 - c.z, dy = Double(y) - c.y, dx = Double(x) - c.x
            return dz * dz + dy * dy + dx * dx <= r * r
        }
        let a = metricsMask(grid) { inside(c1, $0, $1, $2) }
        let b = metricsMask(grid) { inside(c2, $0, $1, $2) }
        // Count the intersection independently from the two inequalities.
        var both = 0, countA = 0, countB = 0
        for z in 0..<grid.nz { for y in 0..<grid.ny { for x in 0..<grid.nx {
            let ia = inside(c1, z, y, x), ib = inside(c2, z, y, x)
            if ia { countA += 1 }; if ib { countB += 1 }; if ia && ib { both += 1 }
        } } }
        let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid)
        XCTAssertEqual(m.dice, 2 * Double(both) / Double(countA + countB), accuracy: 1e-12)
        // Continuous check: lens volume pi (4r + d)(2r - d)^2 / 12 over the sphere volume 4/3 pi r^3.
        let lensOverSphere = (4 * r + d) * (2 * r - d) * (2 * r - d) / 12 / (4.0 / 3 * r * r * r)
        XCTAssertEqual(m.dice, lensOverSphere, accuracy: 0.03)
        // All-voxel Hausdorff is exactly d: a + d e_x is in B for every a in A (so h <= d), and the voxel
        // c1 - r e_x is at least (r + d) - r = d from every voxel of B.
        XCTAssertEqual(m.hausdorffDistanceMM, d, accuracy: 1e-12)
        XCTAssertGreaterThan(m.meanDistanceMM, 0)
        XCTAssertLessThan(m.meanDistanceMM, d)
    }

    func testEmptyCases() {
        let grid = VoxelGrid(shape: Shape3D(3, 3, 3))
        let empty = [Bool](repeating: false, count: grid.count)
        let some = metricsMask(grid) { z, y, x in z == 1 && y == 1 && x == 1 }
        let missing = SegmentationMetrics.compute(prediction: some, groundTruth: nil, grid: grid, extras: allExtras)
        XCTAssertTrue(missing.dice.isNaN && missing.hausdorffDistanceMM.isNaN && missing.meanDistanceMM.isNaN)
        XCTAssertTrue(missing.extras.allSatisfy(\.isNaN))
        let bothEmpty = SegmentationMetrics.compute(prediction: empty, groundTruth: empty, grid: grid, extras: allExtras)
        XCTAssertTrue(bothEmpty.dice.isNaN && bothEmpty.hausdorffDistanceMM.isNaN && bothEmpty.meanDistanceMM.isNaN)
        XCTAssertTrue(bothEmpty.extras.allSatisfy(\.isNaN))
        for (p, g) in [(empty, some), (some, empty)] {
            let m = SegmentationMetrics.compute(prediction: p, groundTruth: g, grid: grid, extras: allExtras)
            XCTAssertEqual(m.dice, 0)
            XCTAssertEqual(m.hausdorffDistanceMM, .infinity)
            XCTAssertEqual(m.meanDistanceMM, .infinity)
            XCTAssertEqual(m.extras, [.infinity, .infinity, 0])
        }
    }

    func testHoleMakesAllVoxelHausdorffDifferFromSurfaceHausdorff() {
        // B = solid cube [1,10)^3; A = B minus the hole [3,8)^3. 1 mm voxels.
        let grid = VoxelGrid(shape: Shape3D(11, 11, 11))
        let cube: (Int, Int, Int) -> Bool = { z, y, x in (1..<10).contains(z) && (1..<10).contains(y) && (1..<10).contains(x) }
        let hole: (Int, Int, Int) -> Bool = { z, y, x in (3..<8).contains(z) && (3..<8).contains(y) && (3..<8).contains(x) }
        let b = metricsMask(grid, cube)
        let a = metricsMask(grid) { cube($0, $1, $2) && !hole($0, $1, $2) }
        let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid, extras: [.hd95, .assd])
        XCTAssertEqual(m.dice, 2.0 * 604 / (604 + 729), accuracy: 1e-12)
        // The hole's centre (5,5,5) is 3 mm from the nearest voxel of A: all-voxel Hausdorff 3.
        XCTAssertEqual(m.hausdorffDistanceMM, 3, accuracy: 1e-12)
        // Surfaces: the outer shells (386 voxels each) coincide (0); the 150 voxels of A facing the hole are 1 mm
        // from the shell. So every surface distance is <= 1 and MSD = 150 / (386 + 150 + 386).
        XCTAssertEqual(m.meanDistanceMM, 150.0 / 922, accuracy: 1e-12)
        XCTAssertEqual(m.extras[1], 150.0 / 922, accuracy: 1e-12)
        // Directed list from A: 386 zeros then 150 ones: the 95th percentile (position 508.25) is 1.
        XCTAssertEqual(m.extras[0], 1, accuracy: 1e-12)
        XCTAssertLessThan(m.extras[0], m.hausdorffDistanceMM)
    }

    func testSingleVoxelObjects() {
        let grid = VoxelGrid(shape: Shape3D(6, 8, 5), spacing: (2, 1, 0.5))
        let a = metricsMask(grid) { z, y, x in z == 1 && y == 2 && x == 3 }
        let b = metricsMask(grid) { z, y, x in z == 4 && y == 6 && x == 3 }
        let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid, extras: allExtras)
        let distance = (36.0 + 16).squareRoot()   // dz = 3 * 2 mm, dy = 4 * 1 mm
        XCTAssertEqual(m.dice, 0)
        XCTAssertEqual(m.hausdorffDistanceMM, distance, accuracy: 1e-12)
        XCTAssertEqual(m.meanDistanceMM, distance, accuracy: 1e-12)
        XCTAssertEqual(m.extras[0], distance, accuracy: 1e-12)
        XCTAssertEqual(m.extras[1], distance, accuracy: 1e-12)
        XCTAssertEqual(m.extras[2], 0)
        let same = SegmentationMetrics.compute(prediction: a, groundTruth: a, grid: grid, extras: allExtras)
        XCTAssertEqual(same, SegmentationMetrics(dice: 1, hausdorffDistanceMM: 0, meanDistanceMM: 0, extras: [0, 0, 1]))
    }

    func testObjectsTouchingTheImageBorder() {
        // Grid 5x3x3, spacing z = 2 mm. A = slab z in 0..<3, B = slab z in 0..<4: both touch five image faces.
        let grid = VoxelGrid(shape: Shape3D(5, 3, 3), spacing: (2, 1, 1))
        let a = metricsMask(grid) { z, _, _ in z < 3 }
        let b = metricsMask(grid) { z, _, _ in z < 4 }
        let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid, extras: allExtras)
        XCTAssertEqual(m.dice, 2.0 * 27 / 63, accuracy: 1e-12)
        XCTAssertEqual(m.hausdorffDistanceMM, 2, accuracy: 1e-12)
        // The image border is no boundary: contour(A) = layer z = 2, contour(B) = layer z = 3, all 2 mm apart.
        XCTAssertEqual(m.meanDistanceMM, 2, accuracy: 1e-12)
        // MONAI edges include border voxels: edge(A) = 26 voxels (all but (1,1,1)), edge(B) = 34 (all but (1,1,1),
        // (2,1,1)). From A: 25 zeros and (2,1,1) at 1 mm; from B: 25 zeros and the z = 3 layer (9) at 2 mm.
        XCTAssertEqual(m.extras[0], 2, accuracy: 1e-12)            // HD95: max(0, 2)
        XCTAssertEqual(m.extras[1], 19.0 / 60, accuracy: 1e-12)    // ASSD
        XCTAssertEqual(m.extras[2], 51.0 / 60, accuracy: 1e-12)    // NSD at 1 mm
    }

    func testAllOnesMaskHasNoContour() {
        let grid = VoxelGrid(shape: Shape3D(5, 3, 3), spacing: (2, 1, 1))
        let all = [Bool](repeating: true, count: grid.count)
        let b = metricsMask(grid) { z, _, _ in z < 2 }
        let m = SegmentationMetrics.compute(prediction: all, groundTruth: b, grid: grid)
        XCTAssertEqual(m.dice, 36.0 / 63, accuracy: 1e-12)
        XCTAssertEqual(m.hausdorffDistanceMM, 6, accuracy: 1e-12)   // z = 4 is 3 voxels of 2 mm from z = 1
        XCTAssertTrue(m.meanDistanceMM.isNaN)
        let both = SegmentationMetrics.compute(prediction: all, groundTruth: all, grid: grid)
        XCTAssertEqual(both.dice, 1)
        XCTAssertEqual(both.hausdorffDistanceMM, 0)
        XCTAssertTrue(both.meanDistanceMM.isNaN)
    }

    func testMatchesBruteForceOracleOnRandomMasks() {
        var random = MetricsTestRandom(seed: 2024)
        var compared = 0
        for trial in 0..<60 {
            let grid = VoxelGrid(shape: Shape3D(random.int(1...6), random.int(2...7), random.int(2...7)),
                                 spacing: (0.5 + 3 * random.unitDouble(), 0.4 + random.unitDouble(), 0.4 + random.unitDouble()))
            // Blobs: random boxes, sometimes filling to the border, sometimes with random voxels flipped.
            func blob() -> [Bool] {
                let z0 = random.int(0...(grid.nz - 1)), y0 = random.int(0...(grid.ny - 1)), x0 = random.int(0...(grid.nx - 1))
                let z1 = random.int(z0...(grid.nz - 1)), y1 = random.int(y0...(grid.ny - 1)), x1 = random.int(x0...(grid.nx - 1))
                var m = metricsMask(grid) { z, y, x in (z0...z1).contains(z) && (y0...y1).contains(y) && (x0...x1).contains(x) }
                let noise = [0.0, 0.05, 0.2][trial % 3]
                for i in m.indices where random.unitDouble() < noise { m[i].toggle() }
                return m
            }
            let a = blob(), b = blob()
            guard a.contains(true) && b.contains(true) else { continue }
            let tolerance = 1.5 * random.unitDouble()
            let expected = BruteForceMetrics.metrics(a, b, grid, tolerance: tolerance)
            let m = SegmentationMetrics.compute(prediction: a, groundTruth: b, grid: grid,
                                                extras: [.hd95, .assd, .surfaceDice(toleranceMM: tolerance)])
            let got = [m.dice, m.hausdorffDistanceMM, m.meanDistanceMM] + m.extras
            for (k, (x, y)) in zip(got, expected).enumerated() {
                if y.isNaN { XCTAssertTrue(x.isNaN, "trial \(trial) metric \(k)"); continue }
                XCTAssertEqual(x, y, accuracy: 1e-9, "trial \(trial) metric \(k) grid \(grid)")
            }
            compared += 1
        }
        XCTAssertGreaterThan(compared, 40)
    }
}

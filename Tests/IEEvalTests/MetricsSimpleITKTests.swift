import XCTest
import IECore
import IEImage
import IETestSupport
@testable import IEEval

/// Dice, HausdorffDistance_mm and MeanDistance_mm against SimpleITK itself, called the way InnerEye's
/// `calculate_metrics_per_class` and `surface_distance` (InnerEye/ML/metrics.py) call it: LabelOverlapMeasures
/// for Dice, HausdorffDistanceImageFilter, and the mean over LabelContour voxels of
/// |SignedMaurerDistanceMap(squaredDistance=False, useImageSpacing=True)| of the other mask, in both directions.
final class MetricsSimpleITKTests: XCTestCase {
    /// InnerEye's calls, re-implemented in python on SimpleITK: `metrics(prediction, truth, spacing_zyx)` on
    /// boolean arrays, and `read_mask(path)`.
    static let oracleFunctions = """
    import sys, math
    import numpy as np
    import SimpleITK as sitk

    def image(mask, spacing_zyx):
        img = sitk.GetImageFromArray(mask.astype(np.uint8))
        img.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
        return img

    def surface_count(surface):
        stats = sitk.StatisticsImageFilter()
        stats.Execute(surface)
        return int(stats.GetSum())

    def directed(surface, distance_map):
        # Values of the other mask's |Maurer map| on this mask's LabelContour: the non-zero ones, then zeros
        # up to the contour's voxel count (InnerEye's _add_zero_distances).
        # (The product image must stay referenced while its array view is read.)
        product = distance_map * sitk.Cast(surface, sitk.sitkFloat32)
        sampled = sitk.GetArrayViewFromImage(product)
        values = list(sampled[sampled != 0])
        return values + list(np.zeros(surface_count(surface) - len(values)))

    def mean_surface_distance(seg, ref):
        ref_map = sitk.Abs(sitk.SignedMaurerDistanceMap(ref, squaredDistance=False, useImageSpacing=True))
        seg_map = sitk.Abs(sitk.SignedMaurerDistanceMap(seg, squaredDistance=False, useImageSpacing=True))
        return np.mean(directed(sitk.LabelContour(seg), ref_map) + directed(sitk.LabelContour(ref), seg_map)).item()

    def metrics(prediction, truth, spacing):
        if not prediction.any() and not truth.any():
            return [math.nan] * 3
        p, t = image(prediction, spacing), image(truth, spacing)
        overlap = sitk.LabelOverlapMeasuresImageFilter()
        overlap.Execute(p, t)
        dice = overlap.GetDiceCoefficient()
        if not prediction.any() or not truth.any():
            return [dice, math.inf, math.inf]
        hausdorff = sitk.HausdorffDistanceImageFilter()
        hausdorff.Execute(p, t)
        try:
            with np.errstate(all="ignore"):
                msd = mean_surface_distance(p, t)
        except Exception:
            msd = math.nan  # InnerEye logs a warning and keeps NaN
        return [dice, hausdorff.GetHausdorffDistance(), msd]

    def read_mask(path):
        img = sitk.ReadImage(path)
        return sitk.GetArrayFromImage(img) > 0.5, tuple(reversed(img.GetSpacing()))

    """

    /// The oracle's command line. Input: one case per line, `nz ny nx sz sy sx <a bits> <b bits>`; output: one line
    /// `dice hd msd` per case (repr floats).
    static let oracle = oracleFunctions + """
    if len(sys.argv) > 1:
        prediction, spacing = read_mask(sys.argv[1])
        truth, _ = read_mask(sys.argv[2])
        print(" ".join(repr(float(v)) for v in metrics(prediction, truth, spacing)))
    else:
        for line in sys.stdin:
            f = line.split()
            if not f:
                continue
            shape = tuple(int(v) for v in f[:3])
            spacing = tuple(float(v) for v in f[3:6])
            a = np.array([c == "1" for c in f[6]]).reshape(shape)
            b = np.array([c == "1" for c in f[7]]).reshape(shape)
            print(" ".join(repr(float(v)) for v in metrics(a, b, spacing)))
    """

    struct Case {
        var name: String
        var grid: VoxelGrid
        var a: [Bool]
        var b: [Bool]
    }

    /// Random and adversarial mask pairs: boxes and ellipsoids touching the border or not, noise, one-voxel-thin
    /// planes and lines (face and diagonal), holes, several components, checkerboards, single voxels, single-slice
    /// images, masks filling the image, empty masks, anisotropic spacing throughout.
    static func cases() -> [Case] {
        var random = MetricsTestRandom(seed: 7_2026)
        var cases: [Case] = []
        func spacing() -> (z: Double, y: Double, x: Double) {
            (0.3 + 3.5 * random.unitDouble(), 0.3 + 1.5 * random.unitDouble(), 0.3 + 1.5 * random.unitDouble())
        }
        func box(_ grid: VoxelGrid) -> [Bool] {
            let z0 = random.int(0...(grid.nz - 1)), y0 = random.int(0...(grid.ny - 1)), x0 = random.int(0...(grid.nx - 1))
            let z1 = random.int(z0...(grid.nz - 1)), y1 = random.int(y0...(grid.ny - 1)), x1 = random.int(x0...(grid.nx - 1))
            return metricsMask(grid) { z, y, x in (z0...z1).contains(z) && (y0...y1).contains(y) && (x0...x1).contains(x) }
        }
        func ellipsoid(_ grid: VoxelGrid) -> [Bool] {
            let c = (Double(random.int(0...(grid.nz - 1))), Double(random.int(0...(grid.ny - 1))), Double(random.int(0...(grid.nx - 1))))
            let r = (0.8 + Double(grid.nz) * random.unitDouble() / 2, 0.8 + Double(grid.ny) * random.unitDouble() / 2,
                     0.8 + Double(grid.nx) * random.unitDouble() / 2)
            return metricsMask(grid) { z, y, x in
                let dz = (Double(z) - c.0) / r.0, dy = (Double(y) - c.1) / r.1, dx = (Double(x) - c.2) / r.2
                return dz * dz + dy * dy + dx * dx <= 1
            }
        }
        func noisy(_ m: [Bool], _ p: Double) -> [Bool] {
            var m = m
            for i in m.indices where random.unitDouble() < p { m[i].toggle() }
            return m
        }
        func union(_ m: [Bool], _ n: [Bool]) -> [Bool] { zip(m, n).map { $0 || $1 } }
        func minus(_ m: [Bool], _ n: [Bool]) -> [Bool] { zip(m, n).map { $0 && !$1 } }
        func thin(_ grid: VoxelGrid) -> [Bool] {
            let kind = random.int(0...4)
            let z0 = random.int(0...(grid.nz - 1)), y0 = random.int(0...(grid.ny - 1)), x0 = random.int(0...(grid.nx - 1))
            switch kind {
            case 0: return metricsMask(grid) { z, _, _ in z == z0 }                       // plane
            case 1: return metricsMask(grid) { _, y, x in y == y0 && x == x0 }            // line along z
            case 2: return metricsMask(grid) { z, y, x in z == z0 && y - y0 == x - x0 }   // diagonal line (26-connected only)
            case 3: return metricsMask(grid) { z, y, x in (z + y + x) % 2 == 0 && z <= z0 } // checkerboard slab
            default: return metricsMask(grid) { z, y, x in z == z0 && y == y0 && x == x0 } // single voxel
            }
        }
        func randomGrid(maxZ: Int = 9) -> VoxelGrid {
            VoxelGrid(shape: Shape3D(random.int(1...maxZ), random.int(2...12), random.int(2...12)), spacing: spacing())
        }
        for trial in 0..<320 {
            let grid = randomGrid()
            let a: [Bool], b: [Bool], name: String
            switch trial % 8 {
            case 0:
                name = "boxes"; a = box(grid); b = box(grid)
            case 1:
                name = "noisy boxes"; a = noisy(box(grid), 0.1); b = noisy(box(grid), 0.05)
            case 2:
                name = "ellipsoids"; a = ellipsoid(grid); b = ellipsoid(grid)
            case 3:
                name = "thin structures"; a = thin(grid); b = random.int(0...1) == 0 ? thin(grid) : ellipsoid(grid)
            case 4:
                // A shape with a hole against the filled shape or another shape.
                name = "holes"; let outer = box(grid)
                a = minus(outer, ellipsoid(grid)); b = random.int(0...1) == 0 ? outer : minus(ellipsoid(grid), thin(grid))
            case 5:
                name = "several components"; a = union(union(thin(grid), ellipsoid(grid)), box(grid))
                b = union(noisy([Bool](repeating: false, count: grid.count), 0.15), ellipsoid(grid))
            case 6:
                // Masks filling (or almost filling) the image.
                name = "full image"; let all = [Bool](repeating: true, count: grid.count)
                switch random.int(0...3) {
                case 0: a = all; b = box(grid)
                case 1: a = noisy(all, 0.02); b = all
                case 2: a = minus(all, thin(grid)); b = noisy(all, 0.1)
                default: a = all; b = all
                }
            default:
                name = "noise"; a = noisy([Bool](repeating: false, count: grid.count), 0.3)
                b = noisy([Bool](repeating: false, count: grid.count), 0.02 + 0.5 * random.unitDouble())
            }
            cases.append(Case(name: "\(trial) \(name)", grid: grid, a: a, b: b))
        }
        // Empty masks, and a larger case where the crop to the masks' bounding box matters.
        let small = VoxelGrid(shape: Shape3D(3, 4, 5), spacing: (2, 0.5, 0.7))
        let empty = [Bool](repeating: false, count: small.count)
        let dot = metricsMask(small) { z, y, x in z == 1 && y == 2 && x == 3 }
        cases.append(Case(name: "both empty", grid: small, a: empty, b: empty))
        cases.append(Case(name: "empty prediction", grid: small, a: empty, b: dot))
        cases.append(Case(name: "empty ground truth", grid: small, a: dot, b: empty))
        let large = VoxelGrid(shape: Shape3D(14, 40, 36), spacing: (2.5, 0.7, 0.9))
        cases.append(Case(name: "inner ellipsoids", grid: large,
                          a: noisy(metricsMask(large) { z, y, x in
                              let dz = Double(z - 7) / 4, dy = Double(y - 20) / 11, dx = Double(x - 16) / 9
                              return dz * dz + dy * dy + dx * dx <= 1 }, 0.002),
                          b: metricsMask(large) { z, y, x in
                              let dz = Double(z - 6) / 5, dy = Double(y - 22) / 12, dx = Double(x - 18) / 10
                              return dz * dz + dy * dy + dx * dx <= 1 && !(z == 6 && y > 22 && x < 20) }))
        return cases
    }

    static func bits(_ mask: [Bool]) -> String { String(mask.map { $0 ? "1" : "0" }) }

    static func parse(_ line: Substring) -> [Double] {
        line.split(separator: " ").map { Double($0) ?? .nan }
    }

    /// Agreement to 1e-4 relative, with a 1e-5 mm floor (SimpleITK computes distances in float32).
    static func assertClose(_ ours: Double, _ reference: Double, _ message: String) {
        if reference.isNaN { XCTAssertTrue(ours.isNaN, message); return }
        if reference.isInfinite { XCTAssertEqual(ours, reference, message); return }
        // SimpleITK's distance maps are float32: where the exact value is 0 it may return ~1e-7.
        XCTAssertEqual(ours, reference, accuracy: max(1e-4 * abs(reference), 1e-5), message)
    }

    func testAgainstSimpleITKOnRandomAndAdversarialCases() throws {
        let cases = Self.cases()
        let input = cases.map { c in
            "\(c.grid.nz) \(c.grid.ny) \(c.grid.nx) \(c.grid.spacingZ) \(c.grid.spacingY) \(c.grid.spacingX) "
                + "\(Self.bits(c.a)) \(Self.bits(c.b))"
        }.joined(separator: "\n") + "\n"
        let lines = try metricsRunPython(Self.oracle, input: input).split(separator: "\n")
        XCTAssertEqual(lines.count, cases.count)
        var meanDistancesCompared = 0, filling = 0
        for (c, line) in zip(cases, lines) {
            let reference = Self.parse(line)
            let m = SegmentationMetrics.compute(prediction: c.a, groundTruth: c.b, grid: c.grid)
            let message = "case \(c.name), grid \(c.grid)"
            Self.assertClose(m.dice, reference[0], message + " Dice")
            Self.assertClose(m.hausdorffDistanceMM, reference[1], message + " Hausdorff")
            let fillsImage = !c.a.contains(false) || !c.b.contains(false)
            if fillsImage {
                // Deliberate deviation (SPEC §7): NaN where InnerEye's call returns SimpleITK's placeholder
                // distance (about 1.8e19) or, with both masks full, the mean of no distances.
                XCTAssertTrue(m.meanDistanceMM.isNaN, message)
                XCTAssertTrue(reference[2].isNaN || reference[2] > 1e18, message + " reference \(reference[2])")
                filling += 1
            } else {
                Self.assertClose(m.meanDistanceMM, reference[2], message + " MeanDistance")
                if reference[2].isFinite { meanDistancesCompared += 1 }
            }
        }
        XCTAssertGreaterThan(meanDistancesCompared, 250)
        XCTAssertGreaterThan(filling, 20)
    }

    /// InnerEye's own test data: id2's region mask scored against id1's (75^3 voxels), read by SimpleITK.
    func testInnerEyeTestDataAgainstSimpleITK() throws {
        let fixtures = MetricsInnerEyeDataTests.fixtures
        for (prediction, truth) in [("id2_region.nii.gz", "id1_region.nii.gz"), ("id1_region.nii.gz", "id2_region.nii.gz")] {
            let p = try NIfTI.read(fixtures + "/" + prediction), t = try NIfTI.read(fixtures + "/" + truth)
            let m = SegmentationMetrics.compute(prediction: try MetricsEvaluation.binaryMask(p, path: prediction),
                                                groundTruth: try MetricsEvaluation.binaryMask(t, path: truth),
                                                grid: MetricsEvaluation.grid(of: t))
            let output = try PythonOracle.run(Self.oracle, arguments: [fixtures + "/" + prediction, fixtures + "/" + truth])
            let reference = Self.parse(output.split(separator: "\n")[0])
            XCTAssertGreaterThan(reference[2], 0)
            Self.assertClose(m.dice, reference[0], "\(prediction) Dice")
            Self.assertClose(m.hausdorffDistanceMM, reference[1], "\(prediction) Hausdorff")
            Self.assertClose(m.meanDistanceMM, reference[2], "\(prediction) MeanDistance")
        }
    }
}

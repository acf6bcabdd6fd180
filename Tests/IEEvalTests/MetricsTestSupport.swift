import Foundation
import IECore
import IETestSupport
@testable import IEEval

/// Deterministic generator for random test data: IECore's SplitMix64 with the draws the tests need.
typealias MetricsTestRandom = SplitMix64

extension SplitMix64 {
    /// Uniform in [0, 1) with 53 random bits.
    mutating func unitDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
}

/// A mask built from a predicate on voxel indices.
func metricsMask(_ grid: VoxelGrid, _ inside: (Int, Int, Int) -> Bool) -> [Bool] {
    var mask = [Bool](repeating: false, count: grid.count)
    for z in 0..<grid.nz { for y in 0..<grid.ny { for x in 0..<grid.nx where inside(z, y, x) { mask[grid.index(z, y, x)] = true } } }
    return mask
}

/// Brute-force oracle written straight from SPEC §7 and MONAI's definitions, O(n^2), for tiny masks only.
/// Independent of the library: no distance transform, no cropping, its own surface test.
enum BruteForceMetrics {
    struct Voxel { var z: Int, y: Int, x: Int }

    static func voxels(_ mask: [Bool], _ grid: VoxelGrid) -> [Voxel] {
        var out: [Voxel] = []
        for z in 0..<grid.nz { for y in 0..<grid.ny { for x in 0..<grid.nx where mask[grid.index(z, y, x)] { out.append(Voxel(z: z, y: y, x: x)) } } }
        return out
    }

    static func squaredDistance(_ a: Voxel, _ b: Voxel, _ grid: VoxelGrid) -> Double {
        let dz = Double(a.z - b.z) * grid.spacingZ, dy = Double(a.y - b.y) * grid.spacingY, dx = Double(a.x - b.x) * grid.spacingX
        return dz * dz + dy * dy + dx * dx
    }

    static func nearest(_ a: Voxel, _ set: [Voxel], _ grid: VoxelGrid) -> Double {
        var best = Double.infinity
        for b in set { best = min(best, squaredDistance(a, b, grid)) }
        return best.squareRoot()
    }

    /// borderIsBoundary false: SPEC contour; true: MONAI edge.
    static func surface(_ mask: [Bool], _ grid: VoxelGrid, borderIsBoundary: Bool) -> [Voxel] {
        voxels(mask, grid).filter { v in
            let steps = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]
            return steps.contains { s in
                let z = v.z + s.0, y = v.y + s.1, x = v.x + s.2
                let inImage = z >= 0 && z < grid.nz && y >= 0 && y < grid.ny && x >= 0 && x < grid.nx
                return inImage ? !mask[grid.index(z, y, x)] : borderIsBoundary
            }
        }
    }

    /// The zero set of SimpleITK's SignedMaurerDistanceMap: voxels of the mask with one of their 26 neighbours
    /// inside the image and outside the mask.
    static func fullyConnectedBoundary(_ mask: [Bool], _ grid: VoxelGrid) -> [Voxel] {
        voxels(mask, grid).filter { v in
            for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
                let z = v.z + dz, y = v.y + dy, x = v.x + dx
                guard z >= 0 && z < grid.nz && y >= 0 && y < grid.ny && x >= 0 && x < grid.nx else { continue }
                if !mask[grid.index(z, y, x)] { return true }
            } } }
            return false
        }
    }

    static func edt(_ feature: [Bool], _ grid: VoxelGrid) -> [Double] {
        let features = voxels(feature, grid)
        var out: [Double] = []
        for z in 0..<grid.nz { for y in 0..<grid.ny { for x in 0..<grid.nx {
            var best = Double.infinity
            for f in features { best = min(best, squaredDistance(Voxel(z: z, y: y, x: x), f, grid)) }
            out.append(best)
        } } }
        return out
    }

    static func percentile(_ values: [Double], _ p: Double) -> Double {
        let s = values.sorted()
        let h = Double(s.count - 1) * p / 100
        let lo = Int(h), hi = min(lo + 1, s.count - 1)
        return s[lo] + (h - Double(lo)) * (s[hi] - s[lo])
    }

    /// Dice, HD, MSD, then [hd95, assd, nsd@tolerance] for two non-empty masks.
    static func metrics(_ a: [Bool], _ b: [Bool], _ grid: VoxelGrid, tolerance: Double) -> [Double] {
        let va = voxels(a, grid), vb = voxels(b, grid)
        let both = zip(a, b).filter { $0 && $1 }.count
        let dice = 2 * Double(both) / Double(va.count + vb.count)
        let hd = max(va.map { nearest($0, vb, grid) }.max()!, vb.map { nearest($0, va, grid) }.max()!)
        let ca = surface(a, grid, borderIsBoundary: false), cb = surface(b, grid, borderIsBoundary: false)
        let msd: Double
        if ca.isEmpty || cb.isEmpty {
            msd = .nan
        } else {
            // Sampled on LabelContour, measured to the Maurer map's zero set (InnerEye's SimpleITK calls).
            let ba = fullyConnectedBoundary(a, grid), bb = fullyConnectedBoundary(b, grid)
            let list = ca.map { nearest($0, bb, grid) } + cb.map { nearest($0, ba, grid) }
            msd = list.reduce(0, +) / Double(list.count)
        }
        let ea = surface(a, grid, borderIsBoundary: true), eb = surface(b, grid, borderIsBoundary: true)
        let fromA = ea.map { nearest($0, eb, grid) }, fromB = eb.map { nearest($0, ea, grid) }
        let hd95 = max(percentile(fromA, 95), percentile(fromB, 95))
        let assd = (fromA + fromB).reduce(0, +) / Double(fromA.count + fromB.count)
        let nsd = Double((fromA + fromB).filter { $0 <= tolerance }.count) / Double(fromA.count + fromB.count)
        return [dice, hd, msd, hd95, assd, nsd]
    }
}

/// Runs `python3 -c script` (numpy/scipy) with `input` on stdin and returns stdout.
func metricsRunPython(_ script: String, input: String = "") throws -> String {
    try PythonOracle.run(script, input: Data(input.utf8))
}

import Foundation
import IECore

/// A 3-D grid (Z, Y, X) with X fastest and a physical voxel spacing in mm, the frame every metric works in.
public struct VoxelGrid: Sendable, Equatable {
    public var shape: Shape3D
    public var spacingZ: Double, spacingY: Double, spacingX: Double

    public init(shape: Shape3D, spacing: (z: Double, y: Double, x: Double) = (1, 1, 1)) {
        precondition(shape.z >= 0 && shape.y >= 0 && shape.x >= 0, "negative shape \(shape)")
        self.shape = shape
        spacingZ = spacing.z; spacingY = spacing.y; spacingX = spacing.x
    }

    public var nz: Int { shape.z }
    public var ny: Int { shape.y }
    public var nx: Int { shape.x }
    public var count: Int { shape.count }
    public var spacing: (z: Double, y: Double, x: Double) { (spacingZ, spacingY, spacingX) }

    @inline(__always) public func index(_ z: Int, _ y: Int, _ x: Int) -> Int { shape.index(z, y, x) }
}

/// Exact Euclidean distance transform on an anisotropic grid.
///
/// Separable and linear in the number of voxels: the squared distance is computed one axis at a time
/// (X, then Y, then Z); along X by two sweeps to the nearest feature in the row, along Y and Z as the lower
/// envelope of parabolas of Felzenszwalb & Huttenlocher ("Distance Transforms of Sampled Functions", 2012),
/// with the axis spacing as the parabola's width. Because squared Euclidean distance is a sum of per-axis
/// squares, the separable minimisation is exact (not an approximation such as chamfer distances).
public enum DistanceTransform {
    /// Squared distance (mm^2) from every voxel centre to the nearest voxel centre where `feature` is true;
    /// +infinity everywhere when there is no feature voxel.
    public static func squaredDistance(to feature: [Bool], grid: VoxelGrid) -> [Double] {
        precondition(feature.count == grid.count, "feature mask has \(feature.count) voxels, grid \(grid.count)")
        var distance = [Double](repeating: .infinity, count: grid.count)
        guard grid.count > 0 else { return distance }
        distance.withUnsafeMutableBufferPointer { d in
            feature.withUnsafeBufferPointer { f in
                passAlongX(feature: f, distance: d, grid: grid)
            }
            let lineLength = max(grid.ny, grid.nz)
            let scratch = EnvelopeScratch(capacity: lineLength)
            defer { scratch.deallocate() }
            if grid.ny > 1 {
                // Lines along Y: start (z, 0, x), stride nx.
                for z in 0..<grid.nz {
                    for x in 0..<grid.nx {
                        scratch.transformLine(d, start: grid.index(z, 0, x), stride: grid.nx, count: grid.ny,
                                              weight: grid.spacingY * grid.spacingY)
                    }
                }
            }
            if grid.nz > 1 {
                // Lines along Z: start (0, y, x), stride ny * nx.
                for y in 0..<grid.ny {
                    for x in 0..<grid.nx {
                        scratch.transformLine(d, start: grid.index(0, y, x), stride: grid.ny * grid.nx, count: grid.nz,
                                              weight: grid.spacingZ * grid.spacingZ)
                    }
                }
            }
        }
        return distance
    }

    /// Euclidean distance (mm), the square root of `squaredDistance`.
    public static func distance(to feature: [Bool], grid: VoxelGrid) -> [Double] {
        var d = squaredDistance(to: feature, grid: grid)
        for i in d.indices { d[i] = d[i].squareRoot() }
        return d
    }

    /// First pass: squared distance to the nearest feature in the same X row (a forward and a backward sweep).
    private static func passAlongX(feature: UnsafeBufferPointer<Bool>, distance: UnsafeMutableBufferPointer<Double>,
                                   grid: VoxelGrid) {
        let nx = grid.nx
        let w = grid.spacingX
        let rows = grid.nz * grid.ny
        for row in 0..<rows {
            let base = row * nx
            var last = -1
            for x in 0..<nx {
                if feature[base + x] { last = x }
                if last >= 0 {
                    let k = Double(x - last) * w
                    distance[base + x] = k * k
                }
            }
            last = -1
            for x in stride(from: nx - 1, through: 0, by: -1) {
                if feature[base + x] { last = x }
                if last >= 0 {
                    let k = Double(last - x) * w
                    let candidate = k * k
                    if candidate < distance[base + x] { distance[base + x] = candidate }
                }
            }
        }
    }
}

/// Buffers for one 1-D lower-envelope transform, allocated once per distance transform and reused across lines
/// (plain pointers: a line is short, so per-line array bookkeeping would cost as much as the line itself).
struct EnvelopeScratch {
    let values: UnsafeMutablePointer<Double>      // the input line f
    let vertices: UnsafeMutablePointer<Int>       // positions of the parabolas in the envelope
    let boundaries: UnsafeMutablePointer<Double>  // where each envelope parabola starts to be the lowest

    init(capacity: Int) {
        values = .allocate(capacity: max(capacity, 1))
        vertices = .allocate(capacity: max(capacity, 1))
        boundaries = .allocate(capacity: capacity + 1)
    }

    func deallocate() {
        values.deallocate()
        vertices.deallocate()
        boundaries.deallocate()
    }

    /// In place: d[p] = min_q (weight * (p - q)^2 + f[q]) over the line, where f = the current values.
    /// Infinite f[q] (no feature reachable yet) contribute no parabola.
    @inline(__always)
    func transformLine(_ d: UnsafeMutableBufferPointer<Double>, start: Int, stride: Int, count n: Int, weight: Double) {
        let f = values, v = vertices, z = boundaries
        var anyFinite = false
        for i in 0..<n {
            let value = d[start + i * stride]
            f[i] = value
            if value < .infinity { anyFinite = true }
        }
        guard anyFinite else { return }
        var k = -1
        for q in 0..<n where f[q] < .infinity {
            let fq = f[q] + weight * Double(q * q)
            if k < 0 {
                k = 0
                v[0] = q
                z[0] = -.infinity
                z[1] = .infinity
                continue
            }
            var s: Double
            while true {
                let r = v[k]
                // Intersection of the parabolas rooted at r and q (r < q); z[0] = -inf stops the loop.
                s = (fq - (f[r] + weight * Double(r * r))) / (2 * weight * Double(q - r))
                if s <= z[k] { k -= 1 } else { break }
            }
            k += 1
            v[k] = q
            z[k] = s
            z[k + 1] = .infinity
        }
        var j = 0
        for p in 0..<n {
            let position = Double(p)
            while z[j + 1] < position { j += 1 }
            let dq = Double(p - v[j])
            d[start + p * stride] = weight * dq * dq + f[v[j]]
        }
    }
}

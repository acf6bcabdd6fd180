// The image value of the scalar (classification/regression) transforms (SPEC §13): channels x depth x height x
// width Float32 values, row-major with width fastest, depth 1 for a 2-D image. Only the geometry primitives the
// named transforms share live here: indexing, sampling with a fill value, crops, flips, and the separable linear
// resize of PyTorch's interpolate (align_corners=False).
import Foundation
import IECore

public struct TransformImage: Sendable, Equatable {
    public private(set) var channels: Int
    public private(set) var depth: Int
    public private(set) var height: Int
    public private(set) var width: Int
    /// Row-major [channel][z][y][x].
    public var values: [Float]

    public init(channels: Int, depth: Int = 1, height: Int, width: Int, values: [Float]) throws {
        guard channels > 0, depth > 0, height > 0, width > 0 else {
            throw IEError.badInput("image shape \(channels)x\(depth)x\(height)x\(width) is invalid, expected positive sizes")
        }
        guard values.count == channels * depth * height * width else {
            throw IEError.badInput("image of shape \(channels)x\(depth)x\(height)x\(width) has \(values.count) values, "
                                   + "expected \(channels * depth * height * width)")
        }
        self.channels = channels; self.depth = depth; self.height = height; self.width = width
        self.values = values
    }

    /// A constant image; sizes below 1 are raised to 1.
    public init(channels: Int, depth: Int = 1, height: Int, width: Int, repeating value: Float = 0) {
        self.channels = max(channels, 1); self.depth = max(depth, 1)
        self.height = max(height, 1); self.width = max(width, 1)
        values = [Float](repeating: value, count: self.channels * self.depth * self.height * self.width)
    }

    public var is2D: Bool { depth == 1 }
    public var voxelsPerChannel: Int { depth * height * width }
    /// (channels, depth, height, width).
    public var shape: [Int] { [channels, depth, height, width] }

    @inline(__always) public func index(_ c: Int, _ z: Int, _ y: Int, _ x: Int) -> Int {
        ((c * depth + z) * height + y) * width + x
    }
    public subscript(c: Int, z: Int, y: Int, x: Int) -> Float {
        get { values[index(c, z, y, x)] }
        set { values[index(c, z, y, x)] = newValue }
    }
    /// 2-D access (slice z = 0).
    public subscript(c: Int, y: Int, x: Int) -> Float {
        get { values[index(c, 0, y, x)] }
        set { values[index(c, 0, y, x)] = newValue }
    }
    /// One channel's values, [z][y][x].
    public func channel(_ c: Int) -> [Float] {
        Array(values[(c * voxelsPerChannel)..<((c + 1) * voxelsPerChannel)])
    }

    // MARK: - Sampling

    /// Linear interpolation at a real position (z, y, x) in voxel units; neighbours outside the image take
    /// `fill` (constant padding), neighbours with zero weight are not read, so integer positions are exact.
    public func sampleLinear(_ c: Int, _ z: Double, _ y: Double, _ x: Double, fill: Float) -> Float {
        let z0 = Int(z.rounded(.down)), y0 = Int(y.rounded(.down)), x0 = Int(x.rounded(.down))
        let fz = z - Double(z0), fy = y - Double(y0), fx = x - Double(x0)
        var sum = 0.0
        for dz in 0...1 {
            let wz = dz == 0 ? 1 - fz : fz
            if wz == 0 { continue }
            for dy in 0...1 {
                let wy = dy == 0 ? 1 - fy : fy
                if wy == 0 { continue }
                for dx in 0...1 {
                    let wx = dx == 0 ? 1 - fx : fx
                    if wx == 0 { continue }
                    let zz = z0 + dz, yy = y0 + dy, xx = x0 + dx
                    let inside = zz >= 0 && zz < depth && yy >= 0 && yy < height && xx >= 0 && xx < width
                    sum += wz * wy * wx * Double(inside ? values[index(c, zz, yy, xx)] : fill)
                }
            }
        }
        return Float(sum)
    }

    /// Nearest neighbour (ties to even, as grid_sample), `fill` outside.
    public func sampleNearest(_ c: Int, _ z: Double, _ y: Double, _ x: Double, fill: Float) -> Float {
        let zz = Int(z.rounded(.toNearestOrEven)), yy = Int(y.rounded(.toNearestOrEven)), xx = Int(x.rounded(.toNearestOrEven))
        guard zz >= 0, zz < depth, yy >= 0, yy < height, xx >= 0, xx < width else { return fill }
        return values[index(c, zz, yy, xx)]
    }

    /// A new image of the same channel count and shape (d, h, w) whose voxel (c, z, y, x) is `value(c, z, y, x)`.
    public static func generate(channels: Int, depth: Int, height: Int, width: Int,
                                _ value: (Int, Int, Int, Int) -> Float) -> TransformImage {
        var out = TransformImage(channels: channels, depth: depth, height: height, width: width)
        var i = 0
        for c in 0..<out.channels { for z in 0..<out.depth { for y in 0..<out.height { for x in 0..<out.width {
            out.values[i] = value(c, z, y, x); i += 1
        } } } }
        return out
    }

    // MARK: - Geometry primitives

    /// The box starting at (z0, y0, x0) (may be negative) of size (d, h, w); voxels outside the image take `fill`.
    public func cropped(z0: Int, y0: Int, x0: Int, depth d: Int, height h: Int, width w: Int, fill: Float = 0) -> TransformImage {
        TransformImage.generate(channels: channels, depth: d, height: h, width: w) { c, z, y, x in
            let zz = z + z0, yy = y + y0, xx = x + x0
            guard zz >= 0, zz < depth, yy >= 0, yy < height, xx >= 0, xx < width else { return fill }
            return values[index(c, zz, yy, xx)]
        }
    }

    /// Reverses one spatial axis: 1 depth, 2 height (vertical flip), 3 width (horizontal flip).
    public func flipped(axis: Int) -> TransformImage {
        TransformImage.generate(channels: channels, depth: depth, height: height, width: width) { c, z, y, x in
            switch axis {
            case 1: return values[index(c, depth - 1 - z, y, x)]
            case 2: return values[index(c, z, height - 1 - y, x)]
            default: return values[index(c, z, y, width - 1 - x)]
            }
        }
    }

    /// The source position of output index i when resizing an axis from n to m samples, as PyTorch's linear
    /// interpolation with align_corners=False: (i + 0.5) * n / m - 0.5, clamped to [0, n - 1].
    public static func resizeSource(_ i: Int, from n: Int, to m: Int) -> Double {
        let s = (Double(i) + 0.5) * Double(n) / Double(m) - 0.5
        return min(max(s, 0), Double(n - 1))
    }

    /// Linear resize of one spatial axis (1 depth, 2 height, 3 width) to `size` samples.
    public func resized(axis: Int, to size: Int) -> TransformImage {
        let dims = shape
        let n = dims[axis]
        if n == size { return self }
        var newDims = dims
        newDims[axis] = size
        let inner = dims[(axis + 1)...].reduce(1, *)
        let outer = dims[..<axis].reduce(1, *)
        var out = TransformImage(channels: newDims[0], depth: newDims[1], height: newDims[2], width: newDims[3])
        let taps = (0..<size).map { i -> (Int, Int, Double) in
            let s = TransformImage.resizeSource(i, from: n, to: size)
            let i0 = Int(s.rounded(.down))
            return (i0, min(i0 + 1, n - 1), s - Double(i0))
        }
        for o in 0..<outer {
            for (i, (i0, i1, f)) in taps.enumerated() {
                let dst = (o * size + i) * inner, a = (o * n + i0) * inner, b = (o * n + i1) * inner
                for k in 0..<inner {
                    let va = Double(values[a + k]), vb = Double(values[b + k])
                    out.values[dst + k] = Float(f == 0 ? va : va + f * (vb - va))
                }
            }
        }
        return out
    }

    /// Separable linear resize to (depth, height, width): bilinear in-plane, trilinear when the depth changes.
    public func resized(depth d: Int, height h: Int, width w: Int) -> TransformImage {
        resized(axis: 3, to: w).resized(axis: 2, to: h).resized(axis: 1, to: d)
    }
}

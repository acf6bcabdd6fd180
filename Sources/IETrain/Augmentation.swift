// Training-crop augmentations (SPEC §4.3): RandomAffine, RandomNoise, RandomMotion, RandomBlur, each applied
// with its probability (0.5) and, when applied, with one set of parameters for all image channels and the
// labels. Geometry is resampled in physical space (voxel spacing), trilinear for images and nearest for
// one-hot labels and the mask, so labels stay one-hot. Each transform is a plain function of explicit
// parameters (tested), and `Augmenter` draws the parameters from the run's generator.
import Foundation
import IECore

/// Rotation (degrees about the Z, Y and X axes) and scale per axis, about the crop centre.
public struct AffineParameters: Sendable, Equatable {
    public var degrees: (z: Double, y: Double, x: Double)
    public var scales: (z: Double, y: Double, x: Double)
    public init(degrees: (z: Double, y: Double, x: Double) = (0, 0, 0), scales: (z: Double, y: Double, x: Double) = (1, 1, 1)) {
        self.degrees = degrees; self.scales = scales
    }
    public static func == (a: AffineParameters, b: AffineParameters) -> Bool {
        a.degrees == b.degrees && a.scales == b.scales
    }

    /// The 3x3 map (row-major, (z, y, x) order) from an output point's offset to the input offset, in mm:
    /// input = Rx(x) * Ry(y) * Rz(z) * output / scale. A rotation by +theta about Z samples the input at
    /// (y', x') = (cos*y + sin*x, -sin*y + cos*x), so +90 degrees gives numpy.rot90(a, 1, axes=(1, 2)).
    public func samplingMatrix() -> [Double] {
        func rot(_ deg: Double, _ a: Int, _ b: Int) -> [Double] {
            let t = deg * Double.pi / 180, c = cos(t), s = sin(t)
            var m: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
            m[a * 3 + a] = c; m[a * 3 + b] = s; m[b * 3 + a] = -s; m[b * 3 + b] = c
            return m
        }
        func mul(_ p: [Double], _ q: [Double]) -> [Double] {
            var r = [Double](repeating: 0, count: 9)
            for i in 0..<3 { for j in 0..<3 { for k in 0..<3 { r[i * 3 + j] += p[i * 3 + k] * q[k * 3 + j] } } }
            return r
        }
        var m = mul(rot(degrees.x, 0, 1), mul(rot(degrees.y, 0, 2), rot(degrees.z, 1, 2)))
        let inverseScale = [1 / scales.z, 1 / scales.y, 1 / scales.x]
        for i in 0..<3 { for j in 0..<3 { m[i * 3 + j] *= inverseScale[j] } }
        return m
    }
}

/// Motion artefact along one axis: the mean of copies shifted by `shifts` voxels (blur), then a ghost (the
/// result shifted circularly by half the axis) mixed in with weight `ghostWeight`.
public struct MotionParameters: Sendable, Equatable {
    public var axis: Int
    public var shifts: [Double]
    public var ghostWeight: Double
    public init(axis: Int, shifts: [Double] = [0], ghostWeight: Double = 0) {
        self.axis = axis; self.shifts = shifts; self.ghostWeight = ghostWeight
    }
}

public enum Augmentations {
    /// Resamples a crop (image [C, S], labels one-hot [K, S], mask [S]) through an affine map about the
    /// centre ((n-1)/2 per axis). Image voxels mapped outside take the channel's minimum (as TorchIO),
    /// labels background, the mask 0.
    public static func affine(_ crop: inout Crop, channels: Int, classCount: Int, parameters: AffineParameters,
                              spacing: (z: Double, y: Double, x: Double) = (1, 1, 1)) {
        let size = crop.size, n = size.count
        let m = parameters.samplingMatrix()
        let (sz, sy, sx) = (spacing.z, spacing.y, spacing.x)
        let (cz, cy, cx) = (Double(size.z - 1) / 2, Double(size.y - 1) / 2, Double(size.x - 1) / 2)
        let (lz, ly, lx) = (Double(size.z - 1), Double(size.y - 1), Double(size.x - 1))
        let minima = (0..<channels).map { c in crop.image[(c * n)..<((c + 1) * n)].min() ?? 0 }
        var image = [Float](repeating: 0, count: crop.image.count)
        var labels = [UInt8](repeating: 0, count: crop.labels.count)
        var mask = [UInt8](repeating: 0, count: n)
        // Snap to the grid what is off only by rounding (keeps 90 degree rotations exact).
        @inline(__always) func snap(_ v: Double) -> Double { abs(v - v.rounded()) < 1e-9 ? v.rounded() : v }
        crop.image.withUnsafeBufferPointer { src in
        crop.labels.withUnsafeBufferPointer { srcLabels in
        var i = 0
        for z in 0..<size.z { for y in 0..<size.y { for x in 0..<size.x {
            defer { i += 1 }
            let dz = (Double(z) - cz) * sz, dy = (Double(y) - cy) * sy, dx = (Double(x) - cx) * sx
            let qz = snap(cz + (m[0] * dz + m[1] * dy + m[2] * dx) / sz)
            let qy = snap(cy + (m[3] * dz + m[4] * dy + m[5] * dx) / sy)
            let qx = snap(cx + (m[6] * dz + m[7] * dy + m[8] * dx) / sx)
            guard qz >= 0, qz <= lz, qy >= 0, qy <= ly, qx >= 0, qx <= lx else {
                labels[i] = 1
                for c in 0..<channels { image[c * n + i] = minima[c] }
                continue
            }
            let nearest = size.index(Int(qz.rounded()), Int(qy.rounded()), Int(qx.rounded()))
            for k in 0..<classCount { labels[k * n + i] = srcLabels[k * n + nearest] }
            mask[i] = crop.mask[nearest]
            let z0 = min(Int(qz), size.z - 1), y0 = min(Int(qy), size.y - 1), x0 = min(Int(qx), size.x - 1)
            let z1 = min(z0 + 1, size.z - 1), y1 = min(y0 + 1, size.y - 1), x1 = min(x0 + 1, size.x - 1)
            let fz = qz - Double(z0), fy = qy - Double(y0), fx = qx - Double(x0)
            let i000 = size.index(z0, y0, x0), i001 = size.index(z0, y0, x1)
            let i010 = size.index(z0, y1, x0), i011 = size.index(z0, y1, x1)
            let i100 = size.index(z1, y0, x0), i101 = size.index(z1, y0, x1)
            let i110 = size.index(z1, y1, x0), i111 = size.index(z1, y1, x1)
            for c in 0..<channels {
                let b = c * n
                let c00 = Double(src[b + i000]) * (1 - fx) + Double(src[b + i001]) * fx
                let c01 = Double(src[b + i010]) * (1 - fx) + Double(src[b + i011]) * fx
                let c10 = Double(src[b + i100]) * (1 - fx) + Double(src[b + i101]) * fx
                let c11 = Double(src[b + i110]) * (1 - fx) + Double(src[b + i111]) * fx
                let c0 = c00 * (1 - fy) + c01 * fy, c1 = c10 * (1 - fy) + c11 * fy
                image[b + i] = Float(c0 * (1 - fz) + c1 * fz)
            }
        } } }
        }
        }
        crop.image = image; crop.labels = labels; crop.mask = mask
    }

    /// Adds Gaussian noise of standard deviation `std` to every image voxel.
    public static func noise(_ crop: inout Crop, std: Double, using rng: inout Xoshiro256) {
        guard std > 0 else { return }
        for i in crop.image.indices { crop.image[i] += Float(std * rng.nextGaussian()) }
    }

    /// Gaussian blur of every image channel, sigma in voxels per axis (reflect boundary).
    public static func blur(_ crop: inout Crop, channels: Int, sigma: (z: Double, y: Double, x: Double)) {
        let n = crop.size.count
        for c in 0..<channels {
            var channel = Array(crop.image[(c * n)..<((c + 1) * n)])
            gaussianFilter(&channel, shape: crop.size, sigma: sigma)
            crop.image.replaceSubrange((c * n)..<((c + 1) * n), with: channel)
        }
    }

    /// Motion blur and ghosting along one axis of every image channel (see MotionParameters).
    public static func motion(_ crop: inout Crop, channels: Int, parameters: MotionParameters) {
        let size = crop.size, n = size.count, axis = parameters.axis
        let length = size[axis]
        let stride = axis == 0 ? size.y * size.x : (axis == 1 ? size.x : 1)
        var out = [Float](repeating: 0, count: crop.image.count)
        let shifts = parameters.shifts.isEmpty ? [0.0] : parameters.shifts
        for c in 0..<channels {
            let base = c * n
            for i in 0..<n {
                let position = (i / stride) % length
                let lineStart = i - position * stride
                func sample(_ p: Double) -> Double {
                    let clamped = min(max(p, 0), Double(length - 1))
                    let p0 = Int(clamped), p1 = min(p0 + 1, length - 1), f = clamped - Double(p0)
                    return Double(crop.image[base + lineStart + p0 * stride]) * (1 - f)
                        + Double(crop.image[base + lineStart + p1 * stride]) * f
                }
                var sum = 0.0
                for s in shifts { sum += sample(Double(position) - s) }
                out[base + i] = Float(sum / Double(shifts.count))
            }
            if parameters.ghostWeight > 0 {
                let g = Float(parameters.ghostWeight)
                let blurred = Array(out[base..<(base + n)])
                for i in 0..<n {
                    let position = (i / stride) % length
                    let ghost = i + ((position + length / 2) % length - position) * stride
                    out[base + i] = (1 - g) * blurred[i] + g * blurred[ghost]
                }
            }
        }
        crop.image = out
    }
}

/// Draws and applies the SPEC §4.3 augmentations to training crops.
public struct Augmenter: Sendable {
    public var probability: Double = 0.5
    public var maxDegrees: Double = 20
    public var scaleRange: (Double, Double) = (0.9, 1.1)
    /// Noise standard deviation is drawn from U(0, maxNoiseStd); SPEC: 0.25 of the output range.
    public var maxNoiseStd: Double
    public var maxBlurSigma: Double = 2
    public var maxMotionShift: Double = 2
    public var maxGhostWeight: Double = 0.3
    public var spacing: (z: Double, y: Double, x: Double)

    public init(outputRange: (low: Double, high: Double) = (-1, 1), spacing: (z: Double, y: Double, x: Double) = (1, 1, 1),
                probability: Double = 0.5) {
        maxNoiseStd = 0.25 * abs(outputRange.high - outputRange.low)
        self.spacing = spacing
        self.probability = probability
    }

    public func apply(_ crop: inout Crop, channels: Int, classCount: Int, using rng: inout Xoshiro256) {
        if rng.bernoulli(probability) {
            let p = AffineParameters(
                degrees: (rng.uniform(-maxDegrees, maxDegrees), rng.uniform(-maxDegrees, maxDegrees), rng.uniform(-maxDegrees, maxDegrees)),
                scales: (rng.uniform(scaleRange.0, scaleRange.1), rng.uniform(scaleRange.0, scaleRange.1), rng.uniform(scaleRange.0, scaleRange.1)))
            Augmentations.affine(&crop, channels: channels, classCount: classCount, parameters: p, spacing: spacing)
        }
        if rng.bernoulli(probability) {
            let std = rng.uniform(0, maxNoiseStd)
            Augmentations.noise(&crop, std: std, using: &rng)
        }
        if rng.bernoulli(probability) {
            let axis = rng.nextInt(below: 3)
            let copies = 2 + rng.nextInt(below: 3)
            let shifts = [0.0] + (1..<copies).map { _ in rng.uniform(-maxMotionShift, maxMotionShift) }
            let p = MotionParameters(axis: axis, shifts: shifts, ghostWeight: rng.uniform(0, maxGhostWeight))
            Augmentations.motion(&crop, channels: channels, parameters: p)
        }
        if rng.bernoulli(probability) {
            let sigma = (rng.uniform(0, maxBlurSigma), rng.uniform(0, maxBlurSigma), rng.uniform(0, maxBlurSigma))
            Augmentations.blur(&crop, channels: channels, sigma: sigma)
        }
    }
}

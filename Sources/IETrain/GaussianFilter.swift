// Separable Gaussian smoothing with scipy.ndimage.gaussian_filter's conventions (kernel radius
// int(truncate*sigma + 0.5), weights exp(-x^2 / (2 sigma^2)) normalised to sum 1, sigma 0 skips the axis),
// so posterior smoothing matches InnerEye's `gaussian_smooth_posteriors`.
import Foundation
import IECore

/// How a 1-D filter reads beyond the ends of an axis (scipy.ndimage names).
public enum FilterBoundary: Sendable {
    /// d c b a | a b c d | d c b a (scipy's default, the edge voxel repeated).
    case reflect
    /// a a a a | a b c d | d d d d.
    case nearest

    @inline(__always) func index(_ i: Int, _ n: Int) -> Int {
        if i >= 0 && i < n { return i }
        switch self {
        case .nearest: return i < 0 ? 0 : n - 1
        case .reflect:
            let period = 2 * n
            var m = i % period
            if m < 0 { m += period }
            return m < n ? m : period - 1 - m
        }
    }
}

/// The normalised 1-D Gaussian kernel of scipy (length 2r+1).
public func gaussianKernel(sigma: Double, truncate: Double = 4.0) -> [Double] {
    let radius = Int(truncate * sigma + 0.5)
    var weights = (-radius...radius).map { x -> Double in
        let d = Double(x)
        return exp(-0.5 * d * d / (sigma * sigma))
    }
    let total = weights.reduce(0, +)
    for i in weights.indices { weights[i] /= total }
    return weights
}


/// Smooths one [Z, Y, X] volume in place with sigma (in voxels) per axis. Lines along an axis are
/// independent, so they are filtered in parallel (this runs outside the network's BLAS calls).
public func gaussianFilter(_ volume: inout [Float], shape: Shape3D, sigma: (z: Double, y: Double, x: Double),
                           truncate: Double = 4.0, boundary: FilterBoundary = .reflect) {
    precondition(volume.count == shape.count)
    let sigmas = [sigma.z, sigma.y, sigma.x]
    let strides = [shape.y * shape.x, shape.x, 1]
    for axis in 0..<3 where sigmas[axis] > 1e-15 {
        let kernel = gaussianKernel(sigma: sigmas[axis], truncate: truncate)
        let radius = kernel.count / 2
        let n = shape[axis], stride = strides[axis]
        let others = (0..<3).filter { $0 != axis }
        let outer = shape[others[0]], inner = shape[others[1]]
        let outerStride = strides[others[0]], innerStride = strides[others[1]]
        // Source index of each position of a line extended by `radius` on both sides.
        let sourceIndex = (0..<(n + 2 * radius)).map { boundary.index($0 - radius, n) }
        volume.withUnsafeMutableBufferPointer { data in
            let base = data.baseAddress!
            DispatchQueue.concurrentPerform(iterations: outer) { a in
                var line = [Double](repeating: 0, count: n + 2 * radius)
                for b in 0..<inner {
                    let first = a * outerStride + b * innerStride
                    for j in 0..<line.count { line[j] = Double(base[first + sourceIndex[j] * stride]) }
                    line.withUnsafeBufferPointer { l in
                        kernel.withUnsafeBufferPointer { k in
                            for i in 0..<n {
                                var sum = 0.0
                                for t in 0..<k.count { sum += k[t] * l[i + t] }
                                base[first + i * stride] = Float(sum)
                            }
                        }
                    }
                }
            }
        }
    }
}

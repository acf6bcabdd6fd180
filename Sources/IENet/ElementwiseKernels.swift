import Foundation

// The elementwise kernels of the layers (llm.c style): plain functions over pointers and sizes, no tensors and no
// state. Layers obtain the pointers once (Tensor.withPointer / withMutablePointer; small per-channel arrays are
// passed as arguments) and call one kernel per pass. Activations are NC + spatial, the spatial part contiguous.
// Each kernel's summation order and thread split (parallelFor chunks) are part of its result: keep them.

// MARK: - BatchNorm

/// Per channel: the mean and the biased variance over batch and space, accumulated in Double (simdSum blocks).
func batchNormStatisticsKernel(input x: UnsafePointer<Float>, mean: UnsafeMutablePointer<Double>,
                               variance: UnsafeMutablePointer<Double>, channels: Int, spatial: Int, batch: Int,
                               threads: Int) {
    let count = Double(batch * spatial)
    parallelFor(channels, threads: threads) { c in
        var sum = 0.0
        for n in 0..<batch { sum += simdSum(x + (n * channels + c) * spatial, spatial) }
        let m = sum / count
        var squares = 0.0
        for n in 0..<batch { squares += simdCenteredSquares(x + (n * channels + c) * spatial, spatial, Float(m)) }
        mean[c] = m
        variance[c] = squares / count
    }
}

/// y = gamma (x - mean) invStd + beta per channel (as x * scale + shift), then max(y, 0) when `fusedReLU`.
func batchNormForwardKernel(input x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>,
                            mean: UnsafePointer<Float>, invStd: UnsafePointer<Float>, gamma: UnsafePointer<Float>,
                            beta: UnsafePointer<Float>, channels: Int, spatial: Int, batch: Int, fusedReLU: Bool,
                            threads: Int) {
    parallelFor(batch * channels, threads: threads) { nc in
        let c = nc % channels
        let scale = gamma[c] * invStd[c]
        let shift = beta[c] - mean[c] * scale
        let src = x + nc * spatial, dst = y + nc * spatial
        if fusedReLU {
            for i in 0..<spatial { dst[i] = max(src[i] * scale + shift, 0) }
        } else {
            for i in 0..<spatial { dst[i] = src[i] * scale + shift }
        }
    }
}

/// Training-mode backward: gradInput from the batch statistics, and per channel sumGrad = d beta and
/// sumGradXhat = d gamma (written, not accumulated). Gradients are masked where the fused ReLU was inactive.
func batchNormBackwardKernel(input x: UnsafePointer<Float>, gradOutput g: UnsafePointer<Float>,
                             gradInput d: UnsafeMutablePointer<Float>, mean: UnsafePointer<Float>,
                             invStd: UnsafePointer<Float>, gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>,
                             sumGrad: UnsafeMutablePointer<Double>, sumGradXhat: UnsafeMutablePointer<Double>,
                             channels: Int, spatial: Int, batch: Int, fusedReLU relu: Bool, threads: Int) {
    let count = Float(batch * spatial)
    parallelFor(channels, threads: threads) { c in
        let m = mean[c], s = invStd[c]
        let scale = gamma[c] * s, shift = beta[c] - m * scale
        var a = 0.0, b = 0.0
        for n in 0..<batch {
            let off = (n * channels + c) * spatial
            let (ga, gb) = reluMaskedSums(x + off, g + off, spatial, mean: m, invStd: s, scale: scale, shift: shift,
                                          relu: relu)
            a += ga; b += gb
        }
        sumGrad[c] = a; sumGradXhat[c] = b
        let k1 = Float(a) / count, k2 = Float(b) / count
        for n in 0..<batch {
            let off = (n * channels + c) * spatial
            let src = x + off, gi0 = g + off, dst = d + off
            for i in 0..<spatial {
                let xhat = (src[i] - m) * s
                var gi = gi0[i]
                if relu && src[i] * scale + shift <= 0 { gi = 0 }
                dst[i] = scale * (gi - k1 - xhat * k2)
            }
        }
    }
}

// MARK: - ReLU, add, softmax, channel bias

/// Elements per parallel chunk of the flat elementwise kernels.
private let flatChunk = 65536

/// x = max(x, 0) in place.
func reluForwardKernel(_ x: UnsafeMutablePointer<Float>, count: Int, threads: Int) {
    parallelFor(count / flatChunk + 1, threads: threads) { chunk in
        let start = chunk * flatChunk, end = min(count, start + flatChunk)
        for i in start..<end { x[i] = max(x[i], 0) }
    }
}

/// g = 0 where the ReLU's output y is not positive (in place).
func reluBackwardKernel(output y: UnsafePointer<Float>, gradient g: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count where y[i] <= 0 { g[i] = 0 }
}

/// a += b.
func addInPlaceKernel(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int, threads: Int) {
    parallelFor(count / flatChunk + 1, threads: threads) { chunk in
        let start = chunk * flatChunk, end = min(count, start + flatChunk)
        for i in start..<end { a[i] += b[i] }
    }
}

/// Softmax over the channel axis, each voxel on its own (max subtracted, expf, multiplied by 1 / sum).
func softmaxChannelsKernel(logits l: UnsafePointer<Float>, output o: UnsafeMutablePointer<Float>, batch: Int,
                           classes: Int, spatial: Int, threads: Int) {
    let block = 4096
    let blocks = (spatial + block - 1) / block
    parallelFor(batch * blocks, threads: threads) { job in
        let n = job / blocks, start = (job % blocks) * block, end = min(spatial, start + block)
        let base = n * classes * spatial
        for i in start..<end {
            var m = -Float.infinity
            for c in 0..<classes { m = max(m, l[base + c * spatial + i]) }
            var sum: Float = 0
            for c in 0..<classes {
                let e = expf(l[base + c * spatial + i] - m)
                o[base + c * spatial + i] = e
                sum += e
            }
            let inv = 1 / sum
            for c in 0..<classes { o[base + c * spatial + i] *= inv }
        }
    }
}

/// y[n, c, :] += bias[c].
func addChannelBiasKernel(_ y: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>, channels: Int, spatial: Int,
                          batch: Int, threads: Int) {
    parallelFor(batch * channels, threads: threads) { nc in
        let v = bias[nc % channels]
        let row = y + nc * spatial
        for i in 0..<spatial { row[i] += v }
    }
}

/// sums[c] = sum over n and space of g[n, c, :] (simdSum blocks, batches added in order).
func channelSumsKernel(_ g: UnsafePointer<Float>, sums: UnsafeMutablePointer<Double>, channels: Int, spatial: Int,
                       batch: Int, threads: Int) {
    parallelFor(channels, threads: threads) { c in
        var total = 0.0
        for n in 0..<batch { total += simdSum(g + (n * channels + c) * spatial, spatial) }
        sums[c] = total
    }
}

// MARK: - Reductions

/// Sum of `count` floats: SIMD partial sums per block of 1024, blocks added in Double.
@inline(__always)
func simdSum(_ p: UnsafePointer<Float>, _ count: Int) -> Double {
    var total = 0.0
    var start = 0
    while start < count {
        let end = min(count, start + 1024)
        var acc = SIMD8<Float>()
        var i = start
        while i + 8 <= end {
            acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var tail: Float = acc.sum()
        while i < end { tail += p[i]; i += 1 }
        total += Double(tail)
        start = end
    }
    return total
}

@inline(__always)
func simdCenteredSquares(_ p: UnsafePointer<Float>, _ count: Int, _ mean: Float) -> Double {
    var total = 0.0
    var start = 0
    let m = SIMD8<Float>(repeating: mean)
    while start < count {
        let end = min(count, start + 1024)
        var acc = SIMD8<Float>()
        var i = start
        while i + 8 <= end {
            let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<Float>.self) - m
            acc += d * d
            i += 8
        }
        var tail: Float = acc.sum()
        while i < end { let d = p[i] - mean; tail += d * d; i += 1 }
        total += Double(tail)
        start = end
    }
    return total
}

/// (sum g, sum g*xhat) over one channel row, with g zeroed where the fused ReLU was inactive.
@inline(__always)
func reluMaskedSums(_ x: UnsafePointer<Float>, _ g: UnsafePointer<Float>, _ count: Int, mean: Float, invStd: Float,
                    scale: Float, shift: Float, relu: Bool) -> (Double, Double) {
    var totalG = 0.0, totalGX = 0.0
    var start = 0
    let vm = SIMD8<Float>(repeating: mean), vs = SIMD8<Float>(repeating: invStd)
    let vscale = SIMD8<Float>(repeating: scale), vshift = SIMD8<Float>(repeating: shift)
    let zero = SIMD8<Float>()
    while start < count {
        let end = min(count, start + 1024)
        var accG = SIMD8<Float>(), accGX = SIMD8<Float>()
        var i = start
        while i + 8 <= end {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
            var gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
            if relu { gv.replace(with: zero, where: xv * vscale + vshift .<= zero) }
            accG += gv
            accGX += gv * ((xv - vm) * vs)
            i += 8
        }
        var tailG = accG.sum(), tailGX = accGX.sum()
        while i < end {
            var gi = g[i]
            if relu && x[i] * scale + shift <= 0 { gi = 0 }
            tailG += gi; tailGX += gi * (x[i] - mean) * invStd
            i += 1
        }
        totalG += Double(tailG); totalGX += Double(tailGX)
        start = end
    }
    return (totalG, totalGX)
}

import Foundation

/// The GEMM backend: im2col (or, for large stride-1 "same" layers, implicit GEMM) on OpenBLAS sgemm. It computes
/// every geometry, so it comes last in every backend order. Weight layout [outC, inC, k, k, k] (PyTorch Conv3d).
final class GEMMConv: ConvAlgorithm {
    let name = "gemm"
    let options: EngineOptions
    let scratch = ConvScratch()
    /// The backends before this one (direct, oneDNN): the stride-1 input gradient is a forward convolution of
    /// another geometry, computed by the first of them that takes it, as any layer's would be.
    private let preferred: [ConvAlgorithm]
    private var threads: Int { options.threads }
    /// C[m x n] += A[m x k] * B[n x k]^T (row-major, leading dimensions; last: threads): when set (DNNLConv sets
    /// oneDNN's sgemm for its GEMM path), the weight gradient of non-1x1x1 layers is computed transposed with it.
    var transposedWeightGEMM: ((Int, Int, Int, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int,
                                UnsafeMutablePointer<Float>, Int, Int) -> Void)?

    init(_ options: EngineOptions, preferred: [ConvAlgorithm]) {
        self.options = options
        self.preferred = preferred
    }

    func handles(_ g: ConvGeometry, batch: Int, adjoint: Bool) -> Bool { true }

    /// output[n] = W * im2col(input[n]); output fully overwritten.
    func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                 output: UnsafeMutablePointer<Float>) {
        if g.isPointwise {
            for n in 0..<batch {
                sgemm(m: g.outChannels, n: g.outSpatial, k: g.inChannels, a: weight, lda: g.inChannels,
                      b: input + n * g.inChannels * g.inSpatial, ldb: g.inSpatial, beta: 0,
                      c: output + n * g.outChannels * g.outSpatial, ldc: g.outSpatial, threads: threads)
            }
            return
        }
        if g.usesImplicitGEMM(options) {
            implicitForward(g, batch: batch, input: input, weight: weight, output: output)
            return
        }
        forEachSlab(g.slabs(batch: batch, options), threads: threads, scratch: scratch) { slab, worker, inner in
            let x = input + slab.sample * g.inChannels * g.inSpatial
            let y = output + slab.sample * g.outChannels * g.outSpatial
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let col = scratch.buffer(worker, count: g.colRows * columns)
            im2col(g, input: x, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
            sgemm(m: g.outChannels, n: columns, k: g.colRows, a: weight, lda: g.colRows,
                  b: col, ldb: columns, beta: 0, c: y + slab.rowStart * g.outW, ldc: g.outSpatial, threads: inner)
        }
    }

    /// Stride-1 "same" convolution without im2col: the input is zero-padded once; for every kernel tap the
    /// shifted padded volume *is* a strided [Cin x columns] matrix (row stride = padded channel size), so the
    /// output is the sum of k^3 GEMMs W_tap[Cout x Cin] * P_shifted, computed on the padded (y, x) grid of a few
    /// z-slices into a cache-sized buffer, whose valid columns are then copied out.
    func implicitForward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let k = g.kernel, p = g.padding, taps = k * k * k
        let pd = g.inD + 2 * p, ph = g.inH + 2 * p, pw = g.inW + 2 * p
        let paddedSpatial = pd * ph * pw
        let plane = ph * pw
        // Weights per tap: [tap][co][ci].
        let tapWeights = UnsafeMutablePointer<Float>.allocate(capacity: taps * g.outChannels * g.inChannels)
        defer { tapWeights.deallocate() }
        for co in 0..<g.outChannels {
            for ci in 0..<g.inChannels {
                let src = weight + (co * g.inChannels + ci) * taps
                for t in 0..<taps { tapWeights[(t * g.outChannels + co) * g.inChannels + ci] = src[t] }
            }
        }
        let padded = scratch.padded(count: batch * g.inChannels * paddedSpatial)
        parallelFor(batch * g.inChannels, threads: threads) { nc in
            let src = input + nc * g.inSpatial
            let dst = padded + nc * paddedSpatial
            dst.update(repeating: 0, count: p * plane)
            for z in 0..<g.inD {
                let slice = dst + (z + p) * plane
                slice.update(repeating: 0, count: p * pw)
                for y in 0..<g.inH {
                    let line = slice + (y + p) * pw
                    line.update(repeating: 0, count: p)
                    (line + p).update(from: src + (z * g.inH + y) * g.inW, count: g.inW)
                    (line + p + g.inW).update(repeating: 0, count: p)
                }
                (slice + (g.inH + p) * pw).update(repeating: 0, count: p * pw)
            }
            (dst + (g.inD + p) * plane).update(repeating: 0, count: p * plane)
        }
        // Slabs of whole output z-slices sized so the [Cout x columns] accumulator stays cache-sized.
        let slicesPerSlab = max(1, min(g.outD, options.slabFloats / max(1, g.outChannels * plane)))
        var slabs: [Slab] = []
        for n in 0..<batch {
            var z0 = 0
            while z0 < g.outD { slabs.append(Slab(sample: n, rowStart: z0, rowEnd: min(g.outD, z0 + slicesPerSlab))); z0 += slicesPerSlab }
        }
        forEachSlab(slabs, threads: threads, scratch: scratch) { slab, worker, inner in
            let z0 = slab.rowStart, z1 = slab.rowEnd
            // Columns from padded position (z0, 0, 0) to the last valid output (z1-1, H-1, W-1).
            let columns = ((z1 - 1 - z0) * ph + g.outH - 1) * pw + g.outW
            let accumulator = scratch.buffer(worker, count: g.outChannels * columns)
            let base = padded + slab.sample * g.inChannels * paddedSpatial + z0 * plane
            for kz in 0..<k {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let t = (kz * k + ky) * k + kx
                        sgemm(m: g.outChannels, n: columns, k: g.inChannels,
                              a: tapWeights + t * g.outChannels * g.inChannels, lda: g.inChannels,
                              b: base + (kz * ph + ky) * pw + kx, ldb: paddedSpatial,
                              beta: t == 0 ? 0 : 1, c: accumulator, ldc: columns, threads: inner)
                    }
                }
            }
            let out = output + slab.sample * g.outChannels * g.outSpatial
            for co in 0..<g.outChannels {
                for z in z0..<z1 {
                    for y in 0..<g.outH {
                        (out + (co * g.outD + z) * g.outH * g.outW + y * g.outW)
                            .update(from: accumulator + co * columns + ((z - z0) * ph + y) * pw, count: g.outW)
                    }
                }
            }
        }
    }

    /// gradWeight += gradOutput * im2col(input)^T over all slabs (per-worker partial sums, added in order).
    func accumulateWeightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>) {
        if g.usesImplicitWeightGradient(options) {
            return implicitWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
        }
        let slabs = g.slabs(batch: batch, options)
        let workers = min(threads, slabs.count)
        // Only for few output channels: at 512->512 (4^3) the transposed form halved the layer's speed (the
        // 13824 x 512 transposed add and oneDNN's sgemm at that shape), at 128->128 it changed nothing.
        let transposed = transposedWeightGEMM != nil && !g.isPointwise && g.outChannels <= 64
        let partials = workers > 1 || transposed ? GradientPartials(count: g.outChannels * g.colRows, workers: max(1, workers)) : nil
        forEachSlab(slabs, threads: threads, scratch: scratch) { slab, worker, inner in
            let x = input + slab.sample * g.inChannels * g.inSpatial
            let gy = gradOutput + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let target = partials?.partial(worker) ?? gradWeight
            if transposed, let transposedWeightGEMM {
                // dW^T [colRows x Cout] += col * gy^T: the long dimension as the GEMM's rows (oneDNN's sgemm,
                // measured 80 vs 65 GFLOP/s for OpenBLAS's either way round at 864 x 32 x 256, Zen 3).
                let col = scratch.buffer(worker, count: g.colRows * columns)
                im2col(g, input: x, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
                transposedWeightGEMM(g.colRows, g.outChannels, columns, col, columns, gy, g.outSpatial, target,
                                     g.outChannels, inner)
                return
            }
            if g.isPointwise {
                sgemm(transB: true, m: g.outChannels, n: g.inChannels, k: columns, a: gy, lda: g.outSpatial,
                      b: x + slab.rowStart * g.outW, ldb: g.inSpatial, beta: 1, c: target, ldc: g.inChannels, threads: inner)
                return
            }
            let col = scratch.buffer(worker, count: g.colRows * columns)
            im2col(g, input: x, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
            sgemm(transB: true, m: g.outChannels, n: g.colRows, k: columns, a: gy, lda: g.outSpatial,
                  b: col, ldb: columns, beta: 1, c: target, ldc: g.colRows, threads: inner)
        }
        if transposed { partials?.addTransposedInto(gradWeight, rows: g.colRows) } else { partials?.addInto(gradWeight) }
    }

    /// Weight gradient without im2col: for each output z-slice and kernel row (kz, ky), one GEMM
    ///   dW[kz, ky][(ci, kx)][co] += sum over the slice's voxels v = (y, x) of X[ci, kx][ky][v] * gradOutput[co][v]
    /// where X[ci, kx] holds, for input slice s z + kz - p, the input at padded (s r + phase, s x + kx) in
    /// row r of phase block `phase` (s phases of rows; zero outside the image). Output voxel (y, x) meets the
    /// input through tap (ky, kx) at padded (s y + ky, s x + kx) = X[ci, kx] phase ky % s, row y + ky / s: one
    /// contiguous run of H_out W_out values per (ci, kx) row of A, against the gradOutput slice as it lies. So the
    /// k^2 GEMMs [Cin k x H_out W_out] * [Cout x H_out W_out]^T per slice replace im2col's k^3-fold copy of the
    /// input with a k-fold (stride 1) or k/s-fold copy. Measured on the UNet's 32->32 layer at 64^3 (weight gradient
    /// alone, 1 thread): 61-64 -> ~77 GFLOP/s. Input slices are copied once per worker while they are in use (a
    /// ring of k); output slices go to workers in contiguous runs (fixed assignment), each worker sums into its own
    /// partial, added in worker order: the result depends only on the thread count.
    func implicitWeightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>) {
        let k = g.kernel, p = g.padding, stride = g.stride
        let (depth, height, width) = (g.inD, g.inH, g.inW)
        let columns = g.outH * g.outW
        let rowsPerPhase = g.outH + (k - 1) / stride
        let phaseFloats = rowsPerPhase * g.outW
        let copyFloats = g.weightGradientCopyFloats  // one (ci, kx) row block of A: `stride` phase blocks
        let rowsOfA = g.inChannels * k
        let sliceFloats = rowsOfA * copyFloats
        let tapRowFloats = rowsOfA * g.outChannels  // one (kz, ky) block of the partial
        // Contiguous runs of output z-slices: `threads` runs per sample, spread over the workers by forEachSlab.
        let runs = max(1, min(g.outD, threads))
        var slabs: [Slab] = []
        for n in 0..<batch {
            for r in 0..<runs { slabs.append(Slab(sample: n, rowStart: g.outD * r / runs, rowEnd: g.outD * (r + 1) / runs)) }
        }
        let workers = max(1, min(threads, slabs.count, ConvScratch.maxWorkers))
        let partials = GradientPartials(count: k * k * tapRowFloats, workers: workers)
        // Which (sample, input slice) each worker's ring slot holds.
        let held = UnsafeMutablePointer<(Int, Int)>.allocate(capacity: workers * k)
        held.initialize(repeating: (-1, -1), count: workers * k)
        defer { held.deallocate() }
        forEachSlab(slabs, threads: threads, scratch: scratch) { slab, worker, inner in
            let ring = scratch.buffer(worker, count: k * sliceFloats)
            let partial = partials.partial(worker)
            let x = input + slab.sample * g.inChannels * g.inSpatial
            let dy = gradOutput + slab.sample * g.outChannels * g.outSpatial
            // X of input slice iz of this sample (its ring slot, refilled when it holds another slice).
            func copies(_ iz: Int) -> UnsafeMutablePointer<Float> {
                let slot = ring + (iz % k) * sliceFloats
                if held[worker * k + iz % k] == (slab.sample, iz) { return slot }
                for ci in 0..<g.inChannels {
                    let source = x + (ci * depth + iz) * height * width
                    for kx in 0..<k {
                        // Output columns whose input column stride * x + kx - p lies inside the image.
                        let (lo, hi) = g.validRange(offset: kx, inSize: width, outSize: g.outW)
                        for phase in 0..<stride {
                            let block = slot + (ci * k + kx) * copyFloats + phase * phaseFloats
                            for r in 0..<rowsPerPhase {
                                let row = block + r * g.outW
                                let y = stride * r + phase - p
                                guard y >= 0 && y < height && lo < hi else {
                                    row.update(repeating: 0, count: g.outW)
                                    continue
                                }
                                row.update(repeating: 0, count: lo)
                                let line = source + y * width + kx - p
                                if stride == 1 {
                                    (row + lo).update(from: line + lo, count: hi - lo)
                                } else {
                                    for column in lo..<hi { row[column] = line[stride * column] }
                                }
                                (row + hi).update(repeating: 0, count: g.outW - hi)
                            }
                        }
                    }
                }
                held[worker * k + iz % k] = (slab.sample, iz)
                return slot
            }
            for z in slab.rowStart..<slab.rowEnd {
                let gradientSlice = dy + z * columns
                for kz in 0..<k {
                    let iz = stride * z + kz - p
                    if iz < 0 || iz >= depth { continue }  // zero padding: no contribution
                    let slot = copies(iz)
                    for ky in 0..<k {
                        let a = slot + (ky % stride) * phaseFloats + (ky / stride) * g.outW
                        let target = partial + (kz * k + ky) * tapRowFloats
                        if let transposedWeightGEMM {
                            transposedWeightGEMM(rowsOfA, g.outChannels, columns, a, copyFloats, gradientSlice,
                                                 g.outSpatial, target, g.outChannels, inner)
                        } else {
                            sgemm(transB: true, m: rowsOfA, n: g.outChannels, k: columns, a: a, lda: copyFloats,
                                  b: gradientSlice, ldb: g.outSpatial, beta: 1, c: target, ldc: g.outChannels,
                                  threads: inner)
                        }
                    }
                }
            }
        }
        let total = partials.summed()
        let taps = k * k * k
        for kz in 0..<k {
            for ky in 0..<k {
                for ci in 0..<g.inChannels {
                    for kx in 0..<k {
                        let row = total + (kz * k + ky) * tapRowFloats + (ci * k + kx) * g.outChannels
                        let tap = (kz * k + ky) * k + kx
                        for co in 0..<g.outChannels { gradWeight[(co * g.inChannels + ci) * taps + tap] += row[co] }
                    }
                }
            }
        }
    }

    /// The GEMM path's input gradient of the convolution (fully overwritten).
    func backwardData(_ g: ConvGeometry, batch: Int, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      gradInput: UnsafeMutablePointer<Float>) {
        if g.isPointwise {
            for n in 0..<batch {
                sgemm(transA: true, m: g.inChannels, n: g.inSpatial, k: g.outChannels, a: weight, lda: g.inChannels,
                      b: gradOutput + n * g.outChannels * g.outSpatial, ldb: g.outSpatial, beta: 0,
                      c: gradInput + n * g.inChannels * g.inSpatial, ldc: g.inSpatial, threads: threads)
            }
            return
        }
        // Stride 1: the input gradient is itself a convolution of gradOutput with the flipped, transposed kernel
        // (padding k-1-p). That GEMM has the large inner dimension Cout*k^3 and needs no col2im scatter.
        // With very few input channels that GEMM degenerates to a matrix-vector product, so col2im is used.
        if g.stride == 1 && g.kernel - 1 - g.padding >= 0 && g.inChannels >= 8 {
            let k3 = g.kernel * g.kernel * g.kernel
            let flippedWeight = UnsafeMutablePointer<Float>.allocate(capacity: g.outChannels * g.colRows)
            defer { flippedWeight.deallocate() }
            for co in 0..<g.outChannels {
                for ci in 0..<g.inChannels {
                    let src = weight + (co * g.inChannels + ci) * k3
                    let dst = flippedWeight + (ci * g.outChannels + co) * k3
                    for t in 0..<k3 { dst[t] = src[k3 - 1 - t] }
                }
            }
            let transposed = ConvGeometry(inChannels: g.outChannels, outChannels: g.inChannels, kernel: g.kernel,
                                          stride: 1, padding: g.kernel - 1 - g.padding,
                                          inD: g.outD, inH: g.outH, inW: g.outW)
            precondition(transposed.outD == g.inD && transposed.outH == g.inH && transposed.outW == g.inW)
            let algorithm = preferred.first { $0.handles(transposed, batch: batch, adjoint: false) } ?? self
            algorithm.forward(transposed, batch: batch, input: gradOutput, weight: flippedWeight, output: gradInput)
            return
        }
        adjointForward(g, batch: batch, source: gradOutput, weight: weight, target: gradInput)
    }

    /// The adjoint of `forward` as a function of the input: target = col2im(W^T * source), fully overwritten.
    /// This is the transposed convolution's forward pass and the strided convolution's input gradient.
    /// Slabs overlap in the target, so they run in order (the GEMMs and col2im use the threads inside).
    func adjointForward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        target: UnsafeMutablePointer<Float>) {
        if options.subPixelAdjoint, let subPixel = SubPixelAdjoint(g) {
            subPixel.run(batch: batch, source: source, weight: weight, target: target, options: options, scratch: scratch)
            return
        }
        scratch.reserve(workers: 1)
        target.update(repeating: 0, count: batch * g.inChannels * g.inSpatial)
        for slab in g.slabs(batch: batch, options) {
            let gy = source + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let col = scratch.buffer(0, count: g.colRows * columns)
            sgemm(transA: true, m: g.colRows, n: columns, k: g.outChannels, a: weight, lda: g.colRows,
                  b: gy, ldb: g.outSpatial, beta: 0, c: col, ldc: columns, threads: threads)
            col2im(g, col: col, input: target + slab.sample * g.inChannels * g.inSpatial,
                   rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: threads)
        }
    }

    /// Backward of the transposed convolution y = adjointData(x): gradX = forward(gradY) and
    /// gradWeight += x * im2col(gradY)^T, sharing one im2col of gradY per slab.
    func adjointBackward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradTarget: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                         gradSource: UnsafeMutablePointer<Float>?) {
        let slabs = g.slabs(batch: batch, options)
        let workers = min(threads, slabs.count)
        let partials = workers > 1 ? GradientPartials(count: g.outChannels * g.colRows, workers: workers) : nil
        forEachSlab(slabs, threads: threads, scratch: scratch) { slab, worker, inner in
            let x = source + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW
            let gy = gradTarget + slab.sample * g.inChannels * g.inSpatial
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let col = scratch.buffer(worker, count: g.colRows * columns)
            im2col(g, input: gy, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
            sgemm(transB: true, m: g.outChannels, n: g.colRows, k: columns, a: x, lda: g.outSpatial,
                  b: col, ldb: columns, beta: 1, c: partials?.partial(worker) ?? gradWeight, ldc: g.colRows, threads: inner)
            if let gradSource {
                sgemm(m: g.outChannels, n: columns, k: g.colRows, a: weight, lda: g.colRows, b: col, ldb: columns,
                      beta: 0, c: gradSource + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW,
                      ldc: g.outSpatial, threads: inner)
            }
        }
        partials?.addInto(gradWeight)
    }
}

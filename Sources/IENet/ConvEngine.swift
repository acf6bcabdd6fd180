import Foundation
import CBLAS

/// Geometry of one 3D convolution (cubic kernel, equal stride and padding on all axes).
struct ConvGeometry: Equatable {
    let inChannels: Int
    let outChannels: Int
    let kernel: Int
    let stride: Int
    let padding: Int
    let inD: Int, inH: Int, inW: Int

    var outD: Int { (inD + 2 * padding - kernel) / stride + 1 }
    var outH: Int { (inH + 2 * padding - kernel) / stride + 1 }
    var outW: Int { (inW + 2 * padding - kernel) / stride + 1 }
    var inSpatial: Int { inD * inH * inW }
    var outSpatial: Int { outD * outH * outW }
    /// Rows of the im2col matrix = the GEMM's inner dimension.
    var colRows: Int { inChannels * kernel * kernel * kernel }
    /// A 1x1x1 stride-1 convolution needs no im2col: the input itself is the column matrix.
    var isPointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }
    /// Large stride-1 "same" convolutions skip im2col (see ConvKernels.implicitForward). Measured (1 thread,
    /// per CPU-second): 32->32 at 64^3 69 -> 75 GFLOP/s, 64->64 at 32^3 82 -> 86; but 128->128 at 16^3 82 -> 78,
    /// where the per-tap GEMMs' inner dimension is large enough that im2col's single GEMM wins.
    var usesImplicitGEMM: Bool {
        ConvScratch.implicitGEMMEnabled && stride == 1 && kernel > 1 && 2 * padding == kernel - 1
            && inChannels >= 8 && inChannels <= 64 && outW >= 16
    }

    /// Output rows (z*outH + y) per slab so that the im2col scratch stays near `scratchBudgetFloats`.
    /// Deep layers have many column rows and few voxels: a cache-sized slab would leave the GEMM only a few
    /// dozen columns and re-stream the (large) weight matrix per slab, so slabs keep at least
    /// `ConvScratch.columnsPerOutputChannel * outChannels` columns (measured: 512->512 at 4^3 went from 50 to
    /// 75 GFLOP/s, 256->256 at 8^3 from 75 to 90), unless that would exceed `ConvScratch.ceilingFloats`.
    var rowsPerSlab: Int {
        let perRow = max(1, colRows * outW)
        let rows = outD * outH
        let byBudget = ConvScratch.budgetFloats / perRow
        let byColumns = (ConvScratch.columnsPerOutputChannel * outChannels + outW - 1) / outW
        let byCeiling = ConvScratch.ceilingFloats / perRow
        return max(1, min(rows, max(byBudget, min(byColumns, byCeiling))))
    }

    /// Valid output x range [lo, hi) for kernel offset kx: those whose input index lies inside the image.
    @inline(__always) func validRange(offset: Int, inSize: Int, outSize: Int) -> (Int, Int) {
        // input index = o*stride - padding + offset must lie in [0, inSize)
        let lowNumerator = padding - offset
        let lo = lowNumerator <= 0 ? 0 : (lowNumerator + stride - 1) / stride
        let highNumerator = inSize - 1 + padding - offset
        let hi = highNumerator < 0 ? 0 : min(outSize, highNumerator / stride + 1)
        return (min(lo, outSize), max(hi, min(lo, outSize)))
    }
}

/// One reusable scratch area for column matrices: avoids page-faulting tens of MB per layer call.
/// Layers run one after another, so a single process-wide buffer is enough.
enum ConvScratch {
    /// Floats per column buffer. Small enough that a slab's columns stay in cache between im2col and the GEMM's
    /// packing (the conv is memory-bound otherwise); IENET_SLAB_FLOATS overrides it for tuning.
    nonisolated(unsafe) static var budgetFloats: Int = {
        if let text = ProcessInfo.processInfo.environment["IENET_SLAB_FLOATS"], let n = Int(text), n > 0 { return n }
        return 1 << 18
    }()
    nonisolated(unsafe) static var columnsPerOutputChannel: Int = {
        if let text = ProcessInfo.processInfo.environment["IENET_COLUMNS_PER_CHANNEL"], let n = Int(text), n >= 0 { return n }
        return 8
    }()
    nonisolated(unsafe) static var implicitGEMMEnabled: Bool = ProcessInfo.processInfo.environment["IENET_IMPLICIT_GEMM"] != "0"
    /// Hard cap on one column buffer (16 Mi floats = 64 MiB).
    nonisolated(unsafe) static var ceilingFloats = 1 << 24
    /// One column buffer per worker, in a table allocated once: workers of a concurrentPerform each touch only
    /// their own slot through the pointer (growing a shared Swift array from workers was a data race that
    /// ThreadSanitizer reported).
    private struct Slot { var buffer: UnsafeMutablePointer<Float>?; var capacity: Int }
    static let maxWorkers = 1024
    nonisolated(unsafe) private static let slots: UnsafeMutablePointer<Slot> = {
        let table = UnsafeMutablePointer<Slot>.allocate(capacity: maxWorkers)
        table.initialize(repeating: Slot(buffer: nil, capacity: 0), count: maxWorkers)
        return table
    }()

    nonisolated(unsafe) private static var paddedBuffer: UnsafeMutablePointer<Float>?
    nonisolated(unsafe) private static var paddedCapacity = 0

    /// The zero-padded copy of a layer input used by the implicit-GEMM path (one at a time).
    static func padded(count: Int) -> UnsafeMutablePointer<Float> {
        if paddedCapacity < count {
            paddedBuffer?.deallocate()
            paddedBuffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            paddedCapacity = count
        }
        return paddedBuffer!
    }

    /// Checks that `workers` slots exist (the table is fixed; callers cap their worker count by it).
    static func reserve(workers: Int) {
        precondition(workers <= maxWorkers, "ConvScratch: \(workers) workers, at most \(maxWorkers)")
    }

    static func buffer(_ index: Int, count: Int) -> UnsafeMutablePointer<Float> {
        precondition(index >= 0 && index < maxWorkers, "ConvScratch: worker \(index) beyond the slot table")
        let slot = slots + index
        if slot.pointee.capacity < count {
            slot.pointee.buffer?.deallocate()
            slot.pointee.buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            slot.pointee.capacity = count
        }
        guard let buffer = slot.pointee.buffer else { preconditionFailure("ConvScratch: slot \(index) has no buffer") }
        return buffer
    }
}

@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    _ = threadCount  // make sure OpenBLAS got our thread count
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), 1.0, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Writes the column matrix for output rows [rowStart, rowEnd) of one sample:
/// col[(ci,kz,ky,kx), (row - rowStart)*outW + x] = input[ci, z*s-p+kz, y*s-p+ky, x*s-p+kx] (0 outside).
func im2col(_ g: ConvGeometry, input: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>,
            rowStart: Int, rowEnd: Int, threads: Int = threadCount) {
    if g.stride == 1 && g.outW == g.inW && g.outH == g.inH {
        im2colSameSize(g, input: input, col: col, rowStart: rowStart, rowEnd: rowEnd, threads: threads)
        return
    }
    let k = g.kernel, s = g.stride, p = g.padding
    let outW = g.outW, outH = g.outH
    let columns = (rowEnd - rowStart) * outW
    parallelFor(g.inChannels, threads: threads) { ci in
        let source = input + ci * g.inSpatial
        for kz in 0..<k {
            for ky in 0..<k {
                for kx in 0..<k {
                    let r = ((ci * k + kz) * k + ky) * k + kx
                    var dst = col + r * columns
                    let (xlo, xhi) = g.validRange(offset: kx, inSize: g.inW, outSize: outW)
                    for row in rowStart..<rowEnd {
                        let z = row / outH, y = row - (row / outH) * outH
                        let iz = z * s - p + kz, iy = y * s - p + ky
                        if iz < 0 || iz >= g.inD || iy < 0 || iy >= g.inH || xlo >= xhi {
                            dst.update(repeating: 0, count: outW)
                        } else {
                            if xlo > 0 { dst.update(repeating: 0, count: xlo) }
                            let line = source + (iz * g.inH + iy) * g.inW - p + kx
                            if s == 1 {
                                (dst + xlo).update(from: line + xlo, count: xhi - xlo)
                            } else {
                                for x in xlo..<xhi { dst[x] = line[x * s] }
                            }
                            if xhi < outW { (dst + xhi).update(repeating: 0, count: outW - xhi) }
                        }
                        dst += outW
                    }
                }
            }
        }
    }
}

/// im2col for stride 1 when output rows are as long as input rows ("same" padding in x and y): the rows of
/// one z-slice that lie inside the image form one contiguous block in both the input and the column matrix,
/// so each (tap, slice) is a single shifted copy plus zeroing of the few padding columns.
func im2colSameSize(_ g: ConvGeometry, input: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>,
                    rowStart: Int, rowEnd: Int, threads: Int) {
    let k = g.kernel, p = g.padding
    let width = g.outW, height = g.outH
    let columns = (rowEnd - rowStart) * width
    parallelFor(g.inChannels, threads: threads) { ci in
        let source = input + ci * g.inSpatial
        for kz in 0..<k {
            for ky in 0..<k {
                for kx in 0..<k {
                    let r = ((ci * k + kz) * k + ky) * k + kx
                    let rowBase = col + r * columns
                    let shift = kx - p
                    var row = rowStart
                    while row < rowEnd {
                        let z = row / height
                        let sliceEnd = min(rowEnd, (z + 1) * height)
                        let yStart = row - z * height, yEnd = sliceEnd - z * height
                        let dst = rowBase + (row - rowStart) * width
                        let iz = z - p + kz
                        // Rows y whose input row iy = y - p + ky lies inside the image.
                        let validStart = max(yStart, p - ky), validEnd = min(yEnd, g.inH + p - ky)
                        if iz < 0 || iz >= g.inD || validStart >= validEnd {
                            dst.update(repeating: 0, count: (yEnd - yStart) * width)
                        } else {
                            if validStart > yStart { dst.update(repeating: 0, count: (validStart - yStart) * width) }
                            let blockDst = dst + (validStart - yStart) * width
                            let blockSrc = source + (iz * g.inH + validStart - p + ky) * g.inW + shift
                            let count = (validEnd - validStart) * width
                            let lo = max(0, -shift), hi = count - max(0, shift)
                            if hi > lo { (blockDst + lo).update(from: blockSrc + lo, count: hi - lo) }
                            // Columns whose input x falls outside the row read a neighbouring row: zero them.
                            if shift != 0 {
                                let rows = validEnd - validStart
                                for y in 0..<rows {
                                    let line = blockDst + y * width
                                    if shift < 0 {
                                        for x in 0..<(-shift) { line[x] = 0 }
                                    } else {
                                        for x in (width - shift)..<width { line[x] = 0 }
                                    }
                                }
                            }
                            if validEnd < yEnd {
                                (dst + (validEnd - yStart) * width).update(repeating: 0, count: (yEnd - validEnd) * width)
                            }
                        }
                        row = sliceEnd
                    }
                }
            }
        }
    }
}

/// Adjoint of `im2col`: scatters-adds the column matrix back into `input` (which must be initialised).
/// Parallel over input channels: each channel only receives its own rows, so this is race-free and deterministic.
func col2im(_ g: ConvGeometry, col: UnsafePointer<Float>, input: UnsafeMutablePointer<Float>,
            rowStart: Int, rowEnd: Int, threads: Int = threadCount) {
    let k = g.kernel, s = g.stride, p = g.padding
    let outW = g.outW, outH = g.outH
    let columns = (rowEnd - rowStart) * outW
    parallelFor(g.inChannels, threads: threads) { ci in
        let target = input + ci * g.inSpatial
        for kz in 0..<k {
            for ky in 0..<k {
                for kx in 0..<k {
                    let r = ((ci * k + kz) * k + ky) * k + kx
                    var src = col + r * columns
                    let (xlo, xhi) = g.validRange(offset: kx, inSize: g.inW, outSize: outW)
                    for row in rowStart..<rowEnd {
                        let z = row / outH, y = row - (row / outH) * outH
                        let iz = z * s - p + kz, iy = y * s - p + ky
                        if !(iz < 0 || iz >= g.inD || iy < 0 || iy >= g.inH || xlo >= xhi) {
                            let line = target + (iz * g.inH + iy) * g.inW - p + kx
                            if s == 1 {
                                for x in xlo..<xhi { line[x] += src[x] }
                            } else {
                                for x in xlo..<xhi { line[x * s] += src[x] }
                            }
                        }
                        src += outW
                    }
                }
            }
        }
    }
}

/// A block of output rows (z*outH + y) of one sample: the unit of work of the conv kernels.
struct Slab {
    let sample: Int
    let rowStart: Int
    let rowEnd: Int
}

extension ConvGeometry {
    func slabs(batch: Int) -> [Slab] {
        let rows = outD * outH, step = rowsPerSlab
        var out: [Slab] = []
        for n in 0..<batch {
            var r0 = 0
            while r0 < rows { out.append(Slab(sample: n, rowStart: r0, rowEnd: min(rows, r0 + step))); r0 += step }
        }
        return out
    }
}

/// Runs `body(slab, worker, innerThreads)` over all slabs. With one thread, or a single slab, everything runs on
/// the caller and the GEMMs use OpenBLAS's threads (innerThreads = threadCount). Otherwise each of the workers
/// takes every workers-th slab with OpenBLAS held at one thread (innerThreads = 1): one level of parallelism at
/// a time, and a fixed slab-to-worker assignment, so results depend only on the thread count.
func forEachSlab(_ slabs: [Slab], _ body: (Slab, Int, Int) -> Void) {
    let threads = threadCount
    let workers = min(threads, slabs.count, ConvScratch.maxWorkers)
    ConvScratch.reserve(workers: max(1, workers))
    if workers <= 1 {
        for slab in slabs { body(slab, 0, threads) }
        return
    }
    openblas_set_num_threads(1)
    defer { openblas_set_num_threads(Int32(threads)) }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var i = worker
            while i < slabs.count { body(slabs[i], worker, 1); i += workers }
        }
    }
}

/// Per-worker copies of a gradient that slabs accumulate into, summed in worker order at the end.
final class GradientPartials {
    let count: Int
    let workers: Int
    let storage: UnsafeMutablePointer<Float>
    init(count: Int, workers: Int) {
        self.count = count; self.workers = workers
        storage = UnsafeMutablePointer<Float>.allocate(capacity: count * workers)
        storage.update(repeating: 0, count: count * workers)
    }
    deinit { storage.deallocate() }
    func partial(_ worker: Int) -> UnsafeMutablePointer<Float> { storage + worker * count }
    func addInto(_ target: UnsafeMutablePointer<Float>) {
        for w in 0..<workers {
            let p = partial(w)
            for i in 0..<count { target[i] += p[i] }
        }
    }
}

/// Convolution kernels shared by Conv3d and ConvTranspose3d. Weight layout [outC, inC, k, k, k] (PyTorch Conv3d).
enum ConvKernels {
    /// output[n] = W * im2col(input[n]); output fully overwritten.
    static func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        output: UnsafeMutablePointer<Float>) {
        // Few input channels (the first layer): the direct kernel, under either backend.
        if DirectConv.handles(g) {
            DirectConv.forward(g, batch: batch, input: input, weight: weight, output: output)
            return
        }
        #if IE_DNNL
        if ConvBackend.current == .dnnl, DNNLConv.supports(g, batch: batch) {
            DNNLConv.forward(g, batch: batch, input: input, weight: weight, output: output)
            return
        }
        #endif
        if g.isPointwise {
            for n in 0..<batch {
                sgemm(m: g.outChannels, n: g.outSpatial, k: g.inChannels, a: weight, lda: g.inChannels,
                      b: input + n * g.inChannels * g.inSpatial, ldb: g.inSpatial, beta: 0,
                      c: output + n * g.outChannels * g.outSpatial, ldc: g.outSpatial)
            }
            return
        }
        if g.usesImplicitGEMM {
            implicitForward(g, batch: batch, input: input, weight: weight, output: output)
            return
        }
        forEachSlab(g.slabs(batch: batch)) { slab, worker, inner in
            let x = input + slab.sample * g.inChannels * g.inSpatial
            let y = output + slab.sample * g.outChannels * g.outSpatial
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let col = ConvScratch.buffer(worker, count: g.colRows * columns)
            im2col(g, input: x, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
            sgemm(m: g.outChannels, n: columns, k: g.colRows, a: weight, lda: g.colRows,
                  b: col, ldb: columns, beta: 0, c: y + slab.rowStart * g.outW, ldc: g.outSpatial)
        }
    }

    /// Stride-1 "same" convolution without im2col: the input is zero-padded once; for every kernel tap the
    /// shifted padded volume *is* a strided [Cin x columns] matrix (row stride = padded channel size), so the
    /// output is the sum of k^3 GEMMs W_tap[Cout x Cin] * P_shifted, computed on the padded (y, x) grid of a few
    /// z-slices into a cache-sized buffer, whose valid columns are then copied out.
    static func implicitForward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
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
        let padded = ConvScratch.padded(count: batch * g.inChannels * paddedSpatial)
        parallelFor(batch * g.inChannels) { nc in
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
        let slicesPerSlab = max(1, min(g.outD, ConvScratch.budgetFloats / max(1, g.outChannels * plane)))
        var slabs: [Slab] = []
        for n in 0..<batch {
            var z0 = 0
            while z0 < g.outD { slabs.append(Slab(sample: n, rowStart: z0, rowEnd: min(g.outD, z0 + slicesPerSlab))); z0 += slicesPerSlab }
        }
        forEachSlab(slabs) { slab, worker, _ in
            let z0 = slab.rowStart, z1 = slab.rowEnd
            // Columns from padded position (z0, 0, 0) to the last valid output (z1-1, H-1, W-1).
            let columns = ((z1 - 1 - z0) * ph + g.outH - 1) * pw + g.outW
            let accumulator = ConvScratch.buffer(worker, count: g.outChannels * columns)
            let base = padded + slab.sample * g.inChannels * paddedSpatial + z0 * plane
            for kz in 0..<k {
                for ky in 0..<k {
                    for kx in 0..<k {
                        let t = (kz * k + ky) * k + kx
                        sgemm(m: g.outChannels, n: columns, k: g.inChannels,
                              a: tapWeights + t * g.outChannels * g.inChannels, lda: g.inChannels,
                              b: base + (kz * ph + ky) * pw + kx, ldb: paddedSpatial,
                              beta: t == 0 ? 0 : 1, c: accumulator, ldc: columns)
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
    static func weightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                               gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>) {
        if DirectConv.handles(g) {
            DirectConv.backward(g, batch: batch, input: input, weight: nil, gradOutput: gradOutput,
                                gradWeight: gradWeight, gradInput: nil)
            return
        }
        let slabs = g.slabs(batch: batch)
        let workers = min(threadCount, slabs.count)
        let partials = workers > 1 ? GradientPartials(count: g.outChannels * g.colRows, workers: workers) : nil
        forEachSlab(slabs) { slab, worker, inner in
            let x = input + slab.sample * g.inChannels * g.inSpatial
            let gy = gradOutput + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let target = partials?.partial(worker) ?? gradWeight
            if g.isPointwise {
                sgemm(transB: true, m: g.outChannels, n: g.inChannels, k: columns, a: gy, lda: g.outSpatial,
                      b: x + slab.rowStart * g.outW, ldb: g.inSpatial, beta: 1, c: target, ldc: g.inChannels)
                return
            }
            let col = ConvScratch.buffer(worker, count: g.colRows * columns)
            im2col(g, input: x, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
            sgemm(transB: true, m: g.outChannels, n: g.colRows, k: columns, a: gy, lda: g.outSpatial,
                  b: col, ldb: columns, beta: 1, c: target, ldc: g.colRows)
        }
        partials?.addInto(gradWeight)
    }

    /// gradWeight += gradOutput * im2col(input)^T, and (if gradInput != nil) the input gradient.
    static func backward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?) {
        if DirectConv.handles(g) {
            DirectConv.backward(g, batch: batch, input: input, weight: weight, gradOutput: gradOutput,
                                gradWeight: gradWeight, gradInput: gradInput)
            return
        }
        #if IE_DNNL
        if ConvBackend.current == .dnnl, DNNLConv.supports(g, batch: batch) {
            DNNLConv.accumulateWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
            if let gradInput {
                DNNLConv.backwardData(g, batch: batch, gradOutput: gradOutput, weight: weight, gradInput: gradInput)
            }
            return
        }
        #endif
        weightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
        guard let gradInput else { return }
        backwardInputOnly(g, batch: batch, weight: weight, gradOutput: gradOutput, gradInput: gradInput)
    }

    /// The GEMM path's input gradient of the convolution (fully overwritten).
    static func backwardInputOnly(_ g: ConvGeometry, batch: Int, weight: UnsafePointer<Float>,
                                  gradOutput: UnsafePointer<Float>, gradInput: UnsafeMutablePointer<Float>) {
        if DirectConv.handles(g) {
            DirectConv.inputGradient(g, batch: batch, weight: weight, gradOutput: gradOutput, gradInput: gradInput)
            return
        }
        if g.isPointwise {
            for n in 0..<batch {
                sgemm(transA: true, m: g.inChannels, n: g.inSpatial, k: g.outChannels, a: weight, lda: g.inChannels,
                      b: gradOutput + n * g.outChannels * g.outSpatial, ldb: g.outSpatial, beta: 0,
                      c: gradInput + n * g.inChannels * g.inSpatial, ldc: g.inSpatial)
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
            forward(transposed, batch: batch, input: gradOutput, weight: flippedWeight, output: gradInput)
            return
        }
        adjointData(g, batch: batch, source: gradOutput, weight: weight, target: gradInput)
    }

    /// The adjoint of `forward` as a function of the input: target = col2im(W^T * source), fully overwritten.
    /// This is the transposed convolution's forward pass and the strided convolution's input gradient.
    /// Slabs overlap in the target, so they run in order (the GEMMs and col2im use the threads inside).
    static func adjointData(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            target: UnsafeMutablePointer<Float>) {
        #if IE_DNNL
        if ConvBackend.current == .dnnl, DNNLConv.supports(g, batch: batch) {
            DNNLConv.backwardData(g, batch: batch, gradOutput: source, weight: weight, gradInput: target)
            return
        }
        #endif
        ConvScratch.reserve(workers: 1)
        target.update(repeating: 0, count: batch * g.inChannels * g.inSpatial)
        for slab in g.slabs(batch: batch) {
            let gy = source + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let col = ConvScratch.buffer(0, count: g.colRows * columns)
            sgemm(transA: true, m: g.colRows, n: columns, k: g.outChannels, a: weight, lda: g.colRows,
                  b: gy, ldb: g.outSpatial, beta: 0, c: col, ldc: columns)
            col2im(g, col: col, input: target + slab.sample * g.inChannels * g.inSpatial,
                   rowStart: slab.rowStart, rowEnd: slab.rowEnd)
        }
    }

    /// Backward of the transposed convolution y = adjointData(x): gradX = forward(gradY) and
    /// gradWeight += x * im2col(gradY)^T, sharing one im2col of gradY per slab.
    static func adjointBackward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, gradTarget: UnsafePointer<Float>,
                                gradWeight: UnsafeMutablePointer<Float>, gradSource: UnsafeMutablePointer<Float>?) {
        #if IE_DNNL
        if ConvBackend.current == .dnnl, DNNLConv.supports(g, batch: batch) {
            DNNLConv.accumulateWeightGradient(g, batch: batch, input: gradTarget, gradOutput: source, gradWeight: gradWeight)
            if let gradSource { DNNLConv.forward(g, batch: batch, input: gradTarget, weight: weight, output: gradSource) }
            return
        }
        #endif
        let slabs = g.slabs(batch: batch)
        let workers = min(threadCount, slabs.count)
        let partials = workers > 1 ? GradientPartials(count: g.outChannels * g.colRows, workers: workers) : nil
        forEachSlab(slabs) { slab, worker, inner in
            let x = source + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW
            let gy = gradTarget + slab.sample * g.inChannels * g.inSpatial
            let columns = (slab.rowEnd - slab.rowStart) * g.outW
            let col = ConvScratch.buffer(worker, count: g.colRows * columns)
            im2col(g, input: gy, col: col, rowStart: slab.rowStart, rowEnd: slab.rowEnd, threads: inner)
            sgemm(transB: true, m: g.outChannels, n: g.colRows, k: columns, a: x, lda: g.outSpatial,
                  b: col, ldb: columns, beta: 1, c: partials?.partial(worker) ?? gradWeight, ldc: g.colRows)
            if let gradSource {
                sgemm(m: g.outChannels, n: columns, k: g.colRows, a: weight, lda: g.colRows, b: col, ldb: columns,
                      beta: 0, c: gradSource + slab.sample * g.outChannels * g.outSpatial + slab.rowStart * g.outW,
                      ldc: g.outSpatial)
            }
        }
        partials?.addInto(gradWeight)
    }
}

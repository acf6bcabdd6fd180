import Foundation
import CBLAS
import IECore

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
    func usesImplicitGEMM(_ options: EngineOptions) -> Bool {
        options.implicitGEMM && stride == 1 && kernel > 1 && 2 * padding == kernel - 1
            && inChannels >= 8 && inChannels <= 64 && outW >= 16
    }

    /// Layers whose input has enough channels for the GEMM's rows (Cin k) and whose output rows are long enough
    /// (H_out W_out per GEMM) compute their weight gradient without im2col (GEMMConv.implicitWeightGradient).
    /// Measured per weight gradient, 1 thread, im2col -> implicit (GFLOP/s, two interleaved runs): 32->32 at 64^3
    /// 61-64 -> 77, 64->64 at 32^3 56-68 -> 61-72, 128->128 at 16^3 51-60 -> 58-77; but 256->256 at 8^3 71-75 ->
    /// 46-56 (slices of 64 columns), hence outW >= 16.
    /// Its copies of k input slices per worker must also fit the cap on one scratch buffer (columnCeilingFloats,
    /// 64 MiB: 32 channels of 256 x 256 slices would need 73 MiB per worker; im2col's slabs stay cache-sized).
    func usesImplicitWeightGradient(_ options: EngineOptions) -> Bool {
        options.implicitWeightGradient && kernel > 1 && inChannels >= 8 && outW >= 16
            && kernel * inChannels * kernel * weightGradientCopyFloats <= options.columnCeilingFloats
    }

    /// Floats of one (ci, kx) row block of the implicit weight gradient's input copies: `stride` phases of
    /// outH + (k - 1) / stride rows of outW, rounded up to 64 bytes (GEMMConv.implicitWeightGradient).
    var weightGradientCopyFloats: Int { (stride * (outH + (kernel - 1) / stride) * outW + 15) / 16 * 16 }

    /// Output rows (z*outH + y) per slab so that the im2col scratch stays near `scratchBudgetFloats`.
    /// Deep layers have many column rows and few voxels: a cache-sized slab would leave the GEMM only a few
    /// dozen columns and re-stream the (large) weight matrix per slab, so slabs keep at least
    /// `options.columnsPerOutputChannel * outChannels` columns (measured: 512->512 at 4^3 went from 50 to
    /// 75 GFLOP/s, 256->256 at 8^3 from 75 to 90), unless that would exceed `options.columnCeilingFloats`.
    func rowsPerSlab(_ options: EngineOptions) -> Int {
        let perRow = max(1, colRows * outW)
        let rows = outD * outH
        let byBudget = options.slabFloats / perRow
        let byColumns = (options.columnsPerOutputChannel * outChannels + outW - 1) / outW
        let byCeiling = options.columnCeilingFloats / perRow
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

/// Reusable scratch for column matrices, one buffer per worker plus the implicit GEMM's padded input: avoids
/// page-faulting tens of MB per layer call. Owned by one model's GEMM backend; its layers run one after another.
final class ConvScratch {
    /// One column buffer per worker, in a table allocated once: workers of a concurrentPerform each touch only
    /// their own slot through the pointer (growing a shared Swift array from workers was a data race that
    /// ThreadSanitizer reported).
    private struct Slot { var buffer: UnsafeMutablePointer<Float>?; var capacity: Int }
    static let maxWorkers = 1024
    private let slots: UnsafeMutablePointer<Slot>
    private var paddedBuffer: UnsafeMutablePointer<Float>?
    private var paddedCapacity = 0

    init() {
        slots = UnsafeMutablePointer<Slot>.allocate(capacity: Self.maxWorkers)
        slots.initialize(repeating: Slot(buffer: nil, capacity: 0), count: Self.maxWorkers)
    }

    deinit {
        for i in 0..<Self.maxWorkers { slots[i].buffer?.deallocate() }
        slots.deinitialize(count: Self.maxWorkers)
        slots.deallocate()
        paddedBuffer?.deallocate()
    }

    /// The zero-padded copy of a layer input used by the implicit-GEMM path (one at a time).
    func padded(count: Int) -> UnsafeMutablePointer<Float> {
        if paddedCapacity < count {
            paddedBuffer?.deallocate()
            paddedBuffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            paddedCapacity = count
        }
        guard let paddedBuffer else { preconditionFailure("ConvScratch: no padded buffer") }
        return paddedBuffer
    }

    /// Checks that `workers` slots exist (the table is fixed; callers cap their worker count by it).
    func reserve(workers: Int) {
        precondition(workers <= Self.maxWorkers, "ConvScratch: \(workers) workers, at most \(Self.maxWorkers)")
    }

    func buffer(_ index: Int, count: Int) -> UnsafeMutablePointer<Float> {
        precondition(index >= 0 && index < Self.maxWorkers, "ConvScratch: worker \(index) beyond the slot table")
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
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) {
    applyBLASThreads(threads)
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), 1.0, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Writes the column matrix for output rows [rowStart, rowEnd) of one sample:
/// col[(ci,kz,ky,kx), (row - rowStart)*outW + x] = input[ci, z*s-p+kz, y*s-p+ky, x*s-p+kx] (0 outside).
func im2col(_ g: ConvGeometry, input: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>,
            rowStart: Int, rowEnd: Int, threads: Int) {
    if g.stride == 1 && g.outW == g.inW && g.outH == g.inH {
        im2colSameSize(g, input: input, col: col, rowStart: rowStart, rowEnd: rowEnd, threads: threads)
        return
    }
    let s = g.stride, outW = g.outW
    forEachColumnSegment(g, rowStart: rowStart, rowEnd: rowEnd, threads: threads) { ci, segment, inputLine, xlo, xhi in
        let dst = col + segment
        guard let inputLine else {
            dst.update(repeating: 0, count: outW)
            return
        }
        if xlo > 0 { dst.update(repeating: 0, count: xlo) }
        let line = input + ci * g.inSpatial + inputLine
        if s == 1 {
            (dst + xlo).update(from: line + xlo, count: xhi - xlo)
        } else {
            for x in xlo..<xhi { dst[x] = line[x * s] }
        }
        if xhi < outW { (dst + xhi).update(repeating: 0, count: outW - xhi) }
    }
}

/// The traversal im2col and its adjoint col2im share, parallel over input channels: for each input channel ci,
/// tap (kz, ky, kx) and output row of [rowStart, rowEnd), the offset of that row's segment in the column matrix
/// and the offset (within channel ci) of the input line the tap reads for output x = 0, nil where the tap falls
/// outside the image in z or y or no x is valid; xlo..<xhi are the valid output columns.
@inline(__always)
func forEachColumnSegment(_ g: ConvGeometry, rowStart: Int, rowEnd: Int, threads: Int,
                          _ body: (_ ci: Int, _ segment: Int, _ inputLine: Int?, _ xlo: Int, _ xhi: Int) -> Void) {
    let k = g.kernel, s = g.stride, p = g.padding
    let outW = g.outW, outH = g.outH
    let columns = (rowEnd - rowStart) * outW
    parallelFor(g.inChannels, threads: threads) { ci in
        for kz in 0..<k {
            for ky in 0..<k {
                for kx in 0..<k {
                    let r = ((ci * k + kz) * k + ky) * k + kx
                    let (xlo, xhi) = g.validRange(offset: kx, inSize: g.inW, outSize: outW)
                    for row in rowStart..<rowEnd {
                        let z = row / outH, y = row - (row / outH) * outH
                        let iz = z * s - p + kz, iy = y * s - p + ky
                        let outside = iz < 0 || iz >= g.inD || iy < 0 || iy >= g.inH || xlo >= xhi
                        body(ci, r * columns + (row - rowStart) * outW, outside ? nil : (iz * g.inH + iy) * g.inW - p + kx, xlo, xhi)
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
            rowStart: Int, rowEnd: Int, threads: Int) {
    let s = g.stride
    forEachColumnSegment(g, rowStart: rowStart, rowEnd: rowEnd, threads: threads) { ci, segment, inputLine, xlo, xhi in
        guard let inputLine else { return }
        let src = col + segment
        let line = input + ci * g.inSpatial + inputLine
        if s == 1 {
            for x in xlo..<xhi { line[x] += src[x] }
        } else {
            for x in xlo..<xhi { line[x * s] += src[x] }
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
    func slabs(batch: Int, _ options: EngineOptions) -> [Slab] {
        let rows = outD * outH, step = rowsPerSlab(options)
        var out: [Slab] = []
        for n in 0..<batch {
            var r0 = 0
            while r0 < rows { out.append(Slab(sample: n, rowStart: r0, rowEnd: min(rows, r0 + step))); r0 += step }
        }
        return out
    }
}

/// Runs `body(slab, worker, innerThreads)` over all slabs. With one thread, or a single slab, everything runs on
/// the caller and the GEMMs use OpenBLAS's threads (innerThreads = threads). Otherwise each of the workers
/// takes every workers-th slab with OpenBLAS held at one thread (innerThreads = 1): one level of parallelism at
/// a time, and a fixed slab-to-worker assignment, so results depend only on the thread count. `balanced` hands
/// each slab to the next free worker instead: only for bodies whose slabs write disjoint outputs and share no
/// per-worker sums, so that which worker took a slab cannot change a bit.
func forEachSlab(_ slabs: [Slab], threads: Int, scratch: ConvScratch, balanced: Bool = false,
                 _ body: (Slab, Int, Int) -> Void) {
    let workers = min(threads, slabs.count, ConvScratch.maxWorkers)
    scratch.reserve(workers: max(1, workers))
    if workers <= 1 {
        for slab in slabs { body(slab, 0, threads) }
        return
    }
    applyBLASThreads(1)
    defer { applyBLASThreads(threads) }
    withoutActuallyEscaping(body) { body in
        let queue = balanced ? WorkQueue(count: slabs.count) : nil
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            if let queue {
                while let i = queue.take() { body(slabs[i], worker, 1) }
            } else {
                var i = worker
                while i < slabs.count { body(slabs[i], worker, 1); i += workers }
            }
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
    /// The sum over workers, in worker order, left in partial 0 (for a caller that scatters it in its own layout).
    func summed() -> UnsafeMutablePointer<Float> {
        let first = partial(0)
        for w in 1..<max(1, workers) {
            let p = partial(w)
            for i in 0..<count { first[i] += p[i] }
        }
        return first
    }
    /// target[c * rows + r] += the sum over workers (in order) of partial[r * columns + c] (columns = count / rows).
    func addTransposedInto(_ target: UnsafeMutablePointer<Float>, rows: Int) {
        let columns = count / rows
        let p = summed()
        for r in 0..<rows { for c in 0..<columns { target[c * rows + r] += p[r * columns + c] } }
    }
}

/// Sets OpenBLAS's thread count (process state, set only here) when it differs from what a call needs.
@inline(__always)
func applyBLASThreads(_ threads: Int) {
    if openblas_get_num_threads() != Int32(threads) { openblas_set_num_threads(Int32(threads)) }
}

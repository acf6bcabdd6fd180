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

    /// Output rows (z*outH + y) per slab so that the im2col scratch stays near `scratchBudgetFloats`.
    var rowsPerSlab: Int {
        let perRow = max(1, colRows * outW)
        return max(1, min(outD * outH, ConvScratch.budgetFloats / perRow))
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
    nonisolated(unsafe) private static var buffers: [UnsafeMutablePointer<Float>?] = [nil, nil]
    nonisolated(unsafe) private static var capacities: [Int] = [0, 0]

    static func buffer(_ index: Int, count: Int) -> UnsafeMutablePointer<Float> {
        if capacities[index] < count {
            buffers[index]?.deallocate()
            buffers[index] = UnsafeMutablePointer<Float>.allocate(capacity: count)
            capacities[index] = count
        }
        return buffers[index]!
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
            rowStart: Int, rowEnd: Int) {
    if g.stride == 1 && g.outW == g.inW && g.outH == g.inH {
        im2colSameSize(g, input: input, col: col, rowStart: rowStart, rowEnd: rowEnd)
        return
    }
    let k = g.kernel, s = g.stride, p = g.padding
    let outW = g.outW, outH = g.outH
    let columns = (rowEnd - rowStart) * outW
    parallelFor(g.inChannels) { ci in
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
                    rowStart: Int, rowEnd: Int) {
    let k = g.kernel, p = g.padding
    let width = g.outW, height = g.outH
    let columns = (rowEnd - rowStart) * width
    parallelFor(g.inChannels) { ci in
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
            rowStart: Int, rowEnd: Int) {
    let k = g.kernel, s = g.stride, p = g.padding
    let outW = g.outW, outH = g.outH
    let columns = (rowEnd - rowStart) * outW
    parallelFor(g.inChannels) { ci in
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

/// Convolution kernels shared by Conv3d and ConvTranspose3d. Weight layout [outC, inC, k, k, k] (PyTorch Conv3d).
enum ConvKernels {
    /// output[n] = W * im2col(input[n]); output fully overwritten.
    static func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        output: UnsafeMutablePointer<Float>) {
        let rows = g.outD * g.outH
        let slab = g.rowsPerSlab
        for n in 0..<batch {
            let x = input + n * g.inChannels * g.inSpatial
            let y = output + n * g.outChannels * g.outSpatial
            if g.isPointwise {
                sgemm(m: g.outChannels, n: g.outSpatial, k: g.inChannels, a: weight, lda: g.inChannels,
                      b: x, ldb: g.inSpatial, beta: 0, c: y, ldc: g.outSpatial)
                continue
            }
            var r0 = 0
            while r0 < rows {
                let r1 = min(rows, r0 + slab)
                let columns = (r1 - r0) * g.outW
                let col = ConvScratch.buffer(0, count: g.colRows * columns)
                im2col(g, input: x, col: col, rowStart: r0, rowEnd: r1)
                sgemm(m: g.outChannels, n: columns, k: g.colRows, a: weight, lda: g.colRows,
                      b: col, ldb: columns, beta: 0, c: y + r0 * g.outW, ldc: g.outSpatial)
                r0 = r1
            }
        }
    }

    /// gradWeight += gradOutput * im2col(input)^T, and (if gradInput != nil) gradInput = col2im(W^T * gradOutput).
    static func backward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                         gradInput: UnsafeMutablePointer<Float>?) {
        let rows = g.outD * g.outH
        let slab = g.rowsPerSlab
        // Stride 1: the input gradient is itself a convolution of gradOutput with the flipped, transposed kernel
        // (padding k-1-p). That GEMM has the large inner dimension Cout*k^3 and needs no col2im scatter.
        let flipped = g.stride == 1 && !g.isPointwise && gradInput != nil && g.kernel - 1 - g.padding >= 0
            && g.inChannels >= 8  // with very few input channels the GEMM degenerates to a matrix-vector product
        if flipped {
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
            forward(transposed, batch: batch, input: gradOutput, weight: flippedWeight, output: gradInput!)
        } else if let gradInput, !g.isPointwise {
            gradInput.update(repeating: 0, count: batch * g.inChannels * g.inSpatial)
        }
        for n in 0..<batch {
            let x = input + n * g.inChannels * g.inSpatial
            let gy = gradOutput + n * g.outChannels * g.outSpatial
            if g.isPointwise {
                sgemm(transB: true, m: g.outChannels, n: g.inChannels, k: g.inSpatial, a: gy, lda: g.outSpatial,
                      b: x, ldb: g.inSpatial, beta: 1, c: gradWeight, ldc: g.inChannels)
                if let gradInput {
                    sgemm(transA: true, m: g.inChannels, n: g.inSpatial, k: g.outChannels, a: weight,
                          lda: g.inChannels, b: gy, ldb: g.outSpatial, beta: 0,
                          c: gradInput + n * g.inChannels * g.inSpatial, ldc: g.inSpatial)
                }
                continue
            }
            var r0 = 0
            while r0 < rows {
                let r1 = min(rows, r0 + slab)
                let columns = (r1 - r0) * g.outW
                let col = ConvScratch.buffer(0, count: g.colRows * columns)
                im2col(g, input: x, col: col, rowStart: r0, rowEnd: r1)
                sgemm(transB: true, m: g.outChannels, n: g.colRows, k: columns, a: gy + r0 * g.outW,
                      lda: g.outSpatial, b: col, ldb: columns, beta: 1, c: gradWeight, ldc: g.colRows)
                if let gradInput, !flipped {
                    sgemm(transA: true, m: g.colRows, n: columns, k: g.outChannels, a: weight, lda: g.colRows,
                          b: gy + r0 * g.outW, ldb: g.outSpatial, beta: 0, c: col, ldc: columns)
                    col2im(g, col: col, input: gradInput + n * g.inChannels * g.inSpatial, rowStart: r0, rowEnd: r1)
                }
                r0 = r1
            }
        }
    }

    /// The adjoint of `forward` as a function of the input: output(conv-input space) = col2im(W^T * source).
    /// This is the transposed convolution's forward pass. `target` is fully overwritten.
    static func adjointData(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            target: UnsafeMutablePointer<Float>) {
        let rows = g.outD * g.outH
        let slab = g.rowsPerSlab
        target.update(repeating: 0, count: batch * g.inChannels * g.inSpatial)
        for n in 0..<batch {
            let gy = source + n * g.outChannels * g.outSpatial
            var r0 = 0
            while r0 < rows {
                let r1 = min(rows, r0 + slab)
                let columns = (r1 - r0) * g.outW
                let col = ConvScratch.buffer(0, count: g.colRows * columns)
                sgemm(transA: true, m: g.colRows, n: columns, k: g.outChannels, a: weight, lda: g.colRows,
                      b: gy + r0 * g.outW, ldb: g.outSpatial, beta: 0, c: col, ldc: columns)
                col2im(g, col: col, input: target + n * g.inChannels * g.inSpatial, rowStart: r0, rowEnd: r1)
                r0 = r1
            }
        }
    }

    /// Backward of the transposed convolution y = adjointData(x): gradX = forward(gradY) and
    /// gradWeight += x * im2col(gradY)^T, sharing one im2col of gradY per slab.
    static func adjointBackward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>,
                                weight: UnsafePointer<Float>, gradTarget: UnsafePointer<Float>,
                                gradWeight: UnsafeMutablePointer<Float>, gradSource: UnsafeMutablePointer<Float>?) {
        let rows = g.outD * g.outH
        let slab = g.rowsPerSlab
        for n in 0..<batch {
            let x = source + n * g.outChannels * g.outSpatial
            let gy = gradTarget + n * g.inChannels * g.inSpatial
            var r0 = 0
            while r0 < rows {
                let r1 = min(rows, r0 + slab)
                let columns = (r1 - r0) * g.outW
                let col = ConvScratch.buffer(0, count: g.colRows * columns)
                im2col(g, input: gy, col: col, rowStart: r0, rowEnd: r1)
                sgemm(transB: true, m: g.outChannels, n: g.colRows, k: columns, a: x + r0 * g.outW,
                      lda: g.outSpatial, b: col, ldb: columns, beta: 1, c: gradWeight, ldc: g.colRows)
                if let gradSource {
                    sgemm(m: g.outChannels, n: columns, k: g.colRows, a: weight, lda: g.colRows,
                          b: col, ldb: columns, beta: 0,
                          c: gradSource + n * g.outChannels * g.outSpatial + r0 * g.outW, ldc: g.outSpatial)
                }
                r0 = r1
            }
        }
    }
}

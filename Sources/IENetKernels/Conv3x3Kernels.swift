// Hot loops of IENet's direct 3x3x3 stride-1 "same" convolution for few input channels (DirectConv.swift).
// This module is compiled for Haswell-class x86-64 (AVX2 + FMA, see Package.swift), so SIMD8<Float> arithmetic
// becomes 8-wide vfmadd instructions. IENet calls it only after checking at run time that the CPU has those
// features; nothing here may run on an older CPU.
//
// Data layout shared by all kernels: a "padded slice" holds one input z-slice of every channel with one zero row
// above and below, one zero column on the left and zeros up to the row stride (a multiple of 8, >= W + 2):
// channel c, padded row py, padded column px at slice[c * channelStride + py * rowStride + px], where padded
// (py, px) is image (py - 1, px - 1). An output voxel (z, y, x) of a 3x3x3 "same" convolution then reads padded
// slices z-1, z, z+1 (planes 0, 1, 2) at rows y..y+2 and columns x..x+2, with no border tests. A row's last
// vector may read a few floats past the row; they only reach lanes past the row end, which are not stored, and
// the caller's storage must extend a row past its last slice (PaddedSliceRing does).

#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif
import Synchronization

public typealias Float8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always) func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
}

/// dst[0 ..< count] = src[0 ..< count], with the whole 64-byte lines of dst written by non-temporal stores: no
/// read-for-ownership of lines that are entirely overwritten (the output of a 1->32 layer is 16x its input and
/// far larger than the caches, so its write-allocate reads were half the forward pass's memory traffic).
@inline(__always) func streamCopy(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ count: Int) {
    #if arch(x86_64)
    let misalignment = Int(bitPattern: dst) & 63
    let head = misalignment % 4 != 0 ? count : min(count, ((64 - misalignment) & 63) / 4)
    dst.update(from: src, count: head)
    var i = head
    while i + 16 <= count {
        _mm256_stream_ps(dst + i, load8(src + i))
        _mm256_stream_ps(dst + i + 8, load8(src + i + 8))
        i += 16
    }
    (dst + i).update(from: src + i, count: count - i)
    #else
    dst.update(from: src, count: count)
    #endif
}

/// Makes the non-temporal stores visible before whatever follows (another thread may read the output next).
@inline(__always) func streamFence() {
    if #available(macOS 15, *) { atomicMemoryFence(ordering: .sequentiallyConsistent) }  // mfence on x86-64
}

/// The three padded slices (z-1, z, z+1) an output slice z reads, all with the same strides.
public struct PaddedPlanes {
    public let below: UnsafePointer<Float>
    public let middle: UnsafePointer<Float>
    public let above: UnsafePointer<Float>
    public let channels: Int
    public let channelStride: Int
    public let rowStride: Int
    public init(below: UnsafePointer<Float>, middle: UnsafePointer<Float>, above: UnsafePointer<Float>,
                channels: Int, channelStride: Int, rowStride: Int) {
        self.below = below; self.middle = middle; self.above = above
        self.channels = channels; self.channelStride = channelStride; self.rowStride = rowStride
    }
    @inline(__always) func plane(_ kz: Int) -> UnsafePointer<Float> { kz == 0 ? below : (kz == 1 ? middle : above) }
}

/// Twelve vector registers' worth of accumulators as separate stored properties. (An InlineArray, indexed by
/// constants after unrolling, still ended up in memory with a store after every FMA: half the speed.)
struct Registers12 {
    var r0 = Float8(), r1 = Float8(), r2 = Float8(), r3 = Float8(), r4 = Float8(), r5 = Float8()
    var r6 = Float8(), r7 = Float8(), r8 = Float8(), r9 = Float8(), r10 = Float8(), r11 = Float8()
    @inline(__always) subscript(i: Int) -> Float8 {
        get {
            switch i {
            case 0: return r0
            case 1: return r1
            case 2: return r2
            case 3: return r3
            case 4: return r4
            case 5: return r5
            case 6: return r6
            case 7: return r7
            case 8: return r8
            case 9: return r9
            case 10: return r10
            default: return r11
            }
        }
        set {
            switch i {
            case 0: r0 = newValue
            case 1: r1 = newValue
            case 2: r2 = newValue
            case 3: r3 = newValue
            case 4: r4 = newValue
            case 5: r5 = newValue
            case 6: r6 = newValue
            case 7: r7 = newValue
            case 8: r8 = newValue
            case 9: r9 = newValue
            case 10: r10 = newValue
            default: r11 = newValue
            }
        }
    }
}

/// Block sizes as types, so that every (channels, vectors) block is a separate specialisation with constant trip
/// counts: its loops unroll and its accumulators live in registers.
protocol BlockSize { static var value: Int { get } }
enum Size1: BlockSize { static var value: Int { 1 } }
enum Size2: BlockSize { static var value: Int { 2 } }
enum Size3: BlockSize { static var value: Int { 3 } }
enum Size4: BlockSize { static var value: Int { 4 } }
enum Size5: BlockSize { static var value: Int { 5 } }
enum Size6: BlockSize { static var value: Int { 6 } }
enum Size7: BlockSize { static var value: Int { 7 } }
enum Size8: BlockSize { static var value: Int { 8 } }

public enum Conv3x3Kernels {
    /// Output channels computed together per register block, by how many output channels there are.
    /// With 1 or 2 channels (the input gradient of a 1- or 2-channel image) a block is that many channels with
    /// more x vectors; otherwise 4 channels (zero weights fill the last block).
    public static func channelBlock(outChannels: Int) -> Int { outChannels <= 2 ? outChannels : 4 }

    /// Input channels whose contributions are summed in one pass over an output slice (see convolveSliceBlocked).
    public static let channelGroup = 4

    /// Floats of output rows staged in L1 before a streaming write-out (all output channels, a few rows).
    public static let stagingFloats = 4096

    /// Packs weights w(o, c, tap) (tap = kz*9 + ky*3 + kx, read through `weight`) as the kernels read them:
    /// [block][c][tap][channelBlock], zero for o >= outChannels.
    public static func packWeights(outChannels: Int, inChannels: Int, into packed: UnsafeMutablePointer<Float>,
                                   _ weight: (_ o: Int, _ c: Int, _ tap: Int) -> Float) {
        let block = channelBlock(outChannels: outChannels)
        let blocks = (outChannels + block - 1) / block
        var i = 0
        for b in 0..<blocks {
            for c in 0..<inChannels {
                for t in 0..<27 {
                    for j in 0..<block {
                        let o = b * block + j
                        packed[i] = o < outChannels ? weight(o, c, t) : 0
                        i += 1
                    }
                }
            }
        }
    }

    public static func packedWeightCount(outChannels: Int, inChannels: Int) -> Int {
        let block = channelBlock(outChannels: outChannels)
        return (outChannels + block - 1) / block * block * inChannels * 27
    }

    // MARK: Convolution of padded slices (forward pass, and the input gradient with flipped weights)

    /// output[o][y][x] = sum_{c, kz, ky, kx} w(o, c, kz, ky, kx) * padded[kz][c][y + ky][x + kx] for output rows
    /// [rowStart, rowEnd) of one z-slice, all `outChannels` channels (fully overwritten). `output` points at
    /// channel 0, row 0 of the slice; channels are `outChannelStride` apart, rows `width` apart.
    /// `streaming` (for outputs much larger than the caches, with at most `channelGroup` input channels): rows
    /// are computed a few at a time into an L1 buffer and written out with non-temporal stores (streamCopy).
    @inline(never)
    public static func convolveSlice(_ planes: PaddedPlanes, packedWeights: UnsafePointer<Float>, outChannels: Int,
                                     width: Int, rowStart: Int, rowEnd: Int,
                                     output: UnsafeMutablePointer<Float>, outChannelStride: Int, streaming: Bool = false) {
        if streaming && planes.channels <= channelGroup && rowEnd > rowStart {
            let rows = max(1, min(rowEnd - rowStart, stagingFloats / max(1, outChannels * width)))
            let staging = UnsafeMutableRawPointer.allocate(byteCount: outChannels * rows * width * 4, alignment: 64)
                .bindMemory(to: Float.self, capacity: outChannels * rows * width)
            defer { staging.deallocate() }
            var y0 = rowStart
            while y0 < rowEnd {
                let y1 = min(rowEnd, y0 + rows)
                // Row y of the block lands at staging + (y - y0) * width: channels rows * width apart.
                convolveSlice(planes, packedWeights: packedWeights, outChannels: outChannels, width: width,
                              rowStart: y0, rowEnd: y1, output: staging - y0 * width, outChannelStride: rows * width)
                for o in 0..<outChannels {
                    streamCopy(output + o * outChannelStride + y0 * width, staging + o * rows * width, (y1 - y0) * width)
                }
                y0 = y1
            }
            streamFence()
            return
        }
        switch channelBlock(outChannels: outChannels) {
        case 1: convolveSliceBlocked(planes, Size1.self, maxVectors: 8, packedWeights, outChannels, width, rowStart, rowEnd, output, outChannelStride)
        case 2: convolveSliceBlocked(planes, Size2.self, maxVectors: 6, packedWeights, outChannels, width, rowStart, rowEnd, output, outChannelStride)
        default: convolveSliceBlocked(planes, Size4.self, maxVectors: 3, packedWeights, outChannels, width, rowStart, rowEnd, output, outChannelStride)
        }
    }

    static func convolveSliceBlocked<OB: BlockSize>(_ planes: PaddedPlanes, _ ob: OB.Type, maxVectors: Int, _ packedWeights: UnsafePointer<Float>,
                                     _ outChannels: Int, _ width: Int, _ rowStart: Int, _ rowEnd: Int,
                                     _ output: UnsafeMutablePointer<Float>, _ outChannelStride: Int) {
        let OB = OB.value
        let vectorsPerRow = (width + 7) / 8
        let blocks = (outChannels + OB - 1) / OB
        let weightsPerBlock = planes.channels * 27 * OB
        let spill = UnsafeMutablePointer<Float>.allocate(capacity: 8 * 12)
        defer { spill.deallocate() }
        // Input channels go in groups, each adding into the output rows: the 9 input rows a group's output row
        // reads stay in L1 for the next two output rows. (All channels at once: the input gradient of a 32-channel
        // layer reads 9 x 32 rows per output row, which fall out of L1; measured 2x slower.)
        let group = channelGroup
        var c0 = 0
        while c0 < planes.channels {
          let c1 = min(planes.channels, c0 + group)
          let accumulate = c0 > 0
          var y = rowStart
          // One output channel (the input gradient of a 1-channel image): two rows at a time, so that every
          // loaded input vector feeds two FMAs (with one row, 9 loads per 8 FMAs made it load-bound).
          if OB == 1 {
            while y + 1 < rowEnd {
                let weights = packedWeights + c0 * 27
                let out = output + y * width
                var v = 0
                while v < vectorsPerRow {
                    let n = min(4, vectorsPerRow - v)
                    let x0 = 8 * v
                    let lanes = min(8 * n, width - x0)
                    switch n {
                    case 1: convolveRowPair(planes, Size1.self, weights, c0, c1, y, x0, out + x0, width, lanes, accumulate, spill)
                    case 2: convolveRowPair(planes, Size2.self, weights, c0, c1, y, x0, out + x0, width, lanes, accumulate, spill)
                    case 3: convolveRowPair(planes, Size3.self, weights, c0, c1, y, x0, out + x0, width, lanes, accumulate, spill)
                    default: convolveRowPair(planes, Size4.self, weights, c0, c1, y, x0, out + x0, width, lanes, accumulate, spill)
                    }
                    v += n
                }
                y += 2
            }
          }
          while y < rowEnd {
            do {
                let weights = packedWeights + c0 * 27 * OB
                let out = output + y * width
                var v = 0
                while v < vectorsPerRow {
                    let n = min(maxVectors, vectorsPerRow - v)
                    let x0 = 8 * v
                    // The last vector of a row may be partial: its lanes past the row end are computed but not stored.
                    let lanes = min(8 * n, width - x0)
                    // One instantiation per vector count, so the accumulators stay in registers.
                    switch n {
                    case 1: convolveBlock(planes, ob, Size1.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    case 2: convolveBlock(planes, ob, Size2.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    case 3: convolveBlock(planes, ob, Size3.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    case 4: convolveBlock(planes, ob, Size4.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    case 5: convolveBlock(planes, ob, Size5.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    case 6: convolveBlock(planes, ob, Size6.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    case 7: convolveBlock(planes, ob, Size7.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    default: convolveBlock(planes, ob, Size8.self, weights, weightsPerBlock, blocks, outChannels, c0, c1, y, x0, out + x0, outChannelStride, lanes, accumulate, spill)
                    }
                    v += n
                }
            }
            y += 1
          }
          c0 = c1
        }
    }

    /// Output rows y and y + 1 of a single output channel, V vectors from column x0 (`out` at row y, x0; rows
    /// `rowStride` apart). Padded rows y .. y+3 each feed row y (as ky = py) and row y + 1 (as ky = py - 1).
    @inline(never)
    static func convolveRowPair<V: BlockSize>(_ planes: PaddedPlanes, _ vectors: V.Type, _ weights: UnsafePointer<Float>,
                                              _ firstChannel: Int, _ endChannel: Int, _ y: Int, _ x0: Int,
                                              _ out: UnsafeMutablePointer<Float>, _ rowStride: Int, _ lanes: Int,
                                              _ accumulate: Bool, _ spill: UnsafeMutablePointer<Float>) {
        let V = V.value
        let whole = lanes == 8 * V
        var top = Registers12(), bottom = Registers12()
        if accumulate {
            if whole {
                for v in 0..<V {
                    top[v] = load8(out + 8 * v)
                    bottom[v] = load8(out + rowStride + 8 * v)
                }
            } else {
                spill.update(repeating: 0, count: 16 * V)
                spill.update(from: out, count: lanes)
                (spill + 8 * V).update(from: out + rowStride, count: lanes)
                for v in 0..<V {
                    top[v] = load8(spill + 8 * v)
                    bottom[v] = load8(spill + 8 * V + 8 * v)
                }
            }
        }
        for c in firstChannel..<endChannel {
            let w = weights + (c - firstChannel) * 27
            for kz in 0..<3 {
                let plane = planes.plane(kz) + c * planes.channelStride + y * planes.rowStride + x0
                let wz = w + kz * 9
                for py in 0..<4 {
                    let row = plane + py * planes.rowStride
                    for kx in 0..<3 {
                        let wTop = Float8(repeating: py <= 2 ? wz[py * 3 + kx] : 0)
                        let wBottom = Float8(repeating: py >= 1 ? wz[(py - 1) * 3 + kx] : 0)
                        for v in 0..<V {
                            let x = load8(row + kx + 8 * v)
                            if py <= 2 { top[v].addProduct(x, wTop) }
                            if py >= 1 { bottom[v].addProduct(x, wBottom) }
                        }
                    }
                }
            }
        }
        if whole {
            for v in 0..<V {
                store8(top[v], out + 8 * v)
                store8(bottom[v], out + rowStride + 8 * v)
            }
            return
        }
        for v in 0..<V {
            store8(top[v], spill + 8 * v)
            store8(bottom[v], spill + 8 * V + 8 * v)
        }
        out.update(from: spill, count: lanes)
        (out + rowStride).update(from: spill + 8 * V, count: lanes)
    }

    /// V vectors of 8 voxels of one output row, starting at column x0, for all output channels, OB at a time
    /// (one call per row block rather than per channel block: the calls cost ~15 % of the forward pass).
    /// Kept out of line: inlined into the row loop, its accumulators were stored to memory after every FMA.
    @inline(never)
    static func convolveBlock<OB: BlockSize, V: BlockSize>(_ planes: PaddedPlanes, _ ob: OB.Type, _ vectors: V.Type, _ firstWeights: UnsafePointer<Float>,
                              _ weightsPerBlock: Int, _ blocks: Int, _ outChannels: Int,
                              _ firstChannel: Int, _ endChannel: Int, _ y: Int,
                              _ x0: Int, _ firstOut: UnsafeMutablePointer<Float>, _ outChannelStride: Int,
                              _ lanes: Int, _ accumulate: Bool,
                              _ spill: UnsafeMutablePointer<Float>) {
        let OB = OB.value, V = V.value
        for b in 0..<blocks {
        let weights = firstWeights + b * weightsPerBlock
        let out = firstOut + b * OB * outChannelStride
        let channelsHere = min(OB, outChannels - b * OB)
        let whole = channelsHere == OB && lanes == 8 * V
        var acc = Registers12()
        if accumulate {
            if whole {
                for j in 0..<OB { for v in 0..<V { acc[j * V + v] = load8(out + j * outChannelStride + 8 * v) } }
            } else {
                spill.update(repeating: 0, count: 8 * OB * V)
                for j in 0..<channelsHere {
                    (spill + 8 * V * j).update(from: out + j * outChannelStride, count: lanes)
                }
                for i in 0..<(OB * V) { acc[i] = load8(spill + 8 * i) }
            }
        }
        var w = weights
        for c in firstChannel..<endChannel {
            for kz in 0..<3 {
                let plane = planes.plane(kz) + c * planes.channelStride + y * planes.rowStride + x0
                for ky in 0..<3 {
                    let row = plane + ky * planes.rowStride
                    for kx in 0..<3 {
                        var xs = Registers12()
                        for v in 0..<V { xs[v] = load8(row + kx + 8 * v) }
                        for j in 0..<OB {
                            let wj = Float8(repeating: w[j])
                            for v in 0..<V { acc[j * V + v].addProduct(xs[v], wj) }
                        }
                        w += OB
                    }
                }
            }
        }
        // Accumulators are only ever indexed by constants (after unrolling): a run-time index would make the
        // compiler keep them in memory and store after every FMA (measured: half the speed).
        if whole {
            for j in 0..<OB {
                for v in 0..<V {
                    let dst = out + j * outChannelStride + 8 * v
                    store8(acc[j * V + v], dst)
                }
            }
            continue
        }
        // Edge block (last channels, or a row end inside the block): through a buffer, lane by lane.
        // (`spill` is the caller's: a closure here, e.g. for a stack buffer, would capture `acc` by address.)
        for i in 0..<(OB * V) { store8(acc[i], spill + 8 * i) }
        for j in 0..<channelsHere {
            (out + j * outChannelStride).update(from: spill + 8 * V * j, count: lanes)
        }
        }
    }

    // MARK: Weight gradient

    /// Floats of gradient rows per weight-gradient pass and channel (rows = this / rowStride): the rows of 4
    /// gradient channels and the input rows they meet should stay in L1.
    public static let weightGradientPassFloats = 640

    /// Vector partial sums of the weight gradient, per (out block, c, kz, ky): 4 channels x 3 kx x 8 lanes.
    public static func weightPartialCount(outChannels: Int, inChannels: Int) -> Int {
        (outChannels + 3) / 4 * inChannels * 9 * 12 * 8
    }

    /// partial[(((b * inChannels + c) * 9 + kz*3 + ky) * 12 + j*3 + kx) * 8 + lane] += lane sums of
    /// gradOutput[4b + j][y][x] * padded[kz][c][y + ky][x + kx] over rows [rowStart, rowEnd) of one output
    /// z-slice. The 8 lanes of each entry are added up by the caller.
    ///
    /// `gradient` is that output slice zero-padded like `planes` (same row stride, `gradChannelStride` between
    /// channels), e.g. the middle slice of the input-gradient pass's padded gradient: row y + 1 from column 1
    /// holds gradOutput row y and then zeros up to the next row's first column. So rows y0 + 1 ... y1 are one
    /// contiguous run whose padding contributes nothing: a pass is a single loop over them (no per-row loop
    /// overhead, no partial vectors), with aligned gradient loads. The input column for gradient position p is
    /// p - 1 + kx, so the reads reach one float before a plane and two after (harmless padding in the caller's
    /// storage: see PaddedSliceRing). rowStride must be a multiple of 8.
    ///
    /// `prefetch`: lines to pull into the caches meanwhile (the next gradient slice's source), spread evenly over
    /// the pass's inner loops so that the memory traffic overlaps the arithmetic.
    @inline(never)
    public static func accumulateWeightGradient(_ planes: PaddedPlanes, gradient: UnsafePointer<Float>,
                                                outChannels: Int, gradChannelStride: Int,
                                                rowStart: Int, rowEnd: Int, partial: UnsafeMutablePointer<Float>,
                                                prefetch: PrefetchStream = .none) {
        let rowStride = planes.rowStride
        precondition(rowStride % 8 == 0, "accumulateWeightGradient: row stride must be a multiple of 8")
        let blocks = (outChannels + 3) / 4
        let rowsPerPass = max(1, min(rowEnd - rowStart, weightGradientPassFloats / rowStride))
        // Gradient rows for channels past outChannels (the last block): zeros.
        let zeros = UnsafeMutableRawPointer.allocate(byteCount: rowsPerPass * rowStride * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: rowsPerPass * rowStride)
        defer { zeros.deallocate() }
        zeros.update(repeating: 0, count: rowsPerPass * rowStride)
        var prefetch = prefetch
        let passes = (max(0, rowEnd - rowStart) + rowsPerPass - 1) / rowsPerPass
        let innerLoops = max(1, blocks * passes * planes.channels * 9)
        let linesPerLoop = (prefetch.lineCount + innerLoops - 1) / innerLoops
        for b in 0..<blocks {
            let channelsHere = min(4, outChannels - 4 * b)
            var y0 = rowStart
            while y0 < rowEnd {
                let y1 = min(rowEnd, y0 + rowsPerPass)
                var grads = InlineArray<4, UnsafePointer<Float>>(repeating: UnsafePointer(zeros))
                for j in 0..<channelsHere { grads[j] = gradient + (4 * b + j) * gradChannelStride + (y0 + 1) * rowStride }
                let g0 = grads[0], g1 = grads[1], g2 = grads[2], g3 = grads[3]
                let vectors = (y1 - y0) * rowStride / 8
                for c in 0..<planes.channels {
                    for kz in 0..<3 {
                        for ky in 0..<3 {
                            let target = partial + (((b * planes.channels + c) * 9 + kz * 3 + ky) * 12) * 8
                            let input = planes.plane(kz) + c * planes.channelStride + (y0 + ky) * rowStride - 1
                            prefetch.issue(linesPerLoop)
                            var acc = Registers12()
                            for i in 0..<vectors {
                                let x = 8 * i
                                let in0 = load8(input + x), in1 = load8(input + x + 1), in2 = load8(input + x + 2)
                                let d0 = load8(g0 + x), d1 = load8(g1 + x), d2 = load8(g2 + x), d3 = load8(g3 + x)
                                acc[0].addProduct(d0, in0); acc[1].addProduct(d0, in1); acc[2].addProduct(d0, in2)
                                acc[3].addProduct(d1, in0); acc[4].addProduct(d1, in1); acc[5].addProduct(d1, in2)
                                acc[6].addProduct(d2, in0); acc[7].addProduct(d2, in1); acc[8].addProduct(d2, in2)
                                acc[9].addProduct(d3, in0); acc[10].addProduct(d3, in1); acc[11].addProduct(d3, in2)
                            }
                            for i in 0..<12 { store8(load8(target + 8 * i) + acc[i], target + 8 * i) }
                        }
                    }
                }
                y0 = y1
            }
        }
    }
}

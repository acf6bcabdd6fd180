// Hot loops of IENet's direct 3x3x3 stride-1 "same" convolution for few input channels (DirectConv.swift).
// This module is compiled for Haswell-class x86-64 (AVX2 + FMA, see Package.swift), so SIMD8<Float> arithmetic
// becomes 8-wide vfmadd instructions. IENet calls it only after checking at run time that the CPU has those
// features; nothing here may run on an older CPU.
//
// Data layout shared by all kernels: a "padded slice" holds one input z-slice of every channel with one zero row
// above and below and one zero column on the left, and at least 8 - (W % 8) + 1 zero columns on the right:
// channel c, padded row py, padded column px at slice[c * channelStride + py * rowStride + px], where padded
// (py, px) is image (py - 1, px - 1). An output voxel (z, y, x) of a 3x3x3 "same" convolution then reads padded
// slices z-1, z, z+1 (planes 0, 1, 2) at rows y..y+2 and columns x..x+2, with no border tests.

public typealias Float8 = SIMD8<Float>

@inline(__always) func load8(_ p: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(p).loadUnaligned(as: Float8.self)
}

@inline(__always) func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
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
    @inline(never)
    public static func convolveSlice(_ planes: PaddedPlanes, packedWeights: UnsafePointer<Float>, outChannels: Int,
                                     width: Int, rowStart: Int, rowEnd: Int,
                                     output: UnsafeMutablePointer<Float>, outChannelStride: Int) {
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
        for y in rowStart..<rowEnd {
            for b in 0..<blocks {
                let weights = packedWeights + b * weightsPerBlock
                let channelsHere = min(OB, outChannels - b * OB)
                let out = output + b * OB * outChannelStride + y * width
                var v = 0
                while v < vectorsPerRow {
                    let n = min(maxVectors, vectorsPerRow - v)
                    let x0 = 8 * v
                    // The last vector of a row may be partial: its lanes past the row end are computed but not stored.
                    let lanes = min(8 * n, width - x0)
                    // One instantiation per vector count, so the accumulators stay in registers.
                    switch n {
                    case 1: convolveBlock(planes, ob, Size1.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    case 2: convolveBlock(planes, ob, Size2.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    case 3: convolveBlock(planes, ob, Size3.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    case 4: convolveBlock(planes, ob, Size4.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    case 5: convolveBlock(planes, ob, Size5.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    case 6: convolveBlock(planes, ob, Size6.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    case 7: convolveBlock(planes, ob, Size7.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    default: convolveBlock(planes, ob, Size8.self, weights, y, x0, out + x0, outChannelStride, channelsHere, lanes)
                    }
                    v += n
                }
            }
        }
    }

    /// OB output channels x V vectors of 8 voxels of one output row, starting at column x0.
    static func convolveBlock<OB: BlockSize, V: BlockSize>(_ planes: PaddedPlanes, _ ob: OB.Type, _ vectors: V.Type, _ weights: UnsafePointer<Float>, _ y: Int,
                              _ x0: Int, _ out: UnsafeMutablePointer<Float>, _ outChannelStride: Int,
                              _ channelsHere: Int, _ lanes: Int) {
        let OB = OB.value, V = V.value
        var acc = InlineArray<12, Float8>(repeating: Float8())
        var w = weights
        for c in 0..<planes.channels {
            for kz in 0..<3 {
                let plane = planes.plane(kz) + c * planes.channelStride + y * planes.rowStride + x0
                for ky in 0..<3 {
                    let row = plane + ky * planes.rowStride
                    for kx in 0..<3 {
                        var xs = InlineArray<8, Float8>(repeating: Float8())
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
        for j in 0..<OB where j < channelsHere {
            let dst = out + j * outChannelStride
            for v in 0..<V {
                if 8 * v + 8 <= lanes {
                    store8(acc[j * V + v], dst + 8 * v)
                } else if 8 * v < lanes {
                    let value = acc[j * V + v]
                    for i in 0..<(lanes - 8 * v) { dst[8 * v + i] = value[i] }
                }
            }
        }
    }

    // MARK: Weight gradient

    /// Vector partial sums of the weight gradient, per (out block, c, kz, ky): 4 channels x 3 kx x 8 lanes.
    public static func weightPartialCount(outChannels: Int, inChannels: Int) -> Int {
        (outChannels + 3) / 4 * inChannels * 9 * 12 * 8
    }

    /// partial[(((b * inChannels + c) * 9 + kz*3 + ky) * 12 + j*3 + kx) * 8 + lane] += lane sums of
    /// gradOutput[4b + j][y][x] * padded[kz][c][y + ky][x + kx] over rows [rowStart, rowEnd) of one output
    /// z-slice (`gradOutput` at channel 0, row 0; channels `gradChannelStride` apart, rows `width` apart).
    /// The 8 lanes of each entry are added up by the caller.
    @inline(never)
    public static func accumulateWeightGradient(_ planes: PaddedPlanes, gradOutput: UnsafePointer<Float>,
                                                outChannels: Int, gradChannelStride: Int, width: Int,
                                                rowStart: Int, rowEnd: Int, partial: UnsafeMutablePointer<Float>) {
        let vectorsPerRow = (width + 7) / 8
        let tailLanes = width - 8 * (vectorsPerRow - 1)  // 1...8
        let blocks = (outChannels + 3) / 4
        // Rows per pass: enough that the accumulators are written back rarely, few enough that the gradient rows
        // of 4 channels and the input rows they meet stay in L1.
        let rowsPerPass = max(1, min(rowEnd - rowStart, 2048 / max(1, width)))
        // Staged last vector of every row of a pass (zero past the row end), when rows are not whole vectors.
        let staged = UnsafeMutablePointer<Float>.allocate(capacity: 4 * rowsPerPass * 8)
        defer { staged.deallocate() }
        let zeroRow = UnsafeMutablePointer<Float>.allocate(capacity: 8)
        defer { zeroRow.deallocate() }
        zeroRow.update(repeating: 0, count: 8)
        for b in 0..<blocks {
            let channelsHere = min(4, outChannels - 4 * b)
            var y0 = rowStart
            while y0 < rowEnd {
                let y1 = min(rowEnd, y0 + rowsPerPass)
                if tailLanes < 8 {
                    staged.update(repeating: 0, count: 4 * rowsPerPass * 8)
                    for j in 0..<channelsHere {
                        for y in y0..<y1 {
                            let src = gradOutput + (4 * b + j) * gradChannelStride + y * width + 8 * (vectorsPerRow - 1)
                            let dst = staged + (j * rowsPerPass + (y - y0)) * 8
                            for i in 0..<tailLanes { dst[i] = src[i] }
                        }
                    }
                }
                for c in 0..<planes.channels {
                    for kz in 0..<3 {
                        for ky in 0..<3 {
                            let target = partial + (((b * planes.channels + c) * 9 + kz * 3 + ky) * 12) * 8
                            var acc = InlineArray<12, Float8>(repeating: Float8())
                            for y in y0..<y1 {
                                let row = planes.plane(kz) + c * planes.channelStride + (y + ky) * planes.rowStride
                                // Channels past outChannels read an all-zero row instead (their sums are unused).
                                var grads = InlineArray<4, UnsafePointer<Float>>(repeating: UnsafePointer(zeroRow))
                                for j in 0..<channelsHere { grads[j] = gradOutput + (4 * b + j) * gradChannelStride + y * width }
                                let fullVectors = tailLanes == 8 ? vectorsPerRow : vectorsPerRow - 1
                                if channelsHere == 4 {
                                    for v in 0..<fullVectors {
                                        let x0 = 8 * v
                                        let in0 = load8(row + x0), in1 = load8(row + x0 + 1), in2 = load8(row + x0 + 2)
                                        for j in 0..<4 {
                                            let g = load8(grads[j] + x0)
                                            acc[3 * j].addProduct(g, in0)
                                            acc[3 * j + 1].addProduct(g, in1)
                                            acc[3 * j + 2].addProduct(g, in2)
                                        }
                                    }
                                } else {
                                    for v in 0..<fullVectors {
                                        let x0 = 8 * v
                                        let in0 = load8(row + x0), in1 = load8(row + x0 + 1), in2 = load8(row + x0 + 2)
                                        for j in 0..<4 {
                                            let g = j < channelsHere ? load8(grads[j] + x0) : Float8()
                                            acc[3 * j].addProduct(g, in0)
                                            acc[3 * j + 1].addProduct(g, in1)
                                            acc[3 * j + 2].addProduct(g, in2)
                                        }
                                    }
                                }
                                if tailLanes < 8 {
                                    let x0 = 8 * (vectorsPerRow - 1)
                                    let in0 = load8(row + x0), in1 = load8(row + x0 + 1), in2 = load8(row + x0 + 2)
                                    for j in 0..<4 {
                                        let g = load8(staged + (j * rowsPerPass + (y - y0)) * 8)
                                        acc[3 * j].addProduct(g, in0)
                                        acc[3 * j + 1].addProduct(g, in1)
                                        acc[3 * j + 2].addProduct(g, in2)
                                    }
                                }
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

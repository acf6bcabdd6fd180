import Foundation
import IENetKernels

/// Direct 3x3x3 stride-1 "same" convolution for layers with few input channels (the UNet's first layer, 1..4
/// image channels), used by both backends for forward, weight gradient and input gradient.
///
/// Why: with K = Cin * 27 <= 108 the im2col + GEMM path is memory-bound (im2col writes 27x the input) and
/// reached ~20 % of sgemm peak on 1->32 at 64^3; oneDNN was slower still. Here every output row is accumulated
/// in registers from zero-padded input rows (Conv3x3Kernels, compiled for AVX2 + FMA), with no column matrix.
/// Runs only on CPUs with AVX2 and FMA (checked once); elsewhere, or with backend gemm/dnnl, the GEMM path runs.
/// The backward pass prefetches the next gradOutput slice (options.directPrefetch = false: off, same bits).
final class DirectConv: ConvAlgorithm {
    let name = "direct"
    let options: EngineOptions
    init(_ options: EngineOptions) { self.options = options }


    /// Largest input channel count handled here; above it the GEMM's inner dimension (Cin * 27) is large enough.
    static let maximumInputChannels = 4

    /// Whether this CPU can run the kernels (they are compiled for Haswell-class x86-64).
    static let cpuSupported: Bool = {
        #if arch(x86_64) && os(Linux)
        // The features the Haswell target lets the compiler use (as named in /proc/cpuinfo; the kernel lists
        // avx/avx2 only when the OS saves the YMM registers).
        let required: Set<Substring> = ["avx", "avx2", "fma", "bmi1", "bmi2", "abm", "movbe", "f16c", "popcnt", "cx16"]
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return false }
        let flags = Set(line[line.index(after: colon)...].split(separator: " "))
        return required.isSubset(of: flags)
        #else
        return false
        #endif
    }()

    /// Whether the direct kernels compute this convolution (never a transposed one).
    func handles(_ g: ConvGeometry, batch: Int, adjoint: Bool) -> Bool {
        !adjoint && Self.cpuSupported && g.kernel == 3 && g.stride == 1 && g.padding == 1
            && g.inChannels >= 1 && g.inChannels <= Self.maximumInputChannels && g.outChannels >= 1
            && g.inD >= 1 && g.inH >= 1 && g.inW >= 1
    }

    // MARK: Entry points (a layer's ConvPlan calls them when `handles` said yes)

    /// output = conv(input, weight), fully overwritten.
    func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                 output: UnsafeMutablePointer<Float>) {
        let packed = Self.packedWeights(outChannels: g.outChannels, inChannels: g.inChannels) { o, c, t in
            weight[(o * g.inChannels + c) * 27 + t]
        }
        defer { packed.deallocate() }
        forEachSlice(g, batch: batch, channels: g.inChannels, source: input) { n, z, planes, _ in
            Conv3x3Kernels.convolveSlice(planes, packedWeights: packed, outChannels: g.outChannels, width: g.inW,
                                         rowStart: 0, rowEnd: g.inH,
                                         output: output + n * g.outChannels * g.outSpatial + z * g.inH * g.inW,
                                         outChannelStride: g.outSpatial,
                                         streaming: batch * g.outChannels * g.outSpatial > options.directStreamFloats)
        }
    }

    /// gradInput = the input gradient for gradOutput, fully overwritten. It is the convolution of the zero-padded
    /// gradOutput (Cout channels) with the flipped, transposed kernel: w'(ci, co, tap) = w(co, ci, 26 - tap).
    func backwardData(_ g: ConvGeometry, batch: Int, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      gradInput: UnsafeMutablePointer<Float>) {
        let packed = Self.packedWeights(outChannels: g.inChannels, inChannels: g.outChannels) { ci, co, t in
            weight[(co * g.inChannels + ci) * 27 + 26 - t]
        }
        defer { packed.deallocate() }
        forEachSlice(g, batch: batch, channels: g.outChannels, source: gradOutput) { n, z, planes, _ in
            Conv3x3Kernels.convolveSlice(planes, packedWeights: packed, outChannels: g.inChannels, width: g.inW,
                                         rowStart: 0, rowEnd: g.inH,
                                         output: gradInput + n * g.inChannels * g.inSpatial + z * g.inH * g.inW,
                                         outChannelStride: g.inSpatial)
        }
    }

    /// gradWeight += sum over samples and voxels of gradOutput[co, v] * input[ci, v + tap - 1], and when
    /// gradInput is given, the input gradient (fully overwritten), in one pass over gradOutput: each padded
    /// gradOutput slice serves both (it is read from memory once). Each worker sums the weight gradient into its
    /// own vector partials, reduced in worker order, so the result depends only on the thread count.
    func accumulateWeightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>) {
        fusedBackward(g, batch: batch, input: input, weight: nil, gradOutput: gradOutput, gradWeight: gradWeight,
                      gradInput: nil)
    }

    func backward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?) {
        fusedBackward(g, batch: batch, input: input, weight: weight, gradOutput: gradOutput, gradWeight: gradWeight,
                      gradInput: gradInput)
    }

    private func fusedBackward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>?,
                               gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                               gradInput: UnsafeMutablePointer<Float>?) {
        precondition(gradInput == nil || weight != nil, "DirectConv.fusedBackward: the input gradient needs the weights")
        let flipped: UnsafeMutablePointer<Float>? = gradInput == nil ? nil
            : Self.packedWeights(outChannels: g.inChannels, inChannels: g.outChannels) { ci, co, t in
                weight![(co * g.inChannels + ci) * 27 + 26 - t]
            }
        defer { flipped?.deallocate() }
        let partialCount = Conv3x3Kernels.weightPartialCount(outChannels: g.outChannels, inChannels: g.inChannels)
        let workers = workerCount(batch: batch, depth: g.inD)
        let partials = UnsafeMutablePointer<Float>.allocate(capacity: partialCount * workers)
        defer { partials.deallocate() }
        partials.update(repeating: 0, count: partialCount * workers)
        let units = batch * g.inD
        parallelFor(workers, threads: workers) { worker in
            let inputRing = PaddedSliceRing(channels: g.inChannels, depth: g.inD, height: g.inH, width: g.inW)
            let gradientRing = PaddedSliceRing(channels: g.outChannels, depth: g.inD, height: g.inH, width: g.inW)
            for unit in (units * worker / workers)..<(units * (worker + 1) / workers) {
                let n = unit / g.inD, z = unit % g.inD
                let x = input + n * g.inChannels * g.inSpatial, dy = gradOutput + n * g.outChannels * g.outSpatial
                let inputPlanes = inputRing.planes(sample: n, z, from: x)
                let gradientMiddle = gradientRing.slice(sample: n, z, from: dy)
                // Slice z + 1 of gradOutput is padded next (by the input-gradient pass below, or without it by
                // the next unit): fetch it now, while the weight gradient's arithmetic leaves the memory bus idle.
                // (Slice z + 2, a unit earlier, measured slower: the lines had left the caches again.)
                let prefetch = options.directPrefetch && z + 1 < g.inD
                    ? PrefetchStream(start: dy + (z + 1) * g.inH * g.inW, chunks: g.outChannels,
                                     chunkFloats: g.inH * g.inW, chunkStrideFloats: g.outSpatial)
                    : .none
                Conv3x3Kernels.accumulateWeightGradient(inputPlanes, gradient: gradientMiddle,
                                                        outChannels: g.outChannels,
                                                        gradChannelStride: gradientRing.channelStride,
                                                        rowStart: 0, rowEnd: g.inH,
                                                        partial: partials + worker * partialCount,
                                                        prefetch: prefetch)
                if let gradInput, let flipped {
                    Conv3x3Kernels.convolveSlice(gradientRing.planes(sample: n, z, from: dy), packedWeights: flipped,
                                                 outChannels: g.inChannels, width: g.inW, rowStart: 0, rowEnd: g.inH,
                                                 output: gradInput + n * g.inChannels * g.inSpatial + z * g.inH * g.inW,
                                                 outChannelStride: g.inSpatial)
                }
            }
        }
        for co in 0..<g.outChannels {
            let block = co / 4, j = co % 4
            for ci in 0..<g.inChannels {
                for kz in 0..<3 {
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let offset = ((((block * g.inChannels + ci) * 9 + kz * 3 + ky) * 12) + j * 3 + kx) * 8
                            var total: Float = 0
                            for w in 0..<workers {
                                let lanes = partials + w * partialCount + offset
                                var sum: Float = 0
                                for lane in 0..<8 { sum += lanes[lane] }
                                total += sum
                            }
                            gradWeight[(co * g.inChannels + ci) * 27 + (kz * 3 + ky) * 3 + kx] += total
                        }
                    }
                }
            }
        }
    }

    // MARK: Work split and padded slices

    private static func packedWeights(outChannels: Int, inChannels: Int,
                                      _ weight: (Int, Int, Int) -> Float) -> UnsafeMutablePointer<Float> {
        let count = Conv3x3Kernels.packedWeightCount(outChannels: outChannels, inChannels: inChannels)
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: count)
        Conv3x3Kernels.packWeights(outChannels: outChannels, inChannels: inChannels, into: packed, weight)
        return packed
    }

    private func workerCount(batch: Int, depth: Int) -> Int { max(1, min(options.threads, batch * depth)) }

    /// Calls `body(sample, z, planes, worker)` for every output z-slice of every sample. Slices are split into
    /// `workerCount` contiguous runs, one per worker (fixed assignment); each worker keeps the last three padded
    /// input slices of `source` ([batch][channels][D][H][W]) so every input slice is padded about once.
    private func forEachSlice(_ g: ConvGeometry, batch: Int, channels: Int, source: UnsafePointer<Float>,
                                     _ body: (Int, Int, PaddedPlanes, Int) -> Void) {
        let units = batch * g.inD
        let workers = workerCount(batch: batch, depth: g.inD)
        parallelFor(workers, threads: workers) { worker in
            let ring = PaddedSliceRing(channels: channels, depth: g.inD, height: g.inH, width: g.inW)
            for unit in (units * worker / workers)..<(units * (worker + 1) / workers) {
                let n = unit / g.inD, z = unit % g.inD
                body(n, z, ring.planes(sample: n, z, from: source + n * channels * g.inSpatial), worker)
            }
        }
    }
}

/// Three zero-padded z-slices (all channels) of one worker, refilled as it moves along z, plus an all-zero slice
/// for z outside the volume. Layout as Conv3x3Kernels expects: [channel][H + 2][rowStride], image (y, x) at padded
/// (y + 1, x + 1), rowStride = W + 2 rounded up to 8 (rows start 32-byte aligned). Zeros lie before and after the
/// storage: the weight gradient reads 1 float before a plane and 2 past one, a row's last vector a few past the
/// row (into lanes that are not stored).
final class PaddedSliceRing {
    let channels: Int, depth: Int, height: Int, width: Int
    let rowStride: Int
    let channelStride: Int
    let sliceCount: Int
    private let allocation: UnsafeMutablePointer<Float>
    private let storage: UnsafeMutablePointer<Float>
    /// Which (sample, z) each of the three slots holds.
    private var held: [(Int, Int)] = Array(repeating: (-1, -1), count: 3)

    init(channels: Int, depth: Int, height: Int, width: Int) {
        self.channels = channels; self.depth = depth; self.height = height; self.width = width
        rowStride = (width + 2 + 7) / 8 * 8
        channelStride = (height + 2) * rowStride
        sliceCount = channels * channelStride
        let guardFloats = 16, floats = guardFloats + 4 * sliceCount + rowStride
        allocation = UnsafeMutableRawPointer.allocate(byteCount: floats * MemoryLayout<Float>.size, alignment: 64)
            .bindMemory(to: Float.self, capacity: floats)
        storage = allocation + guardFloats
        // Padding is never written afterwards: only the image part of a slot is refilled.
        allocation.update(repeating: 0, count: floats)
    }
    deinit { allocation.deallocate() }

    /// Padded slices z - 1, z, z + 1 of `sample` (at `source`), as the kernels read them.
    func planes(sample: Int, _ z: Int, from source: UnsafePointer<Float>) -> PaddedPlanes {
        PaddedPlanes(below: slice(sample: sample, z - 1, from: source), middle: slice(sample: sample, z, from: source),
                     above: slice(sample: sample, z + 1, from: source),
                     channels: channels, channelStride: channelStride, rowStride: rowStride)
    }

    /// The padded slice z of `sample` (its [channels][D][H][W] data at `source`), or zeros outside [0, depth).
    func slice(sample: Int, _ z: Int, from source: UnsafePointer<Float>) -> UnsafePointer<Float> {
        if z < 0 || z >= depth { return UnsafePointer(storage + 3 * sliceCount) }
        let slot = z % 3
        let target = storage + slot * sliceCount
        if held[slot] != (sample, z) {
            for c in 0..<channels {
                let src = source + (c * depth + z) * height * width
                let dst = target + c * channelStride + rowStride + 1
                for y in 0..<height {
                    (dst + y * rowStride).update(from: src + y * width, count: width)
                }
            }
            held[slot] = (sample, z)
        }
        return UnsafePointer(target)
    }
}

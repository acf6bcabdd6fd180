import Foundation
import IENetKernels

/// Winograd F(2x2x2, 3x3x3) for the eval-mode forward of 3x3x3 stride-1 "same" convolutions (Lavin & Gray 2016,
/// "Fast Algorithms for Convolutional Neural Networks", the 1-D F(2, 3) nested over three axes). Each 2x2x2 output
/// tile is A^T [ (G g G^T) . (B^T d B) ] A over its 4x4x4 input patch d, so the 8 * 27 = 216 multiplications of a
/// tile per channel pair become 64, done as 64 GEMMs U_xi [Cout x Cin] * V_xi [Cin x tiles] over a block of tiles:
///   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
///   A^T = [1 1 1 0; 0 1 -1 -1].
/// Tiles are processed 8 along x at a time (SIMD8 lanes): the input lines of a block are first split into their
/// even and odd voxels (zero outside the image), so that the 4 patch columns of 8 neighbouring tiles are contiguous
/// loads. Used only without saving for backward (inference and validation): the training forward and every gradient
/// stay on the layer's backend, so training bits do not change. The last bits differ from direct convolution
/// (other arithmetic; measured relative error ~1e-6, WinogradConvTests against the definition in Double).
final class WinogradConv {
    let options: EngineOptions
    private let scratch = ConvScratch()
    private var transformedWeights: UnsafeMutablePointer<Float>?
    private var transformedCapacity = 0

    static let lanes = WinogradTransforms.lanes

    #if arch(x86_64)
    static var transformsSupported: Bool { DirectConv.cpuSupported }
    #else
    static let transformsSupported = true
    #endif

    init(_ options: EngineOptions) { self.options = options }

    deinit { transformedWeights?.deallocate() }

    /// Whether g is a 3x3x3 stride-1 padding-1 convolution large enough for the transforms to pay
    /// (options.winogradMinimumVoxels output voxels, options.winogradMinimumChannels input channels), in fp32:
    /// oneDNN's bf16 kernels beat it (measured on an AVX512_BF16 CPU, UNet3D f=32 sliding-window inference of
    /// 64x160x160, 2 threads: bf16 with Winograd 4.68 s, bf16 direct 3.70 s; fp32 with Winograd 5.58 s).
    /// Its transforms are in IENetKernels, compiled for Haswell-class x86-64: where the CPU lacks those features
    /// the eval forward stays on the layer's backend (elsewhere than x86-64 that module is built for the host).
    func handles(_ g: ConvGeometry) -> Bool {
        Self.transformsSupported && options.winograd && options.precision == .fp32 && g.kernel == 3 && g.stride == 1 && g.padding == 1
            && g.inChannels >= options.winogradMinimumChannels && g.outChannels >= options.winogradMinimumChannels
            && g.outSpatial >= options.winogradMinimumVoxels
    }

    /// output = conv(input, weight) for g (handles(g) must hold), fully overwritten.
    func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                 output: UnsafeMutablePointer<Float>) {
        let cin = g.inChannels, cout = g.outChannels
        let (tilesD, tilesH, tilesW) = ((g.outD + 1) / 2, (g.outH + 1) / 2, (g.outW + 1) / 2)
        let groups = (tilesW + Self.lanes - 1) / Self.lanes
        // Rows of tiles (one tz, consecutive ty) per block: about 256 tiles, the GEMMs' column count.
        let rowsPerBlock = max(1, min(tilesH, 256 / (groups * Self.lanes)))
        let tilesPerBlock = rowsPerBlock * groups * Self.lanes
        let lineLength = groups * Self.lanes + 1
        let geometry = Geometry(d: g.inD, h: g.inH, w: g.inW, tilesH: tilesH, groups: groups, lineLength: lineLength,
                                rowsPerBlock: rowsPerBlock)
        let lineFloats = cin * 4 * geometry.linesPerZ * 2 * lineLength
        let vFloats = 64 * Self.planeFloats(cin, tilesPerBlock), mFloats = 64 * Self.planeFloats(cout, tilesPerBlock)
        let u = weights(count: 64 * cout * cin)
        transform(weight, into: u, cout: cout, cin: cin)

        var blocks: [Slab] = []
        for n in 0..<batch {
            for tz in 0..<tilesD {
                var ty = 0
                while ty < tilesH {
                    blocks.append(Slab(sample: n, rowStart: tz * tilesH + ty, rowEnd: tz * tilesH + min(tilesH, ty + rowsPerBlock)))
                    ty += rowsPerBlock
                }
            }
        }
        // Each block writes its own output rows: blocks go to whichever worker is free.
        forEachSlab(blocks, threads: options.threads, scratch: scratch, balanced: true) { block, worker, inner in
            let buffer = scratch.buffer(worker, count: lineFloats + vFloats + mFloats)
            let lines = buffer, v = buffer + lineFloats, m = v + vFloats
            let tz = block.rowStart / tilesH, ty0 = block.rowStart % tilesH, rows = block.rowEnd - block.rowStart
            let x = input + block.sample * cin * g.inSpatial
            WinogradTransforms.splitLines(x, channels: cin, tz: tz, ty0: ty0, rows: rows, geometry, into: lines)
            WinogradTransforms.transformInput(lines, channels: cin, rows: rows, geometry, tilesPerBlock: tilesPerBlock, into: v)
            let columns = rows * groups * Self.lanes
            for xi in 0..<64 {
                let (a, b, c) = (u + xi * cout * cin, v + xi * Self.planeFloats(cin, tilesPerBlock),
                                 m + xi * Self.planeFloats(cout, tilesPerBlock))
                if !(options.usesDNNL && dnnlSGEMM(m: cout, n: columns, k: cin, a: a, lda: cin, b: b, ldb: tilesPerBlock,
                                                   c: c, ldc: tilesPerBlock, threads: inner)) {
                    sgemm(m: cout, n: columns, k: cin, a: a, lda: cin, b: b, ldb: tilesPerBlock, beta: 0, c: c,
                          ldc: tilesPerBlock, threads: inner)
                }
            }
            WinogradTransforms.transformOutput(m, channels: cout, tz: tz, ty0: ty0, rows: rows, geometry, tilesPerBlock: tilesPerBlock,
                            into: output + block.sample * cout * g.outSpatial)
        }
    }

    static func planeFloats(_ channels: Int, _ tiles: Int) -> Int { WinogradTransforms.planeFloats(channels, tiles) }
    typealias Geometry = WinogradTransforms.Geometry

    private func weights(count: Int) -> UnsafeMutablePointer<Float> {
        if let transformedWeights, transformedCapacity >= count { return transformedWeights }
        transformedWeights?.deallocate()
        let made = UnsafeMutablePointer<Float>.allocate(capacity: count)
        transformedWeights = made
        transformedCapacity = count
        return made
    }

    /// U[xi][co][ci] = (G g G^T) of each 3x3x3 filter g = weight[co][ci], xi = (a * 4 + b) * 4 + c.
    private func transform(_ weight: UnsafePointer<Float>, into u: UnsafeMutablePointer<Float>, cout: Int, cin: Int) {
        @inline(__always) func g4(_ a: Float, _ b: Float, _ c: Float) -> (Float, Float, Float, Float) {
            (a, 0.5 * (a + b + c), 0.5 * (a - b + c), c)
        }
        parallelFor(cout, threads: options.threads) { co in
            var along = [Float](repeating: 0, count: 3 * 3 * 4), plane = [Float](repeating: 0, count: 3 * 4 * 4)
            for ci in 0..<cin {
                let f = weight + (co * cin + ci) * 27
                for zy in 0..<9 {   // along x
                    let t = g4(f[zy * 3], f[zy * 3 + 1], f[zy * 3 + 2])
                    along[zy * 4] = t.0; along[zy * 4 + 1] = t.1; along[zy * 4 + 2] = t.2; along[zy * 4 + 3] = t.3
                }
                for z in 0..<3 { for c in 0..<4 {   // along y
                    let t = g4(along[(z * 3) * 4 + c], along[(z * 3 + 1) * 4 + c], along[(z * 3 + 2) * 4 + c])
                    plane[(z * 4) * 4 + c] = t.0; plane[(z * 4 + 1) * 4 + c] = t.1
                    plane[(z * 4 + 2) * 4 + c] = t.2; plane[(z * 4 + 3) * 4 + c] = t.3
                }}
                for b in 0..<4 { for c in 0..<4 {   // along z
                    let t = g4(plane[b * 4 + c], plane[(4 + b) * 4 + c], plane[(8 + b) * 4 + c])
                    let at = { (a: Int) in (((a * 4 + b) * 4 + c) * cout + co) * cin + ci }
                    u[at(0)] = t.0; u[at(1)] = t.1; u[at(2)] = t.2; u[at(3)] = t.3
                }}
            }
        }
    }
}

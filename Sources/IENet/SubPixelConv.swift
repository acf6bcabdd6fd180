import Foundation

/// The adjoint of a strided convolution (the transposed convolution's forward, the strided convolution's input
/// gradient) without col2im: split by output residue. For stride s, the target voxels o = s*m + r with one residue
/// r = (rz, ry, rx) receive contributions only from the taps kk = (r + p) mod s (+ multiples of s) of each axis, each
/// reading source voxel m + (r + p - kk) / s. So each of the s^3 residue classes is a stride-1 convolution with
/// (k/s)^3 taps (k3 s2: 1 or 2 taps per axis; k4 s2: 2) over the zero-padded source, computed as in
/// `GEMMConv.implicitForward`: per tap one GEMM W_tap^T [Cin x Cout] * shifted source [Cout x columns] accumulated
/// on the padded grid of a few z-slices, then scattered to the target with stride s. No column matrix, no
/// scatter-add; every target voxel is written once, so slabs (sample, z-range) run on any thread.
/// Measured (1 thread, batch 2, Zen 3 AVX2, loaded machine): ConvTranspose3d 64->32 k4 s2 at 32^3 forward 45-51 -> 65-67 GFLOP/s.
struct SubPixelAdjoint {
    let g: ConvGeometry
    /// Per axis (z, y, x) and residue r: the taps (kernel index, source offset) that reach target s*m + r.
    let taps: [[[(kernel: Int, offset: Int)]]]
    /// Source padding (low, high) per axis so every tap's read for m in 0..<target/s lies in the padded source.
    let low: [Int], high: [Int]

    /// nil unless g is strided and every target size is a multiple of the stride (each residue class is then a
    /// full grid of target/s voxels per axis).
    init?(_ g: ConvGeometry) {
        let s = g.stride
        guard s > 1, g.inD % s == 0, g.inH % s == 0, g.inW % s == 0 else { return nil }
        self.g = g
        var taps: [[[(kernel: Int, offset: Int)]]] = []
        var low: [Int] = [], high: [Int] = []
        for (target, source) in [(g.inD, g.outD), (g.inH, g.outH), (g.inW, g.outW)] {
            let classSize = target / s
            var axis: [[(kernel: Int, offset: Int)]] = []
            var lo = 0, hi = 0
            for r in 0..<s {
                var list: [(kernel: Int, offset: Int)] = []
                for kk in 0..<g.kernel where (r + g.padding - kk) % s == 0 {
                    let offset = (r + g.padding - kk) / s
                    // Taps that never reach a source voxel contribute nothing: leave them out.
                    if offset + classSize - 1 < 0 || offset > source - 1 { continue }
                    list.append((kk, offset))
                    lo = max(lo, -offset)
                    hi = max(hi, offset + classSize - 1 - (source - 1))
                }
                axis.append(list)
            }
            taps.append(axis); low.append(lo); high.append(hi)
        }
        self.taps = taps
        self.low = low
        self.high = high
    }

    /// target = adjoint(source), fully overwritten. source: [batch, g.outChannels, out grid]; target: [batch,
    /// g.inChannels, in grid]; weight: g's [outChannels, inChannels, k, k, k].
    func run(batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
             target: UnsafeMutablePointer<Float>, options: EngineOptions, scratch: ConvScratch) {
        let s = g.stride, k = g.kernel, k3 = k * k * k
        let cin = g.inChannels, cout = g.outChannels
        let (pd, ph, pw) = (g.outD + low[0] + high[0], g.outH + low[1] + high[1], g.outW + low[2] + high[2])
        let plane = ph * pw, paddedSpatial = pd * plane
        let (md, mh, mw) = (g.inD / s, g.inH / s, g.inW / s)
        // Weights per tap, transposed: [tap][ci][co].
        let tapWeights = UnsafeMutablePointer<Float>.allocate(capacity: k3 * cin * cout)
        defer { tapWeights.deallocate() }
        for co in 0..<cout {
            for ci in 0..<cin {
                let src = weight + (co * cin + ci) * k3
                for t in 0..<k3 { tapWeights[(t * cin + ci) * cout + co] = src[t] }
            }
        }
        let padded = scratch.padded(count: batch * cout * paddedSpatial)
        padVolumes(source, into: padded, volumes: batch * cout, size: (g.outD, g.outH, g.outW), low: low, high: high,
                   threads: options.threads)
        // Work items: (sample, z-range of m). Each computes all s^3 residue classes of its z-range into their own
        // accumulators, then writes its target lines whole (interleaving the classes), so every target cache line
        // is written once while hot instead of once per class.
        let classes = s * s * s
        let slicesPerSlab = max(1, min(md, options.slabFloats / max(1, classes * cin * plane)))
        var slabs: [Slab] = []
        for n in 0..<batch {
            var z0 = 0
            while z0 < md { slabs.append(Slab(sample: n, rowStart: z0, rowEnd: min(md, z0 + slicesPerSlab))); z0 += slicesPerSlab }
        }
        forEachSlab(slabs, threads: options.threads, scratch: scratch) { slab, worker, inner in
            let z0 = slab.rowStart, z1 = slab.rowEnd
            let columns = ((z1 - 1 - z0) * ph + mh - 1) * pw + mw
            let accumulators = scratch.buffer(worker, count: classes * cin * columns)
            let base = padded + slab.sample * cout * paddedSpatial + (z0 + low[0]) * plane + low[1] * pw + low[2]
            for residue in 0..<classes {
                let accumulator = accumulators + residue * cin * columns
                let (tz, ty, tx) = (taps[0][residue / (s * s)], taps[1][(residue / s) % s], taps[2][residue % s])
                if tz.isEmpty || ty.isEmpty || tx.isEmpty {
                    accumulator.update(repeating: 0, count: cin * columns)
                    continue
                }
                var first = true
                for a in tz { for b in ty { for c in tx {
                    let t = (a.kernel * k + b.kernel) * k + c.kernel
                    sgemm(m: cin, n: columns, k: cout, a: tapWeights + t * cin * cout, lda: cout,
                          b: base + (a.offset * ph + b.offset) * pw + c.offset, ldb: paddedSpatial,
                          beta: first ? 0 : 1, c: accumulator, ldc: columns, threads: inner)
                    first = false
                }}}
            }
            let out = target + slab.sample * cin * g.inSpatial
            for ci in 0..<cin {
                for mz in z0..<z1 {
                    for rz in 0..<s {
                        for my in 0..<mh {
                            for ry in 0..<s {
                                let to = out + ((ci * g.inD + s * mz + rz) * g.inH + s * my + ry) * g.inW
                                let row = ci * columns + ((mz - z0) * ph + my) * pw
                                for rx in 0..<s {
                                    let from = accumulators + ((rz * s + ry) * s + rx) * cin * columns + row
                                    for mx in 0..<mw { to[s * mx + rx] = from[mx] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Copies `volumes` volumes of `size` into `padded`, each surrounded by `low` / `high` zeros per axis (z, y, x).
func padVolumes(_ source: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>, volumes: Int,
                size: (Int, Int, Int), low: [Int], high: [Int], threads: Int) {
    let (d, h, w) = size
    let (pd, ph, pw) = (d + low[0] + high[0], h + low[1] + high[1], w + low[2] + high[2])
    let plane = ph * pw
    parallelFor(volumes, threads: threads) { v in
        let src = source + v * d * h * w
        let dst = padded + v * pd * plane
        dst.update(repeating: 0, count: low[0] * plane)
        for z in 0..<d {
            let slice = dst + (z + low[0]) * plane
            slice.update(repeating: 0, count: low[1] * pw)
            for y in 0..<h {
                let line = slice + (y + low[1]) * pw
                line.update(repeating: 0, count: low[2])
                (line + low[2]).update(from: src + (z * h + y) * w, count: w)
                (line + low[2] + w).update(repeating: 0, count: high[2])
            }
            (slice + (h + low[1]) * pw).update(repeating: 0, count: high[1] * pw)
        }
        (dst + (d + low[0]) * plane).update(repeating: 0, count: high[0] * plane)
    }
}

// The data-movement and addition loops of IENet's Winograd F(2x2x2, 3x3x3) eval forward (WinogradConv.swift: the
// algorithm, the block layout and the GEMMs between these transforms). Compiled for Haswell-class x86-64 like the
// rest of this module (Package.swift), so each SIMD8<Float> operation is one 256-bit instruction; in IENet's own
// baseline x86-64 build it was two 128-bit ones (measured: the transforms were 29 % of a 64x160x160 sliding-window
// inference on 1 thread, all in SSE). The operations and their order are the same in either build: the results are
// bit for bit those of the baseline code. IENet calls these only after checking the CPU (WinogradConv.handles).

public enum WinogradTransforms {
    /// Tiles processed together along x, one SIMD8 lane each.
    public static let lanes = 8

    /// Floats between consecutive xi planes of V and M: [channels x tiles] plus 16, so that the 64 planes a tile
    /// reads or writes do not all fall into the same L1 sets (a multiple of 4 KiB apart, they would).
    public static func planeFloats(_ channels: Int, _ tiles: Int) -> Int { channels * tiles + 16 }

    /// The input extent and the tiling of one convolution.
    public struct Geometry {
        public let d: Int, h: Int, w: Int
        public let tilesH: Int, groups: Int, lineLength: Int, rowsPerBlock: Int
        /// Input lines (y) a block keeps per patch z-row: 2 per tile row plus the borders.
        public var linesPerZ: Int { 2 * rowsPerBlock + 2 }

        public init(d: Int, h: Int, w: Int, tilesH: Int, groups: Int, lineLength: Int, rowsPerBlock: Int) {
            self.d = d; self.h = h; self.w = w
            self.tilesH = tilesH; self.groups = groups; self.lineLength = lineLength; self.rowsPerBlock = rowsPerBlock
        }
    }

    /// lines[ci][zi][yi][parity][i]: input voxel (z, y, 2i - 1) for parity 0 and (z, y, 2i) for parity 1, with
    /// z = 2 tz - 1 + zi (zi < 4), y = 2 ty0 - 1 + yi (yi < 2 rows + 2); zero outside the image.
    public static func splitLines(_ x: UnsafePointer<Float>, channels: Int, tz: Int, ty0: Int, rows: Int, _ q: Geometry,
                            into lines: UnsafeMutablePointer<Float>) {
        let length = q.lineLength
        for ci in 0..<channels {
            for zi in 0..<4 {
                let z = 2 * tz - 1 + zi
                for yi in 0..<(2 * rows + 2) {
                    let y = 2 * ty0 - 1 + yi
                    let even = lines + (((ci * 4 + zi) * q.linesPerZ + yi) * 2) * length
                    let odd = even + length
                    guard z >= 0, z < q.d, y >= 0, y < q.h else {
                        even.update(repeating: 0, count: 2 * length)
                        continue
                    }
                    let row = x + ((ci * q.d + z) * q.h + y) * q.w
                    let evenValid = min(length - 1, q.w / 2), oddValid = min(length, (q.w + 1) / 2)
                    even[0] = 0
                    // 16 voxels at a time: their even half is odd[i..<i+8], their odd half even[i+1..<i+9].
                    var i = 0
                    while 2 * i + 16 <= q.w {
                        let pair = UnsafeRawPointer(row + 2 * i).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(odd + i).storeBytes(of: pair.evenHalf, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(even + i + 1).storeBytes(of: pair.oddHalf, as: SIMD8<Float>.self)
                        i += 8
                    }
                    for j in (i + 1)..<(evenValid + 1) { even[j] = row[2 * j - 1] }
                    (even + evenValid + 1).update(repeating: 0, count: length - evenValid - 1)
                    for j in i..<oddValid { odd[j] = row[2 * j] }
                    (odd + oddValid).update(repeating: 0, count: length - oddValid)
                }
            }
        }
    }

    /// V[xi][ci][tile] = (B^T d B) of each tile's 4x4x4 patch, tile = (row * groups + group) * 8 + lane.
    /// Per patch column c: each z-row zi of the patch is x-transformed (2 loads per line) and y-transformed in
    /// registers; the z transform then emits the 16 planes (a, b, c) of V as the rows are made.
    public static func transformInput(_ lines: UnsafePointer<Float>, channels: Int, rows: Int, _ q: Geometry,
                                tilesPerBlock: Int, into v: UnsafeMutablePointer<Float>) {
        typealias V8 = SIMD8<Float>
        typealias Row = (V8, V8, V8, V8)
        let linesPerZ = q.linesPerZ, length = q.lineLength
        let xiStride = Self.planeFloats(channels, tilesPerBlock)
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> V8 {
            UnsafeRawPointer(p).loadUnaligned(as: V8.self)
        }
        for ci in 0..<channels {
            let channelLines = lines + ci * 4 * linesPerZ * 2 * length
            let out = UnsafeMutableRawPointer(v + ci * tilesPerBlock)
            for r in 0..<rows {
                for group in 0..<q.groups {
                    let tile = (r * q.groups + group) * Self.lanes
                    let offset = group * Self.lanes
                    for c in 0..<4 {
                        /// Patch z-row zi for column c: x transform per line b, then y transform over b.
                        @inline(__always) func zRow(_ zi: Int) -> Row {
                            @inline(__always) func column(_ b: Int) -> V8 {
                                let even = channelLines + ((zi * linesPerZ + 2 * r + b) * 2) * length + offset
                                let odd = even + length
                                switch c {
                                case 0: return load(even) - load(even + 1)
                                case 1: return load(odd) + load(even + 1)
                                case 2: return load(even + 1) - load(odd)
                                default: return load(odd) - load(odd + 1)
                                }
                            }
                            let (d0, d1, d2, d3) = (column(0), column(1), column(2), column(3))
                            return (d0 - d2, d1 + d2, d2 - d1, d1 - d3)
                        }
                        @inline(__always) func store(_ a: Int, _ row: Row) {
                            let at = { (b: Int) in (((a * 4 + b) * 4 + c) * xiStride + tile) * MemoryLayout<Float>.size }
                            out.storeBytes(of: row.0, toByteOffset: at(0), as: V8.self)
                            out.storeBytes(of: row.1, toByteOffset: at(1), as: V8.self)
                            out.storeBytes(of: row.2, toByteOffset: at(2), as: V8.self)
                            out.storeBytes(of: row.3, toByteOffset: at(3), as: V8.self)
                        }
                        // z transform: a0 = z0 - z2, a1 = z1 + z2, a2 = z2 - z1, a3 = z1 - z3.
                        let z1 = zRow(1), z2 = zRow(2)
                        store(1, (z1.0 + z2.0, z1.1 + z2.1, z1.2 + z2.2, z1.3 + z2.3))
                        store(2, (z2.0 - z1.0, z2.1 - z1.1, z2.2 - z1.2, z2.3 - z1.3))
                        let z0 = zRow(0)
                        store(0, (z0.0 - z2.0, z0.1 - z2.1, z0.2 - z2.2, z0.3 - z2.3))
                        let z3 = zRow(3)
                        store(3, (z1.0 - z3.0, z1.1 - z3.1, z1.2 - z3.2, z1.3 - z3.3))
                    }
                }
            }
        }
    }

    /// output voxels of each tile: A^T M A, written where they lie inside the image. Per patch z-row a, the 16
    /// planes (b, c) reduce to (oy, ox) in registers; the z reduction accumulates over a.
    public static func transformOutput(_ m: UnsafePointer<Float>, channels: Int, tz: Int, ty0: Int, rows: Int, _ q: Geometry,
                                 tilesPerBlock: Int, into output: UnsafeMutablePointer<Float>) {
        typealias V8 = SIMD8<Float>
        typealias Quad = (V8, V8, V8, V8)   // (oy, ox) = (0,0), (0,1), (1,0), (1,1)
        let stride = Self.planeFloats(channels, tilesPerBlock)
        for co in 0..<channels {
            let source = m + co * tilesPerBlock
            for r in 0..<rows {
                let ty = ty0 + r
                for group in 0..<q.groups {
                    let tile = (r * q.groups + group) * Self.lanes
                    @inline(__always) func reduced(_ a: Int) -> Quad {
                        @inline(__always) func xPair(_ b: Int) -> (V8, V8) {
                            let base = UnsafeRawPointer(source + ((a * 4 + b) * 4) * stride + tile)
                            let step = stride * MemoryLayout<Float>.size
                            let m0 = base.loadUnaligned(as: V8.self)
                            let m1 = base.loadUnaligned(fromByteOffset: step, as: V8.self)
                            let m2 = base.loadUnaligned(fromByteOffset: 2 * step, as: V8.self)
                            let m3 = base.loadUnaligned(fromByteOffset: 3 * step, as: V8.self)
                            return (m0 + m1 + m2, m1 - m2 - m3)
                        }
                        let (b0, b1, b2, b3) = (xPair(0), xPair(1), xPair(2), xPair(3))
                        return (b0.0 + b1.0 + b2.0, b0.1 + b1.1 + b2.1, b1.0 - b2.0 - b3.0, b1.1 - b2.1 - b3.1)
                    }
                    // oz 0 = a0 + a1 + a2, oz 1 = a1 - a2 - a3.
                    let a1 = reduced(1), a2 = reduced(2)
                    var front = (a1.0 + a2.0, a1.1 + a2.1, a1.2 + a2.2, a1.3 + a2.3)
                    var back = (a1.0 - a2.0, a1.1 - a2.1, a1.2 - a2.2, a1.3 - a2.3)
                    let a0 = reduced(0)
                    front = (front.0 + a0.0, front.1 + a0.1, front.2 + a0.2, front.3 + a0.3)
                    let a3 = reduced(3)
                    back = (back.0 - a3.0, back.1 - a3.1, back.2 - a3.2, back.3 - a3.3)
                    let x0 = 2 * group * Self.lanes
                    @inline(__always) func write(_ oz: Int, _ quad: Quad) {
                        let z = 2 * tz + oz
                        guard z < q.d else { return }
                        for oy in 0..<2 {
                            let y = 2 * ty + oy
                            guard y < q.h else { continue }
                            let (even, odd) = oy == 0 ? (quad.0, quad.1) : (quad.2, quad.3)
                            let line = output + ((co * q.d + z) * q.h + y) * q.w
                            if x0 + 2 * Self.lanes <= q.w {
                                let interleaved = SIMD16<Float>(lowHalf: SIMD8(even[0], odd[0], even[1], odd[1], even[2], odd[2], even[3], odd[3]),
                                                                highHalf: SIMD8(even[4], odd[4], even[5], odd[5], even[6], odd[6], even[7], odd[7]))
                                UnsafeMutableRawPointer(line + x0).storeBytes(of: interleaved, as: SIMD16<Float>.self)
                            } else {
                                for lane in 0..<Self.lanes {
                                    let x = x0 + 2 * lane
                                    if x < q.w { line[x] = even[lane] }
                                    if x + 1 < q.w { line[x + 1] = odd[lane] }
                                }
                            }
                        }
                    }
                    write(0, front)
                    write(1, back)
                }
            }
        }
    }
}

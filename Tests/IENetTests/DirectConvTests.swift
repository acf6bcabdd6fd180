import XCTest
@testable import IENet
import IENetKernels

/// The direct 3x3x3 convolution for few input channels (DirectConv) against (a) the convolution's definition
/// evaluated in Double and (b) the im2col + GEMM path, for forward, weight gradient and input gradient.
final class DirectConvTests: XCTestCase {
    /// batch, input channels, output channels, (D, H, W). Odd sizes on purpose: W not a multiple of 8 (and above
    /// one register block of vectors), a 1x1x1 volume, output channel counts that are not multiples of 4, 1 and 2
    /// output channels (their own register blocking), batches of 1 and 3.
    struct Shape: CustomStringConvertible {
        let batch, cin, cout: Int
        let size: (Int, Int, Int)
        var description: String { "N\(batch) \(cin)->\(cout) \(size.0)x\(size.1)x\(size.2)" }
        func geometry() -> ConvGeometry {
            ConvGeometry(inChannels: cin, outChannels: cout, kernel: 3, stride: 1, padding: 1,
                         inD: size.0, inH: size.1, inW: size.2)
        }
    }

    let definitionShapes = [
        Shape(batch: 1, cin: 1, cout: 32, size: (5, 7, 9)),
        Shape(batch: 3, cin: 1, cout: 5, size: (1, 1, 1)),
        Shape(batch: 2, cin: 2, cout: 6, size: (4, 3, 17)),
        Shape(batch: 1, cin: 3, cout: 7, size: (3, 5, 8)),
        Shape(batch: 3, cin: 4, cout: 4, size: (2, 6, 11)),
        Shape(batch: 1, cin: 1, cout: 1, size: (6, 5, 13)),
        Shape(batch: 2, cin: 2, cout: 2, size: (3, 3, 20)),
        Shape(batch: 1, cin: 1, cout: 3, size: (2, 2, 70)),
    ]

    /// The direct kernel where it takes the layer (else GEMM), with `threads` threads.
    private func direct(threads: Int = 1) -> EngineOptions { EngineOptions(threads: threads, convBackend: .direct) }

    /// The GEMM path for every layer.
    private func gemm(threads: Int = 1) -> EngineOptions { EngineOptions(threads: threads, convBackend: .gemm) }

    private func requireDirectKernels() throws {
        guard DirectConv.cpuSupported else { throw XCTSkip("this CPU lacks AVX2/FMA: the direct kernels never run here") }
    }

    /// The backend a model with `options` runs this geometry on.
    private func algorithm(_ g: ConvGeometry, batch: Int, _ options: EngineOptions) -> ConvAlgorithm {
        Engine(options).plan(g, batch: batch, adjoint: false).algorithm
    }

    private func random(_ count: Int, _ rng: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(rng.nextUniform(-1, 1)) }
    }

    // MARK: The definition, in Double

    /// y[n, o, z, y, x] = sum_{c, kz, ky, kx} w[o, c, kz, ky, kx] * x[n, c, z + kz - 1, y + ky - 1, x + kx - 1],
    /// zero outside the volume.
    private func definitionForward(_ s: Shape, _ x: [Float], _ w: [Float]) -> [Double] {
        let (d, h, wd) = s.size
        var y = [Double](repeating: 0, count: s.batch * s.cout * d * h * wd)
        for n in 0..<s.batch { for o in 0..<s.cout { for z in 0..<d { for yy in 0..<h { for xx in 0..<wd {
            var acc = 0.0
            for c in 0..<s.cin { for kz in 0..<3 { for ky in 0..<3 { for kx in 0..<3 {
                let iz = z + kz - 1, iy = yy + ky - 1, ix = xx + kx - 1
                if iz < 0 || iz >= d || iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                acc += Double(x[(((n * s.cin + c) * d + iz) * h + iy) * wd + ix])
                    * Double(w[((o * s.cin + c) * 3 + kz) * 9 + ky * 3 + kx])
            }}}}
            y[(((n * s.cout + o) * d + z) * h + yy) * wd + xx] = acc
        }}}}}
        return y
    }

    /// dW[o, c, tap] = sum over n and output voxels of dY[n, o, v] * x[n, c, v + tap - 1];
    /// dX[n, c, u] = sum over o and taps of w[o, c, tap] * dY[n, o, u - tap + 1] (the chain rule through the
    /// same index map, written as a scatter from every output voxel).
    private func definitionBackward(_ s: Shape, _ x: [Float], _ w: [Float], _ dy: [Float]) -> (dW: [Double], dX: [Double]) {
        let (d, h, wd) = s.size
        var dW = [Double](repeating: 0, count: s.cout * s.cin * 27)
        var dX = [Double](repeating: 0, count: s.batch * s.cin * d * h * wd)
        for n in 0..<s.batch { for o in 0..<s.cout { for z in 0..<d { for yy in 0..<h { for xx in 0..<wd {
            let g = Double(dy[(((n * s.cout + o) * d + z) * h + yy) * wd + xx])
            for c in 0..<s.cin { for kz in 0..<3 { for ky in 0..<3 { for kx in 0..<3 {
                let iz = z + kz - 1, iy = yy + ky - 1, ix = xx + kx - 1
                if iz < 0 || iz >= d || iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                let xi = (((n * s.cin + c) * d + iz) * h + iy) * wd + ix
                let wi = ((o * s.cin + c) * 3 + kz) * 9 + ky * 3 + kx
                dW[wi] += g * Double(x[xi])
                dX[xi] += g * Double(w[wi])
            }}}}
        }}}}}
        return (dW, dX)
    }

    // MARK: Running the engine

    struct Results { var y: [Float]; var dW: [Float]; var dX: [Float] }

    /// Forward, then backward with input gradient, on the backend `options` choose for the shape.
    /// dW starts from `initialGradient` to check that it is accumulated, not overwritten.
    private func run(_ s: Shape, _ x: [Float], _ w: [Float], _ dy: [Float], initialGradient: [Float],
                     _ options: EngineOptions? = nil) -> Results {
        let g = s.geometry()
        let backend = algorithm(g, batch: s.batch, options ?? direct())
        var y = [Float](repeating: .nan, count: s.batch * s.cout * g.outSpatial)
        var dW = initialGradient
        var dX = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in dy.withUnsafeBufferPointer { gp in
            y.withUnsafeMutableBufferPointer { yp in
                backend.forward(g, batch: s.batch, input: xp.baseAddress!, weight: wp.baseAddress!, output: yp.baseAddress!)
            }
            dW.withUnsafeMutableBufferPointer { dwp in dX.withUnsafeMutableBufferPointer { dxp in
                backend.backward(g, batch: s.batch, input: xp.baseAddress!, weight: wp.baseAddress!,
                                 gradOutput: gp.baseAddress!, gradWeight: dwp.baseAddress!, gradInput: dxp.baseAddress!)
            }}
        }}}
        return Results(y: y, dW: dW, dX: dX)
    }

    /// max |a - b| / max |b| (b the reference), so that it reads as a relative error of the whole tensor.
    private func relativeError(_ a: [Float], _ b: [Double]) -> Double {
        precondition(a.count == b.count)
        var worst = 0.0, scale = 0.0
        for i in 0..<a.count {
            worst = max(worst, abs(Double(a[i]) - b[i]))
            scale = max(scale, abs(b[i]))
        }
        return a.contains(where: { !$0.isFinite }) ? .infinity : worst / max(scale, 1e-30)
    }

    private func inputs(_ s: Shape, seed: UInt64) -> (x: [Float], w: [Float], dy: [Float], dW0: [Float]) {
        var rng = SeededGenerator(seed: seed)
        let g = s.geometry()
        return (random(s.batch * s.cin * g.inSpatial, &rng), random(s.cout * s.cin * 27, &rng),
                random(s.batch * s.cout * g.outSpatial, &rng), random(s.cout * s.cin * 27, &rng))
    }

    /// The separate entry points: weight gradient alone (backward without input gradient, as the UNet's first
    /// layer runs) and input gradient alone.
    private func runSeparately(_ s: Shape, _ x: [Float], _ w: [Float], _ dy: [Float],
                               initialGradient: [Float], _ options: EngineOptions? = nil) -> (dW: [Float], dX: [Float]) {
        let g = s.geometry()
        let backend = algorithm(g, batch: s.batch, options ?? direct())
        var dW = initialGradient
        var dX = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in dy.withUnsafeBufferPointer { gp in
            dW.withUnsafeMutableBufferPointer { dwp in
                backend.backward(g, batch: s.batch, input: xp.baseAddress!, weight: wp.baseAddress!,
                                 gradOutput: gp.baseAddress!, gradWeight: dwp.baseAddress!, gradInput: nil)
            }
            dX.withUnsafeMutableBufferPointer { dxp in
                backend.backwardData(g, batch: s.batch, gradOutput: gp.baseAddress!, weight: wp.baseAddress!,
                                     gradInput: dxp.baseAddress!)
            }
        }}}
        return (dW, dX)
    }

    // MARK: Tests

    func testDirectPathIsTakenForFewInputChannelsOnly() throws {
        try requireDirectKernels()
        func handles(_ g: ConvGeometry, _ options: EngineOptions? = nil) -> Bool {
            algorithm(g, batch: 1, options ?? direct()).name == "direct"
        }
        XCTAssertTrue(handles(Shape(batch: 1, cin: 1, cout: 32, size: (64, 64, 64)).geometry()))
        XCTAssertTrue(handles(Shape(batch: 1, cin: 4, cout: 3, size: (1, 1, 1)).geometry()))
        XCTAssertTrue(handles(Shape(batch: 1, cin: 1, cout: 32, size: (64, 64, 64)).geometry(), EngineOptions()), "auto")
        XCTAssertFalse(handles(Shape(batch: 1, cin: 5, cout: 32, size: (8, 8, 8)).geometry()))
        let strided = ConvGeometry(inChannels: 1, outChannels: 8, kernel: 3, stride: 2, padding: 1, inD: 8, inH: 8, inW: 8)
        let unpadded = ConvGeometry(inChannels: 1, outChannels: 8, kernel: 3, stride: 1, padding: 0, inD: 8, inH: 8, inW: 8)
        let pointwise = ConvGeometry(inChannels: 1, outChannels: 8, kernel: 1, stride: 1, padding: 0, inD: 8, inH: 8, inW: 8)
        XCTAssertFalse(handles(strided))
        XCTAssertFalse(handles(unpadded))
        XCTAssertFalse(handles(pointwise))
        XCTAssertFalse(handles(Shape(batch: 1, cin: 1, cout: 32, size: (64, 64, 64)).geometry(), gemm()))
        XCTAssertFalse(handles(Shape(batch: 1, cin: 1, cout: 32, size: (64, 64, 64)).geometry(), EngineOptions(convBackend: .dnnl)))
        XCTAssertFalse(DirectConv(direct()).handles(Shape(batch: 1, cin: 1, cout: 4, size: (8, 8, 8)).geometry(), batch: 1,
                                                    adjoint: true), "never a transposed convolution")
    }

    func testForwardAndGradientsMatchTheDefinitionInDouble() throws {
        try requireDirectKernels()
        for (i, s) in definitionShapes.enumerated() {
            let (x, w, dy, dW0) = inputs(s, seed: UInt64(10 + i))
            let result = run(s, x, w, dy, initialGradient: dW0)
            let y = definitionForward(s, x, w)
            let (dW, dX) = definitionBackward(s, x, w, dy)
            let dWExpected = zip(dW0, dW).map { Double($0) + $1 }
            XCTAssertLessThan(relativeError(result.y, y), 1e-5, "forward \(s)")
            XCTAssertLessThan(relativeError(result.dW, dWExpected), 1e-5, "weight gradient \(s)")
            XCTAssertLessThan(relativeError(result.dX, dX), 1e-5, "input gradient \(s)")
            let separate = runSeparately(s, x, w, dy, initialGradient: dW0)
            XCTAssertLessThan(relativeError(separate.dW, dWExpected), 1e-5, "weight gradient alone \(s)")
            XCTAssertLessThan(relativeError(separate.dX, dX), 1e-5, "input gradient alone \(s)")
        }
    }

    func testMatchesTheGEMMPathOnLargerShapes() throws {
        try requireDirectKernels()
        let shapes = [Shape(batch: 2, cin: 1, cout: 32, size: (9, 12, 37)),
                      Shape(batch: 1, cin: 3, cout: 10, size: (7, 6, 64)),
                      Shape(batch: 3, cin: 2, cout: 9, size: (5, 9, 3))]
        for threads in [1, 2] {
            for (i, s) in shapes.enumerated() {
                let (x, w, dy, dW0) = inputs(s, seed: UInt64(40 + i))
                let direct = run(s, x, w, dy, initialGradient: dW0, direct(threads: threads))
                let gemm = run(s, x, w, dy, initialGradient: dW0, gemm(threads: threads))
                XCTAssertLessThan(relativeError(direct.y, gemm.y.map(Double.init)), 1e-5, "forward \(s), \(threads) threads")
                XCTAssertLessThan(relativeError(direct.dW, gemm.dW.map(Double.init)), 1e-5, "weight gradient \(s), \(threads) threads")
                XCTAssertLessThan(relativeError(direct.dX, gemm.dX.map(Double.init)), 1e-5, "input gradient \(s), \(threads) threads")
            }
        }
    }

    func testStreamingForwardWritesTheSameOutput() throws {
        try requireDirectKernels()
        for (i, s) in definitionShapes.enumerated() {
            let (x, w, dy, dW0) = inputs(s, seed: UInt64(60 + i))
            var options = direct()
            options.directStreamFloats = Int.max
            let cached = run(s, x, w, dy, initialGradient: dW0, options)
            // Every output then goes through the L1 staging buffer and the non-temporal write-out, whose
            // unaligned head and tail take the ordinary path.
            options.directStreamFloats = 0
            let streamed = run(s, x, w, dy, initialGradient: dW0, options)
            XCTAssertEqual(streamed.y, cached.y, "forward \(s)")
            XCTAssertLessThan(relativeError(streamed.y, definitionForward(s, x, w)), 1e-5, "forward \(s)")
        }
    }

    func testResultsDependOnlyOnTheThreadCount() throws {
        try requireDirectKernels()
        let s = Shape(batch: 3, cin: 2, cout: 6, size: (7, 5, 19))
        let (x, w, dy, dW0) = inputs(s, seed: 77)
        let single = run(s, x, w, dy, initialGradient: dW0, direct(threads: 1))
        let first = run(s, x, w, dy, initialGradient: dW0, direct(threads: 2))
        let second = run(s, x, w, dy, initialGradient: dW0, direct(threads: 2))
        // Each output voxel and input-gradient voxel is summed in the same order whoever computes it.
        XCTAssertEqual(first.y, single.y)
        XCTAssertEqual(first.dX, single.dX)
        // Weight gradients are per-worker partial sums reduced in worker order: repeatable for a thread count.
        XCTAssertEqual(first.dW, second.dW)
        XCTAssertEqual(first.y, second.y)
    }

    func testConv3dLayerUsesTheDirectPathWithBias() throws {
        try requireDirectKernels()
        var rng = SeededGenerator(seed: 5)
        let conv = Conv3d(name: "first", inChannels: 1, outChannels: 6, kernel: 3, stride: 1, padding: 1, bias: true, rng: &rng)
        for i in conv.bias!.value.indices { conv.bias!.value[i] = Float(i) * 0.25 - 0.5 }
        let s = Shape(batch: 2, cin: 1, cout: 6, size: (4, 5, 10))
        let (x, _, dy, _) = inputs(s, seed: 91)
        let y = conv.forward(Tensor(shape: [2, 1, 4, 5, 10], data: x))
        let expected = definitionForward(s, x, conv.weight.value)
        let perChannel = 4 * 5 * 10
        let withBias = expected.enumerated().map { i, v in v + Double(conv.bias!.value[(i / perChannel) % 6]) }
        XCTAssertLessThan(relativeError(y.data, withBias), 1e-5)
        conv.weight.grad = [Float](repeating: 0, count: conv.weight.grad.count)
        let dX = conv.backward(Tensor(shape: y.shape, data: dy), inputGradient: true)!
        let (dW, dXExpected) = definitionBackward(s, x, conv.weight.value, dy)
        XCTAssertLessThan(relativeError(conv.weight.grad, dW), 1e-5)
        XCTAssertLessThan(relativeError(dX.data, dXExpected), 1e-5)
    }

    // MARK: Prefetch of the next gradient slice

    /// The lines a PrefetchStream hands out: for each chunk in order, every 64-byte line from the one holding its
    /// first float to the one holding its last, each once, and nothing else (misaligned starts, a stride that is
    /// not a whole number of lines, chunks shorter than a line).
    func testPrefetchStreamWalksEveryLineOfEachChunkOnce() {
        let storage = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 64)
        defer { storage.deallocate() }
        let base = Int(bitPattern: storage)
        // (offset of the first float in bytes, chunks, floats per chunk, stride in floats)
        let cases = [(0, 3, 16, 16), (4, 2, 16, 16), (60, 5, 1, 7), (12, 4, 315, 1001), (0, 1, 4096, 0), (32, 32, 35, 63)]
        for (offset, chunks, floats, strideFloats) in cases {
            let start = (storage + offset).assumingMemoryBound(to: Float.self)
            var stream = PrefetchStream(start: UnsafePointer(start), chunks: chunks, chunkFloats: floats,
                                        chunkStrideFloats: strideFloats)
            var expected: [Int] = []
            for chunk in 0..<chunks {
                let first = base + offset + chunk * strideFloats * 4, last = first + floats * 4 - 1
                expected += Array(stride(from: first / 64 * 64, through: last / 64 * 64, by: 64))
            }
            var walked: [Int] = []
            while let line = stream.next() { walked.append(Int(bitPattern: line)) }
            XCTAssertEqual(walked, expected, "offset \(offset), \(chunks) chunks of \(floats) floats, stride \(strideFloats)")
            let bound = PrefetchStream(start: UnsafePointer(start), chunks: chunks, chunkFloats: floats,
                                       chunkStrideFloats: strideFloats).lineCount
            XCTAssertGreaterThanOrEqual(bound, expected.count, "line count bound")
            XCTAssertNil(stream.next(), "a finished stream stays finished")
        }
        var none = PrefetchStream.none
        XCTAssertNil(none.next())
        XCTAssertEqual(none.lineCount, 0)
        var empty = PrefetchStream(start: UnsafePointer(storage.assumingMemoryBound(to: Float.self)), chunks: 4,
                                   chunkFloats: 0, chunkStrideFloats: 16)
        XCTAssertNil(empty.next())
        // issue() walks the same lines (it only adds the prefetch instruction): 3 + 3 of 5 lines leaves none.
        var issued = PrefetchStream(start: UnsafePointer(storage.assumingMemoryBound(to: Float.self)), chunks: 1,
                                    chunkFloats: 80, chunkStrideFloats: 0)
        issued.issue(3)
        XCTAssertEqual(issued.next().map { Int(bitPattern: $0) }, base + 3 * 64)
        issued.issue(3)
        XCTAssertNil(issued.next())
    }

    /// Prefetching is a hint: the backward pass gives the same bits with it on and off, at depths where slice
    /// z + 2 is past the volume (1, 2, 3), across sample boundaries and worker ranges (2 threads), and still
    /// matches the definition.
    func testPrefetchLeavesTheBackwardPassBitIdentical() throws {
        try requireDirectKernels()
        let shapes = [Shape(batch: 2, cin: 1, cout: 32, size: (5, 7, 9)),
                      Shape(batch: 3, cin: 1, cout: 6, size: (1, 4, 13)),
                      Shape(batch: 2, cin: 2, cout: 5, size: (2, 3, 17)),
                      Shape(batch: 1, cin: 4, cout: 9, size: (3, 6, 11)),
                      Shape(batch: 2, cin: 1, cout: 32, size: (6, 16, 16))]
        for threads in [1, 2] {
            for (i, s) in shapes.enumerated() {
                let (x, w, dy, dW0) = inputs(s, seed: UInt64(120 + i))
                var off = direct(threads: threads)
                off.directPrefetch = false
                let plain = run(s, x, w, dy, initialGradient: dW0, off)
                let plainAlone = runSeparately(s, x, w, dy, initialGradient: dW0, off)
                let prefetched = run(s, x, w, dy, initialGradient: dW0, direct(threads: threads))
                let prefetchedAlone = runSeparately(s, x, w, dy, initialGradient: dW0, direct(threads: threads))
                XCTAssertEqual(prefetched.dW, plain.dW, "weight gradient \(s), \(threads) threads")
                XCTAssertEqual(prefetched.dX, plain.dX, "input gradient \(s), \(threads) threads")
                XCTAssertEqual(prefetchedAlone.dW, plainAlone.dW, "weight gradient alone \(s), \(threads) threads")
                let (dW, dX) = definitionBackward(s, x, w, dy)
                XCTAssertLessThan(relativeError(prefetched.dW, zip(dW0, dW).map { Double($0) + $1 }), 1e-5, "\(s)")
                XCTAssertLessThan(relativeError(prefetched.dX, dX), 1e-5, "\(s)")
            }
        }
    }
}

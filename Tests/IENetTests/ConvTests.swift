import XCTest
@testable import IENet

/// Direct (six nested loops, Double) convolution used as the independent reference.
func referenceConv(_ x: Tensor, weight: [Float], bias: [Float]?, outChannels: Int, kernel k: Int, stride s: Int,
                   padding p: Int) -> Tensor {
    let n = x.shape[0], ci = x.shape[1], d = x.shape[2], h = x.shape[3], w = x.shape[4]
    let od = (d + 2 * p - k) / s + 1, oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
    var y = Tensor(zeros: [n, outChannels, od, oh, ow])
    for b in 0..<n { for co in 0..<outChannels { for z in 0..<od { for yy in 0..<oh { for xx in 0..<ow {
        var acc = Double(bias?[co] ?? 0)
        for c in 0..<ci { for kz in 0..<k { for ky in 0..<k { for kx in 0..<k {
            let iz = z * s - p + kz, iy = yy * s - p + ky, ix = xx * s - p + kx
            if iz < 0 || iz >= d || iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
            acc += Double(x.data[(((b * ci + c) * d + iz) * h + iy) * w + ix])
                * Double(weight[(((co * ci + c) * k + kz) * k + ky) * k + kx])
        }}}}
        y.data[(((b * outChannels + co) * od + z) * oh + yy) * ow + xx] = Float(acc)
    }}}}}
    return y
}

/// Direct transposed convolution from its definition: every input voxel scatters weight * value. `outputSize`
/// (default (n - 1) s - 2p + k) also makes it a strided convolution's input gradient (the adjoint).
func referenceConvTranspose(_ x: Tensor, weight: [Float], bias: [Float], outChannels co: Int, kernel k: Int,
                            stride s: Int, padding p: Int, outputSize: [Int]? = nil) -> Tensor {
    let n = x.shape[0], ci = x.shape[1], d = x.shape[2], h = x.shape[3], w = x.shape[4]
    let sizes = outputSize ?? [d, h, w].map { ($0 - 1) * s - 2 * p + k }
    let od = sizes[0], oh = sizes[1], ow = sizes[2]
    var acc = [Double](repeating: 0, count: n * co * od * oh * ow)
    for b in 0..<n { for c in 0..<ci { for z in 0..<d { for yy in 0..<h { for xx in 0..<w {
        let v = Double(x.data[(((b * ci + c) * d + z) * h + yy) * w + xx])
        for o in 0..<co { for kz in 0..<k { for ky in 0..<k { for kx in 0..<k {
            let tz = z * s - p + kz, ty = yy * s - p + ky, tx = xx * s - p + kx
            if tz < 0 || tz >= od || ty < 0 || ty >= oh || tx < 0 || tx >= ow { continue }
            acc[(((b * co + o) * od + tz) * oh + ty) * ow + tx] += v * Double(weight[(((c * co + o) * k + kz) * k + ky) * k + kx])
        }}}}
    }}}}}
    for b in 0..<n { for o in 0..<co { for i in 0..<(od * oh * ow) { acc[(b * co + o) * od * oh * ow + i] += Double(bias[o]) } } }
    return Tensor(shape: [n, co, od, oh, ow], data: acc.map { Float($0) })
}

func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float = 1e-4, _ label: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, label, file: file, line: line)
    guard a.shape == b.shape else { return }
    var worst: Float = 0
    for i in 0..<a.count { worst = max(worst, abs(a.data[i] - b.data[i]) / (1 + abs(b.data[i]))) }
    XCTAssertLessThan(worst, tolerance, "\(label): max deviation \(worst)", file: file, line: line)
}

final class ConvTests: XCTestCase {
    struct Case { let cin, cout, k, s, p: Int; let size: [Int]; let bias: Bool }
    let cases = [
        Case(cin: 3, cout: 4, k: 3, s: 1, p: 1, size: [5, 6, 7], bias: false),
        Case(cin: 2, cout: 5, k: 3, s: 2, p: 1, size: [6, 5, 8], bias: true),
        Case(cin: 4, cout: 3, k: 1, s: 1, p: 0, size: [3, 4, 5], bias: true),
        Case(cin: 2, cout: 2, k: 3, s: 1, p: 0, size: [5, 5, 4], bias: true),
    ]

    func testConvForwardMatchesDirectConvolutionAndShapes() {
        var random = TestRandom(1)
        var rng = SeededGenerator(seed: 3)
        for c in cases {
            let conv = Conv3d(name: "c", inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.s,
                              padding: c.p, bias: c.bias, rng: &rng)
            if let b = conv.bias { b.value = (0..<c.cout).map { Float($0) * 0.3 - 0.5 } }
            let x = random.tensor([2, c.cin] + c.size)
            let y = conv.forward(x, saveForBackward: false)
            let expectedShape = [2, c.cout] + c.size.map { ($0 + 2 * c.p - c.k) / c.s + 1 }
            XCTAssertEqual(y.shape, expectedShape)
            let reference = referenceConv(x, weight: conv.weight.value, bias: conv.bias?.value, outChannels: c.cout,
                                          kernel: c.k, stride: c.s, padding: c.p)
            assertClose(y, reference, "conv k\(c.k) s\(c.s) p\(c.p)")
        }
    }

    func testConvForwardWithTinySlabsMatches() {
        // Force several slabs (and single-row slabs) so slab boundaries are exercised.
        var random = TestRandom(2)
        var rng = SeededGenerator(seed: 4)
        for budget in [1, 200, 1000, 3000] { for stride in [1, 2] {
            var options = EngineOptions(convBackend: .gemm)  // the slabs are the GEMM path's
            options.slabFloats = budget
            let conv = Conv3d(name: "c", inChannels: 2, outChannels: 3, kernel: 3, stride: stride, padding: 1, bias: false,
                              rng: &rng, engine: Engine(options))
            let x = random.tensor([1, 2, 7, 6, 5])
            let y = conv.forward(x)
            assertClose(y, referenceConv(x, weight: conv.weight.value, bias: nil, outChannels: 3, kernel: 3, stride: stride,
                                         padding: 1), "budget \(budget) stride \(stride)")
            let projection = random.tensor(y.shape)
            let gx = conv.backward(projection)!
            var xm = x
            checkFiniteDifferences(label: "slabbed conv input (budget \(budget))", count: x.count,
                                   get: { xm.data[$0] }, set: { xm.data[$0] = $1 },
                                   loss: { projectedSum(conv.forward(xm, saveForBackward: false), projection) },
                                   analytic: { gx.data[$0] })
            checkFiniteDifferences(label: "slabbed conv weight (budget \(budget))", count: conv.weight.count,
                                   get: { conv.weight.value[$0] }, set: { conv.weight.value[$0] = $1 },
                                   loss: { projectedSum(conv.forward(xm, saveForBackward: false), projection) },
                                   analytic: { conv.weight.grad[$0] })
        }}
    }

    func testConvGradientsByFiniteDifferences() {
        var random = TestRandom(5)
        var rng = SeededGenerator(seed: 6)
        for c in cases {
            let conv = Conv3d(name: "c", inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.s,
                              padding: c.p, bias: c.bias, rng: &rng)
            var x = random.tensor([2, c.cin] + c.size)
            let y = conv.forward(x)
            let projection = random.tensor(y.shape)
            let gradInput = conv.backward(projection)!
            XCTAssertEqual(gradInput.shape, x.shape)
            let loss = { projectedSum(conv.forward(x, saveForBackward: false), projection) }
            checkFiniteDifferences(label: "conv input k\(c.k) s\(c.s)", count: x.count,
                                   get: { x.data[$0] }, set: { x.data[$0] = $1 }, loss: loss,
                                   analytic: { gradInput.data[$0] })
            checkFiniteDifferences(label: "conv weight k\(c.k) s\(c.s)", count: conv.weight.count,
                                   get: { conv.weight.value[$0] }, set: { conv.weight.value[$0] = $1 }, loss: loss,
                                   analytic: { conv.weight.grad[$0] })
            if let b = conv.bias {
                checkFiniteDifferences(label: "conv bias", count: b.count, get: { b.value[$0] },
                                       set: { b.value[$0] = $1 }, loss: loss, analytic: { b.grad[$0] })
            }
        }
    }

    func testConvTransposeMatchesDefinitionAndGradients() {
        var random = TestRandom(8)
        var rng = SeededGenerator(seed: 9)
        let up = ConvTranspose3d(name: "u", inChannels: 4, outChannels: 3, kernel: 4, stride: 2, padding: 1, rng: &rng)
        var x = random.tensor([2, 4, 3, 2, 4])
        let y = up.forward(x)
        XCTAssertEqual(y.shape, [2, 3, 6, 4, 8])
        assertClose(y, referenceConvTranspose(x, weight: up.weight.value, bias: up.bias.value, outChannels: 3,
                                              kernel: 4, stride: 2, padding: 1), "conv transpose")
        let projection = random.tensor(y.shape)
        let gradInput = up.backward(projection)!
        let loss = { projectedSum(up.forward(x, saveForBackward: false), projection) }
        checkFiniteDifferences(label: "convT input", count: x.count, get: { x.data[$0] },
                               set: { x.data[$0] = $1 }, loss: loss, analytic: { gradInput.data[$0] })
        checkFiniteDifferences(label: "convT weight", count: up.weight.count, get: { up.weight.value[$0] },
                               set: { up.weight.value[$0] = $1 }, loss: loss, analytic: { up.weight.grad[$0] })
        checkFiniteDifferences(label: "convT bias", count: up.bias.count, get: { up.bias.value[$0] },
                               set: { up.bias.value[$0] = $1 }, loss: loss, analytic: { up.bias.grad[$0] })
    }

    func testKaimingInitialisationStatistics() {
        var rng = SeededGenerator(seed: 42)
        let conv = Conv3d(name: "c", inChannels: 16, outChannels: 32, kernel: 3, bias: false, rng: &rng)
        let values = conv.weight.value.map(Double.init)
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)).squareRoot()
        let expected = (2.0 / Double(16 * 27)).squareRoot()
        XCTAssertEqual(std, expected, accuracy: expected * 0.03)
        XCTAssertEqual(mean, 0, accuracy: expected * 0.03)
        var again = SeededGenerator(seed: 42)
        let same = Conv3d(name: "c", inChannels: 16, outChannels: 32, kernel: 3, bias: false, rng: &again)
        XCTAssertEqual(same.weight.value, conv.weight.value, "same seed, same weights")
    }
}

final class ThreadingTests: XCTestCase {
    /// Runs one conv / transposed-conv forward+backward and returns (output, input grad, weight grad).
    func run(threads: Int, budget: Int) -> [[Float]] {
        var options = EngineOptions(threads: threads)
        options.slabFloats = budget
        let engine = Engine(options)
        var random = TestRandom(41)
        var rng = SeededGenerator(seed: 42)
        var results: [[Float]] = []
        for stride in [1, 2] {
            let conv = Conv3d(name: "c", inChannels: 9, outChannels: 5, kernel: 3, stride: stride, padding: 1,
                              bias: true, rng: &rng, engine: engine)
            let x = random.tensor([2, 9, 6, 8, 7])
            let y = conv.forward(x)
            let g = conv.backward(y)!
            results += [y.data, g.data, conv.weight.grad, conv.bias!.grad]
        }
        let up = ConvTranspose3d(name: "u", inChannels: 6, outChannels: 4, kernel: 4, stride: 2, padding: 1, rng: &rng,
                                 engine: engine)
        let u = random.tensor([2, 6, 3, 4, 3])
        let v = up.forward(u)
        let gu = up.backward(v)!
        results += [v.data, gu.data, up.weight.grad]
        return results
    }

    func testTwoThreadsMatchOneThreadAndAreDeterministic() {
        let reference = run(threads: 1, budget: 1 << 18)
        for budget in [500, 1 << 18] {
            let first = run(threads: 2, budget: budget)
            let second = run(threads: 2, budget: budget)
            XCTAssertEqual(first, second, "same thread count, same bits (budget \(budget))")
            for (a, b) in zip(first, reference) {
                XCTAssertEqual(a.count, b.count)
                let worst = zip(a, b).map { abs($0 - $1) / (1 + abs($1)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4, "2 threads vs 1 thread (budget \(budget))")
            }
        }
    }
}

final class ImplicitGEMMTests: XCTestCase {
    /// Rows of >= 16 voxels and >= 8 input channels take the implicit-GEMM path (no im2col); it must agree with
    /// the direct convolution, for several slab sizes and 1 or 2 threads, and its gradients with differences.
    func testImplicitPathMatchesDirectConvolution() {
        var random = TestRandom(51)
        var rng = SeededGenerator(seed: 52)
        for (budget, threads) in [(1, 1), (60, 2), (1 << 18, 1), (1 << 18, 2)] {
            var options = EngineOptions(threads: threads, convBackend: .gemm)  // oneDNN would take this layer
            options.slabFloats = budget
            let conv = Conv3d(name: "c", inChannels: 8, outChannels: 9, kernel: 3, stride: 1, padding: 1, bias: true, rng: &rng,
                              engine: Engine(options))
            var x = random.tensor([2, 8, 3, 5, 17])
            XCTAssertTrue(conv.geometry(x).usesImplicitGEMM(options))
            let y = conv.forward(x)
            assertClose(y, referenceConv(x, weight: conv.weight.value, bias: conv.bias!.value, outChannels: 9, kernel: 3,
                                         stride: 1, padding: 1), "implicit budget \(budget) threads \(threads)")
            let projection = random.tensor(y.shape)
            let gradInput = conv.backward(projection)!
            checkFiniteDifferences(label: "implicit conv input", count: x.count, samples: 16, get: { x.data[$0] },
                                   set: { x.data[$0] = $1 },
                                   loss: { projectedSum(conv.forward(x, saveForBackward: false), projection) },
                                   analytic: { gradInput.data[$0] })
        }
    }
}

/// The weight gradient from its definition, in Double: dW[co, ci, kz, ky, kx] = sum over samples and output voxels
/// of gradOutput[n, co, z, y, x] * input[n, ci, s z + kz - p, s y + ky - p, s x + kx - p] (zero outside).
func referenceWeightGradient(input x: Tensor, gradOutput gy: Tensor, kernel k: Int, stride s: Int = 1,
                             padding p: Int) -> [Double] {
    let n = x.shape[0], ci = x.shape[1], d = x.shape[2], h = x.shape[3], w = x.shape[4]
    let co = gy.shape[1], od = gy.shape[2], oh = gy.shape[3], ow = gy.shape[4]
    var dw = [Double](repeating: 0, count: co * ci * k * k * k)
    for b in 0..<n { for o in 0..<co { for z in 0..<od { for y in 0..<oh { for xx in 0..<ow {
        let g = Double(gy.data[(((b * co + o) * od + z) * oh + y) * ow + xx])
        for c in 0..<ci { for kz in 0..<k { for ky in 0..<k { for kx in 0..<k {
            let iz = s * z + kz - p, iy = s * y + ky - p, ix = s * xx + kx - p
            if iz < 0 || iz >= d || iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
            dw[(((o * ci + c) * k + kz) * k + ky) * k + kx] += g * Double(x.data[(((b * ci + c) * d + iz) * h + iy) * w + ix])
        }}}}
    }}}}}
    return dw
}

final class ImplicitWeightGradientTests: XCTestCase {
    /// Layers with >= 8 input channels and output rows of >= 16 voxels take the implicit weight gradient (no
    /// im2col): on both backends (oneDNN's sgemm or OpenBLAS's), stride 1 (kernels 3 and 5) and stride 2 (k3 p1,
    /// the transposed conv's k4 p1, k3 p0), 1 to 3 threads (runs of slices per worker), it must equal the
    /// definition, accumulate into the gradient, and give the same bits when repeated.
    func testImplicitWeightGradientMatchesDefinition() {
        var random = TestRandom(61)
        let choices: [ConvBackendChoice] = ConvBackend.isDNNLAvailable ? [.gemm, .dnnl] : [.gemm]
        struct Case { let kernel, stride, padding, threads: Int; let size: [Int] }
        let cases = [Case(kernel: 3, stride: 1, padding: 1, threads: 1, size: [4, 5, 17]),
                     Case(kernel: 3, stride: 1, padding: 1, threads: 2, size: [4, 5, 17]),
                     Case(kernel: 3, stride: 1, padding: 1, threads: 3, size: [4, 5, 17]),
                     Case(kernel: 5, stride: 1, padding: 2, threads: 2, size: [4, 5, 17]),
                     Case(kernel: 3, stride: 2, padding: 1, threads: 1, size: [5, 6, 33]),
                     Case(kernel: 4, stride: 2, padding: 1, threads: 2, size: [5, 6, 33]),
                     Case(kernel: 3, stride: 2, padding: 0, threads: 3, size: [6, 5, 33])]
        for backend in choices {
            for c in cases {
                let options = EngineOptions(threads: c.threads, convBackend: backend)
                var rng = SeededGenerator(seed: 62)
                let conv = Conv3d(name: "c", inChannels: 8, outChannels: 5, kernel: c.kernel, stride: c.stride,
                                  padding: c.padding, bias: false, rng: &rng, engine: Engine(options))
                let x = random.tensor([2, 8] + c.size)
                XCTAssertTrue(conv.geometry(x).usesImplicitWeightGradient(options))
                let label = "\(backend) k\(c.kernel) s\(c.stride) p\(c.padding) threads \(c.threads)"
                let y = conv.forward(x)
                let gy = random.tensor(y.shape)
                _ = conv.backward(gy, inputGradient: false)
                let first = conv.weight.grad
                let reference = referenceWeightGradient(input: x, gradOutput: gy, kernel: c.kernel, stride: c.stride,
                                                        padding: c.padding)
                var worst = 0.0
                for i in 0..<reference.count { worst = max(worst, abs(Double(first[i]) - reference[i]) / (1 + abs(reference[i]))) }
                XCTAssertLessThan(worst, 1e-4, "\(label): max deviation \(worst)")
                _ = conv.forward(x)
                _ = conv.backward(gy, inputGradient: true)
                worst = 0
                for i in 0..<reference.count {
                    worst = max(worst, abs(Double(conv.weight.grad[i]) - 2 * reference[i]) / (1 + abs(2 * reference[i])))
                }
                XCTAssertLessThan(worst, 1e-4, "\(label): a second backward must add to the gradient")
                conv.weight.zeroGrad()
                _ = conv.forward(x)
                _ = conv.backward(gy, inputGradient: false)
                XCTAssertEqual(conv.weight.grad, first, "\(label): not reproducible")
            }
        }
        // Rows under 16 voxels, and input copies over the 64 MiB scratch cap (32 channels of 256^2 slices), stay on im2col.
        let options = EngineOptions()
        func geometry(_ channels: Int, _ size: Int) -> ConvGeometry {
            ConvGeometry(inChannels: channels, outChannels: 32, kernel: 3, stride: 1, padding: 1, inD: 4, inH: size,
                         inW: size)
        }
        XCTAssertTrue(geometry(32, 224).usesImplicitWeightGradient(options))
        XCTAssertFalse(geometry(32, 256).usesImplicitWeightGradient(options))
        XCTAssertFalse(geometry(256, 8).usesImplicitWeightGradient(options))
        XCTAssertFalse(geometry(4, 64).usesImplicitWeightGradient(options))
    }
}

final class ConvLedgerTests: XCTestCase {
    /// Engine.convLedger (options.convTiming, the benchmark's figure for a step's conv layers): calls and FLOPs by
    /// direction from the layer shapes by hand, and the same bits with the clock on as off.
    func testConvLedgerCountsCallsAndFlopsWithoutChangingResults() {
        var options = EngineOptions(threads: 1)
        options.convTiming = true
        let timedEngine = Engine(options), plainEngine = Engine(EngineOptions(threads: 1))
        XCTAssertNil(plainEngine.convLedger)
        guard let ledger = timedEngine.convLedger else { return XCTFail("no ledger with convTiming") }
        var random = TestRandom(5)
        let x = random.tensor([2, 2, 5, 6, 7])
        let small = random.tensor([1, 4, 3, 3, 3])
        func layers(_ engine: Engine) -> (Conv3d, ConvTranspose3d) {
            var rng = SeededGenerator(seed: 9)
            return (Conv3d(name: "c", inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 1, bias: false,
                           rng: &rng, engine: engine),
                    ConvTranspose3d(name: "t", inChannels: 4, outChannels: 2, kernel: 4, stride: 2, padding: 1,
                                    rng: &rng, engine: engine))
        }
        var results: [[Float]] = []
        for engine in [plainEngine, timedEngine] {
            let (conv, up) = layers(engine)
            let y = conv.forward(x, saveForBackward: true)
            let gx = conv.backward(y, inputGradient: true)
            let u = up.forward(small, saveForBackward: true)
            _ = up.backward(u, inputGradient: false)
            results.append(y.data + (gx?.data ?? []) + conv.weight.grad + u.data + up.weight.grad)
        }
        XCTAssertEqual(results[0], results[1], "timing changed the results")
        // Conv3d 2->3, k3, 5x6x7 "same", batch 2: 2 * 3 * 2 * 27 * 210 multiply-adds per pass.
        // ConvTranspose3d 4->2, k4 s2 p1 on 3^3 (its adjoint: a 2->4 conv from 6^3 to 3^3), batch 1:
        // 1 * 4 * 2 * 64 * 27 multiply-adds per pass.
        let conv = 2.0 * 3 * 2 * 27 * 210, transposed = 1.0 * 4 * 2 * 64 * 27
        let forward = ledger.totals(.forward), backward = ledger.totals(.backward)
        XCTAssertEqual(forward.calls, 2)
        XCTAssertEqual(forward.flops, 2 * (conv + transposed))
        XCTAssertEqual(backward.calls, 2)
        XCTAssertEqual(backward.flops, 2 * (2 * conv + transposed), "weight and input gradient of the conv, weight only of the transposed")
        XCTAssertGreaterThan(forward.seconds, 0)
        XCTAssertEqual(ledger.totals().flops, forward.flops + backward.flops)
        XCTAssertEqual(ledger.byLayer.count, 4)
        ledger.reset()
        XCTAssertEqual(ledger.totals().calls, 0)
    }
}

import XCTest
@testable import IENet

/// The oneDNN backend against the GEMM path (itself checked against direct convolution and finite differences
/// in ConvTests). Skipped when the package was built without libdnnl-dev.
final class DNNLConvTests: XCTestCase {
    struct Case { let cin, cout, k, s, p: Int; let size: [Int]; let batch: Int }
    let cases = [
        Case(cin: 3, cout: 4, k: 3, s: 1, p: 1, size: [5, 6, 7], batch: 2),
        Case(cin: 2, cout: 5, k: 3, s: 2, p: 1, size: [6, 5, 8], batch: 2),   // odd extents: asymmetric right padding
        Case(cin: 4, cout: 3, k: 1, s: 1, p: 0, size: [3, 4, 5], batch: 1),
        Case(cin: 2, cout: 2, k: 3, s: 1, p: 0, size: [5, 5, 4], batch: 2),
        Case(cin: 16, cout: 32, k: 3, s: 1, p: 1, size: [8, 8, 8], batch: 2), // wide enough for blocked kernels
        Case(cin: 32, cout: 16, k: 3, s: 2, p: 1, size: [9, 8, 7], batch: 1),
        Case(cin: 1, cout: 8, k: 3, s: 1, p: 1, size: [6, 6, 6], batch: 2),   // one input channel, as the first UNet layer
    ]

    override func setUpWithError() throws {
        try XCTSkipUnless(ConvBackend.isDNNLAvailable, "built without oneDNN (libdnnl-dev not installed)")
    }

    /// One backend for every layer; under oneDNN every case below must really run on oneDNN (minimum channels 1).
    func options(_ backend: ConvBackendChoice, threads: Int = 1, blocked: Bool = true,
                 oneDNNGEMM: Bool = false) -> EngineOptions {
        var options = EngineOptions(threads: threads, convBackend: backend)
        options.dnnlGEMMImplementations = oneDNNGEMM
        options.dnnlMinimumInputChannels = 1
        options.dnnlBlockedActivations = blocked
        return options
    }

    /// Relative error ||a - b|| / ||b|| with a non-vacuity check on the reference.
    func assertRelativeError(_ a: [Float], _ b: [Float], _ label: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, label, file: file, line: line)
        var diff2 = 0.0, norm2 = 0.0
        for (x, y) in zip(a, b) { diff2 += Double(x - y) * Double(x - y); norm2 += Double(y) * Double(y) }
        XCTAssertGreaterThan(norm2, 1e-6, "\(label): reference is zero, comparison would be vacuous", file: file, line: line)
        let relative = (diff2 / max(norm2, 1e-30)).squareRoot()
        XCTAssertLessThan(relative, 1e-4, "\(label): relative error \(relative)", file: file, line: line)
    }

    /// Forward output, input gradient, weight gradient and bias gradient (accumulated over two backward calls, as
    /// gradients are accumulated in training) of one Conv3d with the given backend.
    func convResults(_ c: Case, _ options: EngineOptions) -> [[Float]] {
        var rng = SeededGenerator(seed: 31)
        var random = TestRandom(32)
        let conv = Conv3d(name: "c", inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.s,
                          padding: c.p, bias: true, rng: &rng, engine: Engine(options))
        let x = random.tensor([c.batch, c.cin] + c.size)
        if options.convBackend == .dnnl {
            // Otherwise the layer would silently fall back to the GEMM path and the comparison would prove nothing.
            let g = conv.geometry(x)
            let fits = c.batch * max(g.inChannels * g.inSpatial, g.outChannels * g.outSpatial) * 4
                <= options.dnnlMaximumCopyBytes || !options.dnnlBlockedActivations
            let plan = conv.plan(for: x)
            XCTAssertEqual(plan.algorithm.name == "dnnl", fits, "oneDNN choice for \(c)")
            print("oneDNN \(c.cin)->\(c.cout) k\(c.k) s\(c.s): "
                  + plan.algorithm.implementations(g, batch: c.batch).joined(separator: ", "))
        }
        let y = conv.forward(x)
        let projection = random.tensor(y.shape)
        let gradInput = conv.backward(projection)!
        _ = conv.forward(x)
        _ = conv.backward(projection, inputGradient: false)
        return [y.data, gradInput.data, conv.weight.grad, conv.bias!.grad]
    }

    func testConv3dMatchesGEMMPath() {
        // oneDNNGEMM: also oneDNN's own gemm-based implementations where it has no direct kernel (IENET_DNNL_GEMM=1).
        for (threads, blocked, oneDNNGEMM) in [(1, true, false), (2, true, false), (1, false, false), (1, true, true)] {
            for c in cases {
                let label = "\(c.cin)->\(c.cout) k\(c.k) s\(c.s) p\(c.p) \(c.size) batch \(c.batch), \(threads) thread(s), "
                    + (blocked ? "blocked" : "plain") + (oneDNNGEMM ? ", oneDNN's gemm" : "")
                let oracle = convResults(c, options(.gemm, threads: threads))
                let tested = convResults(c, options(.dnnl, threads: threads, blocked: blocked, oneDNNGEMM: oneDNNGEMM))
                for (name, (a, b)) in zip(["forward", "input gradient", "weight gradient", "bias gradient"],
                                          zip(tested, oracle)) {
                    assertRelativeError(a, b, "\(name) \(label)")
                }
            }
        }
    }

    func testConvTranspose3dMatchesGEMMPath() {
        func results(_ backend: ConvBackendChoice, cin: Int, cout: Int, size: [Int]) -> [[Float]] {
            var rng = SeededGenerator(seed: 41)
            var random = TestRandom(42)
            let up = ConvTranspose3d(name: "u", inChannels: cin, outChannels: cout, kernel: 4, stride: 2, padding: 1,
                                     rng: &rng, engine: Engine(options(backend)))
            let x = random.tensor([2, cin] + size)
            if backend == .dnnl {
                XCTAssertEqual(up.plan(for: x).algorithm.name, "dnnl", "oneDNN refused convT \(cin)->\(cout)")
            }
            let y = up.forward(x)
            let gradInput = up.backward(random.tensor(y.shape))!
            return [y.data, gradInput.data, up.weight.grad, up.bias.grad]
        }
        for (cin, cout, size) in [(4, 3, [3, 2, 4]), (32, 16, [4, 4, 4])] {
            let oracle = results(.gemm, cin: cin, cout: cout, size: size)
            let tested = results(.dnnl, cin: cin, cout: cout, size: size)
            for (name, (a, b)) in zip(["forward", "input gradient", "weight gradient", "bias gradient"], zip(tested, oracle)) {
                assertRelativeError(a, b, "convT \(cin)->\(cout) \(name)")
            }
        }
    }

    /// Finite differences directly on the oneDNN path (the GEMM comparison above shares no code with it).
    func testGradientsByFiniteDifferencesWithDNNL() {
        var random = TestRandom(61)
        var rng = SeededGenerator(seed: 62)
        let conv = Conv3d(name: "c", inChannels: 3, outChannels: 4, kernel: 3, stride: 2, padding: 1, bias: true, rng: &rng,
                          engine: Engine(options(.dnnl)))
        var x = random.tensor([2, 3, 5, 6, 4])
        let y = conv.forward(x)
        let projection = random.tensor(y.shape)
        let gradInput = conv.backward(projection)!
        let loss = { projectedSum(conv.forward(x, saveForBackward: false), projection) }
        checkFiniteDifferences(label: "dnnl conv input", count: x.count, get: { x.data[$0] }, set: { x.data[$0] = $1 },
                               loss: loss, analytic: { gradInput.data[$0] })
        checkFiniteDifferences(label: "dnnl conv weight", count: conv.weight.count, get: { conv.weight.value[$0] },
                               set: { conv.weight.value[$0] = $1 }, loss: loss, analytic: { conv.weight.grad[$0] })
    }

    /// Above the copy limit a convolution runs on the GEMM path (bounded memory) and still gives the same result.
    func testLargeActivationsFallBackToGEMM() throws {
        let c = Case(cin: 8, cout: 8, k: 3, s: 1, p: 1, size: [6, 6, 6], batch: 2)
        let geometry = ConvGeometry(inChannels: 8, outChannels: 8, kernel: 3, stride: 1, padding: 1, inD: 6, inH: 6, inW: 6)
        var small = options(.dnnl)
        XCTAssertEqual(Engine(small).plan(geometry, batch: 2, adjoint: false).algorithm.name, "dnnl")
        small.dnnlMaximumCopyBytes = 2 * 8 * 216 * 4 - 1  // one byte less than the activations
        XCTAssertEqual(Engine(small).plan(geometry, batch: 2, adjoint: false).algorithm.name, "gemm")
        let oracle = convResults(c, options(.gemm))
        let fallback = convResults(c, small)
        XCTAssertEqual(fallback, oracle, "the fallback is the GEMM path itself: same bits")
    }

    /// Same thread count, same bits: two runs of forward and backward must agree exactly.
    func testDeterministicForFixedThreadCount() {
        for threads in [1, 2] {
            let c = Case(cin: 16, cout: 16, k: 3, s: 1, p: 1, size: [12, 12, 12], batch: 2)
            let first = convResults(c, options(.dnnl, threads: threads))
            let second = convResults(c, options(.dnnl, threads: threads))  // a new model: primitives built again
            XCTAssertEqual(first, second, "oneDNN results differ between runs with \(threads) thread(s)")
        }
    }

    /// A backward converts the operand its two primitives share once (diff_dst of a convolution's two gradients,
    /// src of a transposed convolution's weight gradient and input gradient): the bits must equal those of the two
    /// primitives run one by one, each converting for itself, in fp32 and (where the CPU has it) bf16.
    func testSharedConversionGivesTheSeparateBits() throws {
        var precisions: [Precision] = [.fp32]
        if ConvBackend.dnnlBF16Obstacle() == nil { precisions.append(.bf16) }
        for precision in precisions {
            for (cin, cout, k, s, p, size) in [(16, 32, 3, 1, 1, 8), (32, 16, 4, 2, 1, 8), (32, 32, 3, 2, 1, 9)] {
                var engineOptions = options(.dnnl)
                engineOptions.precision = precision
                let engine = Engine(engineOptions)
                guard let algorithm = engine.algorithms.first(where: { $0.name == "dnnl" }) else {
                    return XCTFail("no oneDNN backend in the engine")
                }
                let g = ConvGeometry(inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: p,
                                     inD: size, inH: size - 1, inW: size + 1)
                let batch = 2
                var random = TestRandom(51)
                let input = random.tensor([batch * cin * g.inSpatial]).data
                let gradOutput = random.tensor([batch * cout * g.outSpatial]).data
                let weight = random.tensor([cout * cin * k * k * k]).data
                let label = "\(cin)->\(cout) k\(k) s\(s), \(precision)"
                /// Weight gradient and the other gradient of g (conv: input gradient, sharing: diff_dst) or of its
                /// adjoint (convT: the source gradient, sharing src), fused and one by one.
                func compare(_ kind: String, otherCount: Int, fused: (inout [Float], inout [Float]) -> Void,
                             alone: (inout [Float], inout [Float]) -> Void) {
                    var (fusedW, fusedOther) = ([Float](repeating: 0, count: weight.count), [Float](repeating: 0, count: otherCount))
                    var (aloneW, aloneOther) = (fusedW, fusedOther)
                    fused(&fusedW, &fusedOther)
                    alone(&aloneW, &aloneOther)
                    XCTAssertEqual(fusedW, aloneW, "\(kind) weight gradient \(label)")
                    XCTAssertEqual(fusedOther, aloneOther, "\(kind) other gradient \(label)")
                    XCTAssertTrue(fusedW.contains { $0 != 0 } && fusedOther.contains { $0 != 0 }, "vacuous \(kind) \(label)")
                }
                compare("conv", otherCount: input.count, fused: { w, x in
                    algorithm.backward(g, batch: batch, input: input, weight: weight, gradOutput: gradOutput,
                                       gradWeight: &w, gradInput: &x)
                }, alone: { w, x in
                    algorithm.accumulateWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: &w)
                    algorithm.backwardData(g, batch: batch, gradOutput: gradOutput, weight: weight, gradInput: &x)
                })
                // The transposed convolution (g's adjoint): its source has g's output shape, its target g's input's.
                compare("convT", otherCount: gradOutput.count, fused: { w, s in
                    algorithm.adjointBackward(g, batch: batch, source: gradOutput, weight: weight, gradTarget: input,
                                              gradWeight: &w, gradSource: &s)
                }, alone: { w, s in
                    algorithm.accumulateWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: &w)
                    algorithm.forward(g, batch: batch, input: input, weight: weight, output: &s)
                })
            }
        }
    }
}

/// EngineOptions.fromEnvironment (SPEC 12); needs no oneDNN.
final class EngineOptionsTests: XCTestCase {
    func testEnvironmentChoosesBackend() {
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: nil, dnnlBuilt: true), .auto)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "", dnnlBuilt: false), .auto)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "gemm", dnnlBuilt: true), .gemm)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "GEMM", dnnlBuilt: true), .gemm)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "direct", dnnlBuilt: false), .direct)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "dnnl", dnnlBuilt: true), .dnnl)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "oneDNN", dnnlBuilt: true), .dnnl)
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "dnnl", dnnlBuilt: false), .gemm, "cannot use what is not built")
        XCTAssertEqual(EngineOptions.chosen(byEnvironment: "cudnn", dnnlBuilt: true), .auto, "unknown value: the default")
    }

    func testThreadsFromCommandLineThenEnvironmentThenCores() {
        XCTAssertEqual(EngineOptions.fromEnvironment(["OMP_NUM_THREADS": "3"], threads: 5).threads, 5)
        XCTAssertEqual(EngineOptions.fromEnvironment(["OMP_NUM_THREADS": "3"]).threads, 3)
        XCTAssertEqual(EngineOptions.fromEnvironment([:]).threads, ProcessInfo.processInfo.activeProcessorCount)
        XCTAssertEqual(EngineOptions.fromEnvironment(["OMP_NUM_THREADS": "zero"]).threads,
                       ProcessInfo.processInfo.activeProcessorCount, "not a number: the default")
    }

    func testTuningValuesAndTheDirectSwitch() {
        let tuned = EngineOptions.fromEnvironment([
            "IENET_SLAB_FLOATS": "1000", "IENET_COLUMNS_PER_CHANNEL": "0", "IENET_IMPLICIT_GEMM": "0",
            "IENET_DIRECT_PREFETCH": "0", "IENET_DIRECT_STREAM_FLOATS": "7", "IENET_DNNL_LAYOUT": "plain",
            "IENET_DNNL_MIN_CHANNELS": "2", "IENET_DNNL_MAX_COPY_MB": "3", "IENET_DATA_PREFETCH": "0"], threads: 1)
        var expected = EngineOptions(threads: 1)
        (expected.slabFloats, expected.columnsPerOutputChannel, expected.implicitGEMM) = (1000, 0, false)
        (expected.directPrefetch, expected.directStreamFloats, expected.dnnlBlockedActivations) = (false, 7, false)
        (expected.dnnlMinimumInputChannels, expected.dnnlMaximumCopyBytes, expected.prefetchBatches) = (2, 3 << 20, false)
        XCTAssertEqual(tuned, expected)
        XCTAssertEqual(EngineOptions.fromEnvironment([:], threads: 1), EngineOptions(threads: 1), "defaults")
        let noDirect = EngineOptions.fromEnvironment(["IENET_DIRECT_CONV": "0"], threads: 1)
        XCTAssertFalse(noDirect.usesDirectKernel)
        XCTAssertEqual(noDirect.convBackend, ConvBackend.isDNNLAvailable ? .dnnl : .gemm)
        XCTAssertEqual(EngineOptions.fromEnvironment(["IENET_DIRECT_CONV": "0", "IENET_CONV_BACKEND": "direct"]).convBackend, .gemm)
        XCTAssertEqual(EngineOptions(convBackend: .gemm).library, .gemm)
        XCTAssertFalse(EngineOptions(convBackend: .gemm).usesDirectKernel)
    }
}

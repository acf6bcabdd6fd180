import XCTest
@testable import IENet

/// The sub-pixel split on oneDNN's direct kernels (DNNLSubPixelPlan: strided input gradients and transposed-conv
/// forwards as s^3 stride-1 convolutions written into strided views of the target) against the definition in Double
/// and finite differences. Skipped when the package was built without libdnnl-dev.
final class DNNLSubPixelTests: XCTestCase {
    struct Case { let cin, cout, k, s, p: Int; let size: [Int] }
    // k3 s2 p1 (the UNet's downsampling), k4 s2 p1 (its upsampling's adjoint), k3 s2 p0 (a tap past the source),
    // k1 s2 p0 (residues no tap reaches: no plan, the GEMM path), k3 s3 p1 (stride 3), odd extents (no split).
    // Where oneDNN has no direct kernel for a class (k3 s2 p0 gives a 1-tap class with right padding 1) the GEMM
    // path's split runs instead; the UNet's two geometries must take the oneDNN split.
    let cases = [Case(cin: 8, cout: 16, k: 3, s: 2, p: 1, size: [6, 4, 8]), Case(cin: 16, cout: 8, k: 4, s: 2, p: 1, size: [4, 6, 2]),
                 Case(cin: 8, cout: 8, k: 3, s: 2, p: 0, size: [8, 6, 4]), Case(cin: 8, cout: 16, k: 1, s: 2, p: 0, size: [4, 2, 6]),
                 Case(cin: 16, cout: 8, k: 3, s: 3, p: 1, size: [6, 3, 9]), Case(cin: 8, cout: 8, k: 3, s: 2, p: 1, size: [5, 4, 7])]

    override func setUpWithError() throws {
        try XCTSkipUnless(ConvBackend.isDNNLAvailable, "built without oneDNN (libdnnl-dev not installed)")
    }

    func options(threads: Int, subPixel: Bool = true) -> EngineOptions {
        var options = EngineOptions(threads: threads, convBackend: .dnnl)
        options.dnnlMinimumInputChannels = 1
        options.dnnlSubPixel = subPixel
        return options
    }

    func testStridedInputGradientMatchesDefinition() {
        var random = TestRandom(71)
        var rng = SeededGenerator(seed: 72)
        for c in cases {
            for threads in [1, 2] {
                let conv = Conv3d(name: "c", inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.s, padding: c.p,
                                  bias: false, rng: &rng, engine: Engine(options(threads: threads)))
                let x = random.tensor([2, c.cin] + c.size)
                let g = conv.geometry(x)
                let plan = conv.plan(for: x)
                XCTAssertEqual(plan.algorithm.name, "dnnl")
                let backwardData = plan.algorithm.implementations(g, batch: 2)[1]
                // Where oneDNN has a direct strided backward-data kernel (AVX-512) the split is not needed.
                let unetGeometry = c.s == 2 && c.p == 1 && (c.k == 3 || c.k == 4) && SubPixelAdjoint(g) != nil
                let label = "k\(c.k) s\(c.s) p\(c.p) \(c.size) threads \(threads) [\(backwardData)]"
                if unetGeometry && backwardData.hasPrefix("gemm") { XCTFail("\(label): the split should have run") }
                if SubPixelAdjoint(g) == nil { XCTAssertFalse(backwardData.hasPrefix("sub-pixel"), label) }
                let y = conv.forward(x)
                let projection = random.tensor(y.shape)
                let gradInput = conv.backward(projection)!
                let definition = referenceConvTranspose(projection, weight: conv.weight.value,
                                                        bias: [Float](repeating: 0, count: c.cin), outChannels: c.cin,
                                                        kernel: c.k, stride: c.s, padding: c.p, outputSize: c.size)
                assertClose(gradInput, definition, tolerance: 1e-5, label)
            }
        }
    }

    func testTransposedConvForwardMatchesDefinitionAndDifferences() {
        var random = TestRandom(73)
        var rng = SeededGenerator(seed: 74)
        for threads in [1, 2] {
            let up = ConvTranspose3d(name: "u", inChannels: 16, outChannels: 8, kernel: 4, stride: 2, padding: 1, rng: &rng,
                                     engine: Engine(options(threads: threads)))
            var x = random.tensor([2, 16, 3, 4, 2])
            let y = up.forward(x)
            assertClose(y, referenceConvTranspose(x, weight: up.weight.value, bias: up.bias.value, outChannels: 8,
                                                  kernel: 4, stride: 2, padding: 1), tolerance: 1e-5, "threads \(threads)")
            // Switched off, the GEMM path's split gives the same values (not the same bits: other summation order).
            let gemmSplit = ConvTranspose3d(name: "u", inChannels: 16, outChannels: 8, kernel: 4, stride: 2, padding: 1,
                                            rng: &rng, engine: Engine(options(threads: threads, subPixel: false)))
            gemmSplit.weight.value = up.weight.value
            gemmSplit.bias.value = up.bias.value
            assertClose(y, gemmSplit.forward(x), tolerance: 1e-5, "IENET_DNNL_SUB_PIXEL=0, threads \(threads)")
            let projection = random.tensor(y.shape)
            let gradInput = up.backward(projection)!
            checkFiniteDifferences(label: "oneDNN sub-pixel convT input", count: x.count, get: { x.data[$0] },
                                   set: { x.data[$0] = $1 },
                                   loss: { projectedSum(up.forward(x, saveForBackward: false), projection) },
                                   analytic: { gradInput.data[$0] })
        }
    }

    /// The same weights, input and threads give the same bits on every call (the plans are cached and reused).
    func testRepeatedCallsGiveTheSameBits() {
        var random = TestRandom(75)
        var rng = SeededGenerator(seed: 76)
        let up = ConvTranspose3d(name: "u", inChannels: 16, outChannels: 8, kernel: 4, stride: 2, padding: 1, rng: &rng,
                                 engine: Engine(options(threads: 2)))
        let x = random.tensor([1, 16, 4, 4, 4])
        let first = up.forward(x, saveForBackward: false)
        XCTAssertEqual(up.forward(x, saveForBackward: false).data, first.data)
    }
}

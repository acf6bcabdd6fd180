import XCTest
@testable import IENet

/// SubPixelAdjoint (strided input gradients and transposed-conv forwards split by output residue) against the
/// definition, the col2im formulation it replaces, and finite differences.
final class SubPixelAdjointTests: XCTestCase {
    struct Case { let cin, cout, k, s, p: Int; let size: [Int] }
    // k3 s2 p1 (the UNet's downsampling), k4 s2 p1 (its upsampling's adjoint), k3 s2 p0 (a tap past the source),
    // k1 s2 p0 (residues no tap reaches), k3 s3 p1 (stride 3).
    let cases = [Case(cin: 3, cout: 5, k: 3, s: 2, p: 1, size: [6, 4, 8]), Case(cin: 4, cout: 3, k: 4, s: 2, p: 1, size: [4, 6, 2]),
                 Case(cin: 2, cout: 3, k: 3, s: 2, p: 0, size: [8, 6, 4]), Case(cin: 3, cout: 2, k: 1, s: 2, p: 0, size: [4, 2, 6]),
                 Case(cin: 2, cout: 4, k: 3, s: 3, p: 1, size: [6, 3, 9])]

    func testStridedInputGradientMatchesDefinitionAndCol2im() {
        var random = TestRandom(61)
        var rng = SeededGenerator(seed: 62)
        for c in cases {
            for (threads, budget) in [(1, 1 << 18), (2, 1 << 18), (2, 40), (1, 1)] {
                var options = EngineOptions(threads: threads, convBackend: .gemm)
                options.slabFloats = budget
                let conv = Conv3d(name: "c", inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.s, padding: c.p,
                                  bias: false, rng: &rng, engine: Engine(options))
                let x = random.tensor([2, c.cin] + c.size)
                XCTAssertNotNil(SubPixelAdjoint(conv.geometry(x)), "k\(c.k) s\(c.s) takes the sub-pixel path")
                let y = conv.forward(x)
                let projection = random.tensor(y.shape)
                let gradInput = conv.backward(projection)!
                let label = "k\(c.k) s\(c.s) p\(c.p) threads \(threads) budget \(budget)"
                // The input gradient is the transposed convolution of the projection onto the input's size.
                let definition = referenceConvTranspose(projection, weight: conv.weight.value,
                                                        bias: [Float](repeating: 0, count: c.cin), outChannels: c.cin,
                                                        kernel: c.k, stride: c.s, padding: c.p, outputSize: c.size)
                assertClose(gradInput, definition, tolerance: 1e-5, label)
                options.subPixelAdjoint = false
                let col2im = Conv3d(name: "c", inChannels: c.cin, outChannels: c.cout, kernel: c.k, stride: c.s,
                                    padding: c.p, bias: false, rng: &rng, engine: Engine(options))
                col2im.weight.value = conv.weight.value
                _ = col2im.forward(x)
                assertClose(gradInput, col2im.backward(projection)!, tolerance: 1e-5, label + " vs col2im")
            }
        }
    }

    func testTransposedConvForwardMatchesDefinitionAndDifferences() {
        var random = TestRandom(63)
        var rng = SeededGenerator(seed: 64)
        for threads in [1, 2] {
            let up = ConvTranspose3d(name: "u", inChannels: 5, outChannels: 3, kernel: 4, stride: 2, padding: 1, rng: &rng,
                                     engine: Engine(EngineOptions(threads: threads, convBackend: .gemm)))
            var x = random.tensor([2, 5, 3, 4, 2])
            let y = up.forward(x)
            assertClose(y, referenceConvTranspose(x, weight: up.weight.value, bias: up.bias.value, outChannels: 3,
                                                  kernel: 4, stride: 2, padding: 1), tolerance: 1e-5, "threads \(threads)")
            let projection = random.tensor(y.shape)
            let gradInput = up.backward(projection)!
            checkFiniteDifferences(label: "sub-pixel convT input", count: x.count, get: { x.data[$0] },
                                   set: { x.data[$0] = $1 },
                                   loss: { projectedSum(up.forward(x, saveForBackward: false), projection) },
                                   analytic: { gradInput.data[$0] })
            checkFiniteDifferences(label: "sub-pixel convT weight", count: up.weight.count, get: { up.weight.value[$0] },
                                   set: { up.weight.value[$0] = $1 },
                                   loss: { projectedSum(up.forward(x, saveForBackward: false), projection) },
                                   analytic: { up.weight.grad[$0] })
        }
    }

    func testOddSizesKeepTheCol2imPath() {
        let g = ConvGeometry(inChannels: 2, outChannels: 3, kernel: 3, stride: 2, padding: 1, inD: 6, inH: 5, inW: 8)
        XCTAssertNil(SubPixelAdjoint(g))
        XCTAssertNil(SubPixelAdjoint(ConvGeometry(inChannels: 2, outChannels: 3, kernel: 3, stride: 1, padding: 1,
                                                  inD: 4, inH: 4, inW: 4)))
    }
}

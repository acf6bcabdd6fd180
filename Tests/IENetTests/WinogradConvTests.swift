import XCTest
@testable import IENet

/// Winograd F(2x2x2, 3x3x3) (WinogradConv, the eval-mode forward of 3x3x3 stride-1 layers) against the direct
/// convolution in Double, on both backends, with partial tiles at every border; the training forward keeps its bits.
final class WinogradConvTests: XCTestCase {
    func options(_ backend: ConvBackendChoice, threads: Int, winograd: Bool = true) -> EngineOptions {
        var options = EngineOptions(threads: threads, convBackend: backend)
        options.winograd = winograd
        options.winogradMinimumVoxels = 0
        return options
    }

    var backends: [ConvBackendChoice] { ConvBackend.isDNNLAvailable ? [.gemm, .dnnl] : [.gemm] }

    func testEvalForwardMatchesDefinition() {
        var random = TestRandom(81)
        var rng = SeededGenerator(seed: 82)
        // Odd sizes (partial tiles on every axis), more than 8 tiles per row (two SIMD groups, the second partial),
        // a row of tiles shorter than one group, and more rows of tiles (12 of 18 tiles) than one block holds (10).
        let sizes = [[5, 6, 7], [4, 3, 18], [2, 2, 2], [2, 24, 35]]
        for backend in backends {
            for threads in [1, 2] {
                for (index, size) in sizes.enumerated() {
                    let (cin, cout) = index % 2 == 0 ? (16, 24) : (24, 16)
                    let conv = Conv3d(name: "c", inChannels: cin, outChannels: cout, kernel: 3, stride: 1, padding: 1,
                                      bias: true, rng: &rng, engine: Engine(options(backend, threads: threads)))
                    let x = random.tensor([2, cin] + size)
                    let label = "\(backend) \(threads) thread(s) \(cin)->\(cout) \(size)"
                    XCTAssertNotNil(conv.plan(for: x).evalForward, "\(label): Winograd should apply")
                    let definition = referenceConv(x, weight: conv.weight.value, bias: conv.bias!.value,
                                                   outChannels: cout, kernel: 3, stride: 1, padding: 1)
                    assertClose(conv.forward(x, saveForBackward: false), definition, tolerance: 1e-5, label)
                }
            }
        }
    }

    /// The training forward (saving for backward) never runs Winograd: the same bits as with it switched off.
    func testTrainingForwardKeepsItsBits() {
        var random = TestRandom(83)
        for backend in backends {
            var rng = SeededGenerator(seed: 84), rngOff = SeededGenerator(seed: 84)
            let on = Conv3d(name: "c", inChannels: 16, outChannels: 16, kernel: 3, stride: 1, padding: 1, bias: false,
                            rng: &rng, engine: Engine(options(backend, threads: 1)))
            let off = Conv3d(name: "c", inChannels: 16, outChannels: 16, kernel: 3, stride: 1, padding: 1, bias: false,
                             rng: &rngOff, engine: Engine(options(backend, threads: 1, winograd: false)))
            let x = random.tensor([1, 16, 6, 6, 6])
            XCTAssertEqual(on.forward(x).data, off.forward(x).data, "\(backend)")
            XCTAssertNotEqual(on.forward(x, saveForBackward: false).data, off.forward(x, saveForBackward: false).data,
                              "\(backend): the eval forward should have run Winograd (other arithmetic, other bits)")
        }
    }

    /// Below the thresholds (channels, output voxels), and for other geometries, the layer's backend computes.
    func testThresholdsAndGeometries() {
        let winograd = WinogradConv(EngineOptions(threads: 1))
        func g(_ cin: Int, _ cout: Int, k: Int = 3, s: Int = 1, p: Int = 1, _ n: Int) -> ConvGeometry {
            ConvGeometry(inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: p, inD: n, inH: n, inW: n)
        }
        XCTAssertTrue(winograd.handles(g(32, 32, 64)))
        XCTAssertTrue(winograd.handles(g(128, 128, 16)))
        XCTAssertFalse(winograd.handles(g(256, 256, 8)), "8^3 outputs: below 16^3")
        XCTAssertFalse(winograd.handles(g(1, 32, 64)), "one input channel")
        XCTAssertFalse(winograd.handles(g(32, 64, s: 2, 64)), "strided")
        XCTAssertFalse(winograd.handles(g(32, 32, k: 1, p: 0, 64)), "pointwise")
        XCTAssertFalse(winograd.handles(g(32, 32, p: 0, 64)), "valid padding")
        var off = EngineOptions(threads: 1)
        off.winograd = false
        XCTAssertFalse(WinogradConv(off).handles(g(32, 32, 64)), "IENET_WINOGRAD=0")
    }
}

import XCTest
@testable import IENet

final class UNet3DTests: XCTestCase {
    func testStateDictNamesAndShapesFollowInnerEyeModule() {
        let f = 3
        let net = UNet3D(imageChannels: 2, classes: 4, featureChannels: f, seed: 1)
        let state = net.stateDict()
        var shapes: [String: [Int]] = [:]
        for t in state { shapes[t.name] = t.shape }
        // 5 encoder blocks x 2 BasicLayers x (conv weight + 5 BN entries), 4 x (decode 7 + synthesis 13), output 2.
        XCTAssertEqual(state.count, 5 * 2 * 6 + 4 * (7 + 13) + 2)
        XCTAssertEqual(Set(state.map(\.name)).count, state.count, "names are unique")
        XCTAssertEqual(state.first?.name, "_layers.0.block1.conv1.weight")
        XCTAssertEqual(shapes["_layers.0.block1.conv1.weight"], [f, 2, 3, 3, 3])
        XCTAssertEqual(shapes["_layers.0.block1.bn1.running_mean"], [f])
        XCTAssertEqual(shapes["_layers.0.block2.conv1.weight"], [f, f, 3, 3, 3])
        XCTAssertEqual(shapes["_layers.1.block1.conv1.weight"], [2 * f, f, 3, 3, 3])
        XCTAssertEqual(shapes["_layers.4.block2.bn1.weight"], [16 * f])
        XCTAssertEqual(shapes["_layers.4.block2.bn1.num_batches_tracked"], [])
        XCTAssertEqual(shapes["_layers.5.upsample_block.0.weight"], [16 * f, 8 * f, 4, 4, 4], "ConvTranspose3d [in, out, k...]")
        XCTAssertEqual(shapes["_layers.5.upsample_block.0.bias"], [8 * f])
        XCTAssertEqual(shapes["_layers.5.upsample_block.1.running_var"], [8 * f])
        XCTAssertEqual(shapes["_layers.6.conv1.conv1.weight"], [8 * f, 8 * f, 3, 3, 3])
        XCTAssertEqual(shapes["_layers.6.conv2.conv1.weight"], [8 * f, 8 * f, 3, 3, 3])
        XCTAssertEqual(shapes["_layers.6.activation_block.0.weight"], [8 * f])
        XCTAssertEqual(shapes["_layers.6.block2.conv1.weight"], [8 * f, 8 * f, 3, 3, 3])
        XCTAssertEqual(shapes["_layers.12.block2.bn1.bias"], [f])
        XCTAssertEqual(shapes["_layers.11.upsample_block.0.weight"], [2 * f, f, 4, 4, 4])
        XCTAssertEqual(shapes["output_layer.weight"], [4, f, 1, 1, 1])
        XCTAssertEqual(shapes["output_layer.bias"], [4])
        XCTAssertNil(shapes["_layers.13.block1.conv1.weight"])
        XCTAssertEqual(state.first { $0.name.hasSuffix("num_batches_tracked") }?.dtype, "I64")
        XCTAssertEqual(net.stateDictNames, state.map(\.name))
        // BasicLayer convs have no bias in InnerEye.
        XCTAssertNil(shapes["_layers.0.block1.conv1.bias"])
    }

    func testForwardShapeAndEvalMode() {
        let net = UNet3D(imageChannels: 1, classes: 3, featureChannels: 2, seed: 3)
        var random = TestRandom(4)
        let x = random.tensor([2, 1, 16, 32, 16])
        let y = net.forward(x, training: true)
        XCTAssertEqual(y.shape, [2, 3, 16, 32, 16])
        let e = net.forward(x, training: false)
        XCTAssertEqual(e.shape, [2, 3, 16, 32, 16])
        XCTAssertThrowsError(try net.validateInputShape([1, 1, 8, 16, 16]))
        XCTAssertThrowsError(try net.validateInputShape([1, 2, 16, 16, 16]))
        XCTAssertNoThrow(try net.validateInputShape([1, 1, 16, 48, 32]))
        XCTAssertEqual(net.batchNorms.first?.numBatchesTracked, 1)
    }

    func testSameSeedSameWeightsDifferentSeedDifferent() {
        let a = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 42)
        let b = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 42)
        let c = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 43)
        XCTAssertEqual(a.stateDict(), b.stateDict())
        XCTAssertNotEqual(a.stateDict(), c.stateDict())
    }

    func testWholeNetworkGradientsByFiniteDifferences() {
        // Two levels keep >= 64 values per BatchNorm channel at the bottom, so the batch statistics are smooth
        // enough for central differences (with 1x1x1 bottoms BN over 2 values is a near-step function).
        let net = UNet3D(imageChannels: 2, classes: 3, featureChannels: 2, seed: 5, downsamplingPaths: 2)
        var random = TestRandom(6)
        let x = random.tensor([2, 2, 16, 16, 16])
        let y = net.forward(x, training: true)
        let projection = random.tensor(y.shape)
        net.zeroGrad()
        net.backward(projection)
        let loss = { projectedSum(net.forward(x, training: true), projection) }
        let parameters = net.parameters
        for name in ["_layers.0.block1.conv1.weight", "_layers.1.block2.conv1.weight", "_layers.2.block1.bn1.weight",
                     "_layers.2.block2.bn1.bias", "_layers.3.upsample_block.0.weight", "_layers.4.conv1.conv1.weight",
                     "_layers.6.conv2.conv1.weight", "_layers.6.activation_block.0.bias", "output_layer.weight",
                     "output_layer.bias"] {
            guard let p = parameters.first(where: { $0.name == name }) else { XCTFail("no \(name)"); continue }
            checkFiniteDifferences(label: name, count: p.count, samples: 8, step: 5e-4, tolerance: 0.1,
                                   get: { p.value[$0] }, set: { p.value[$0] = $1 }, loss: loss,
                                   analytic: { p.grad[$0] })
        }
        // A bias followed by training-mode BatchNorm cannot change the output: its exact gradient is 0.
        let upsampleBias = parameters.first { $0.name == "_layers.3.upsample_block.0.bias" }!
        let scale = parameters.first { $0.name == "_layers.3.upsample_block.0.weight" }!.grad.map { abs($0) }.max()!
        XCTAssertLessThan(upsampleBias.grad.map { abs($0) }.max()!, 1e-4 * scale)
    }

    func testOverfitsOneBatch() {
        // A bright ball on noise; the net must learn to segment this one batch.
        let size = 16
        var random = TestRandom(7)
        var image = Tensor(zeros: [2, 1, size, size, size])
        var target = Tensor(zeros: [2, 2, size, size, size])
        for b in 0..<2 {
            let centre = b == 0 ? (6.0, 7.0, 8.0) : (9.0, 8.0, 7.0)
            for z in 0..<size { for y in 0..<size { for x in 0..<size {
                let d = ((Double(z) - centre.0) * (Double(z) - centre.0) + (Double(y) - centre.1) * (Double(y) - centre.1)
                         + (Double(x) - centre.2) * (Double(x) - centre.2)).squareRoot()
                let inside = d < 4.5
                let i = (z * size + y) * size + x
                image.data[b * size * size * size + i] = (inside ? 1 : 0) + Float(0.3 * random.rng.nextNormal())
                target.data[(b * 2 + (inside ? 1 : 0)) * size * size * size + i] = 1
            }}}
        }
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: 4, seed: 42)
        let optimizer = Optimizer(kind: .adam, parameters: net.parameters,
                                  settings: OptimizerSettings(eps: 1e-4, weightDecay: 1e-4))
        let loss = SegmentationLoss.crossEntropy()
        var first = 0.0, last = 0.0
        for step in 0..<150 {
            net.zeroGrad()
            let logits = net.forward(image, training: true)
            let result = loss.evaluate(logits: logits, target: target)
            if step == 0 { first = result.value }
            last = result.value
            if last < first * 0.05 { break }
            net.backward(result.gradLogits)
            optimizer.step(lr: 3e-3)
        }
        XCTAssertLessThan(last, first * 0.1, "loss \(first) -> \(last)")
    }
}

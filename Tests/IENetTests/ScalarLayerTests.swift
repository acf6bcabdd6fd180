import XCTest
@testable import IENet

/// The scalar models' layers, losses and the whole classifier against finite differences, and the losses
/// against their closed forms.
final class ScalarLayerTests: XCTestCase {
    func testLinearGradients() {
        var random = TestRandom(3)
        var rng = SeededGenerator(seed: 11)
        let layer = Linear(name: "fc", inFeatures: 5, outFeatures: 3, rng: &rng)
        var x = random.tensor([4, 5])
        let projection = random.tensor([4, 3])
        func loss() -> Double { projectedSum(layer.forward(x, saveForBackward: false), projection) }
        _ = layer.forward(x)
        let gx = layer.backward(projection)
        checkFiniteDifferences(label: "Linear dx", count: x.count, get: { x.data[$0] }, set: { x.data[$0] = $1 },
                               loss: loss, analytic: { gx.data[$0] })
        checkFiniteDifferences(label: "Linear dW", count: layer.weight.count, get: { layer.weight.value[$0] },
                               set: { layer.weight.value[$0] = $1 }, loss: loss, analytic: { layer.weight.grad[$0] })
        checkFiniteDifferences(label: "Linear db", count: layer.bias.count, get: { layer.bias.value[$0] },
                               set: { layer.bias.value[$0] = $1 }, loss: loss, analytic: { layer.bias.grad[$0] })
        // PyTorch's default initialisation bound 1/sqrt(in).
        XCTAssertTrue(layer.weight.value.allSatisfy { abs($0) <= 1 / Float(5).squareRoot() })
    }

    func testGlobalAveragePoolAndConcatenation() {
        var random = TestRandom(5)
        var x = random.tensor([2, 3, 2, 3, 4])
        let projection = random.tensor([2, 3])
        let pool = GlobalAveragePool()
        let y = pool.forward(x)
        XCTAssertEqual(Double(y.data[4]), (0..<24).reduce(0.0) { $0 + Double(x.data[4 * 24 + $1]) } / 24, accuracy: 1e-6)
        let gx = pool.backward(projection, inputShape: x.shape)
        checkFiniteDifferences(label: "pool", count: x.count, get: { x.data[$0] }, set: { x.data[$0] = $1 },
                               loss: { projectedSum(pool.forward(x), projection) }, analytic: { gx.data[$0] })
        let joined = concatenateColumns(Tensor(shape: [2, 2], data: [1, 2, 3, 4]), Tensor(shape: [2, 1], data: [9, 8]))
        XCTAssertEqual(joined.data, [1, 2, 9, 3, 4, 8])
        XCTAssertEqual(leadingColumns(joined, width: 2).data, [1, 2, 3, 4])
    }

    /// BCE with logits: closed form -[p t log σ + (1-t) log(1-σ)] (written directly, not in the stable form) and
    /// finite differences; large logits stay finite.
    func testBinaryCrossEntropyWithLogits() {
        var random = TestRandom(9)
        var logits = random.tensor([6, 2], scale: 2)
        let targets: [Float] = [1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 0.3, 0.7]
        let weights: [Float] = [2.5, 0.5]
        let (loss, gradient) = ScalarLoss.binaryCrossEntropyWithLogits(logits, targets: targets, positiveWeights: weights)
        var direct = 0.0
        for i in 0..<12 {
            let s = 1 / (1 + exp(-Double(logits.data[i]))), t = Double(targets[i]), p = Double(weights[i % 2])
            direct -= p * t * log(s) + (1 - t) * log(1 - s)
        }
        XCTAssertEqual(loss, direct / 12, accuracy: 1e-9)
        checkFiniteDifferences(label: "BCE", count: logits.count, step: 1e-3,
                               get: { logits.data[$0] }, set: { logits.data[$0] = $1 },
                               loss: { ScalarLoss.binaryCrossEntropyWithLogits(logits, targets: targets, positiveWeights: weights).loss },
                               analytic: { gradient.data[$0] })
        let extreme = ScalarLoss.binaryCrossEntropyWithLogits(Tensor(shape: [2, 1], data: [200, -200]), targets: [0, 1])
        XCTAssertEqual(extreme.loss, 200, accuracy: 1e-9)
        XCTAssertTrue(extreme.gradient.data.allSatisfy(\.isFinite))
    }

    func testMeanSquaredError() {
        var outputs = Tensor(shape: [3, 1], data: [1, -2, 0.5])
        let targets: [Float] = [0, 1, 0.5]
        let (loss, gradient) = ScalarLoss.meanSquaredError(outputs, targets: targets)
        XCTAssertEqual(loss, (1.0 + 9.0 + 0.0) / 3, accuracy: 1e-12)
        checkFiniteDifferences(label: "MSE", count: 3, get: { outputs.data[$0] }, set: { outputs.data[$0] = $1 },
                               loss: { ScalarLoss.meanSquaredError(outputs, targets: targets).loss }, analytic: { gradient.data[$0] })
    }

    /// The whole classifier (2-D input as depth 1, and 3-D), every parameter kind, with non-image features; BN in
    /// training mode inside the loss, as in training. A small step (ReLU kinks) on images large enough that the
    /// batch statistics are smooth, as the UNet's whole-network check.
    func testClassifierGradients() {
        for (shape, features) in [([3, 2, 1, 16, 16], 2), ([2, 1, 4, 16, 16], 0)] {
            var random = TestRandom(17)
            let architecture = ImageClassifierArchitecture(imageChannels: shape[1], featureChannels: [4, 6], nonImageFeatures: features,
                                                           hiddenUnits: 5, outputs: 2)
            let model = ImageClassifier(architecture, seed: 3)
            let x = random.tensor(shape)
            let extra = features > 0 ? random.tensor([shape[0], features]) : nil
            let projection = random.tensor([shape[0], 2])
            func loss() -> Double { projectedSum(model.forward(x, features: extra, training: true), projection) }
            model.zeroGrad()
            _ = model.forward(x, features: extra, training: true)
            model.backward(projection)
            for p in model.parameters where p.name.hasPrefix("encoder.0.conv1") || p.name.hasPrefix("encoder.1.block2")
                || p.name.hasPrefix("head.0.weight") || p.name.hasSuffix("bn1.bias") {
                checkFiniteDifferences(label: "\(shape) \(p.name)", count: p.count, samples: 12, step: 5e-4, tolerance: 0.05,
                                       get: { p.value[$0] }, set: { p.value[$0] = $1 }, loss: loss, analytic: { p.grad[$0] })
            }
        }
    }

    /// A few steps of Adam on one batch lower the BCE loss (the training loop's smallest case).
    func testLossGoesDownOnOneBatch() {
        var random = TestRandom(23)
        let model = ImageClassifier(ImageClassifierArchitecture(imageChannels: 1, featureChannels: [4, 8], outputs: 1), seed: 5)
        let x = random.tensor([4, 1, 1, 8, 8])
        let targets: [Float] = [1, 0, 1, 0]
        let optimizer = Optimizer(kind: .adam, parameters: model.parameters)
        var losses: [Double] = []
        for _ in 0..<20 {
            optimizer.zeroGrad()
            let (loss, gradient) = ScalarLoss.binaryCrossEntropyWithLogits(model.forward(x, training: true), targets: targets)
            model.backward(gradient)
            optimizer.step(lr: 1e-2)
            losses.append(loss)
        }
        XCTAssertLessThan(losses.last!, 0.5 * losses.first!, "\(losses)")
    }
}

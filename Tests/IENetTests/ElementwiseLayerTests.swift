import XCTest
@testable import IENet

final class ElementwiseLayerTests: XCTestCase {
    func testBatchNormTrainingForwardAndRunningStatistics() {
        var random = TestRandom(11)
        var rng = SeededGenerator(seed: 12)
        let bn = BatchNorm3d(name: "bn", channels: 3, fusedReLU: false, rng: &rng)
        bn.weight.value = [1.5, -0.5, 2]
        bn.bias.value = [0.1, 0.2, -0.3]
        var x = random.tensor([2, 3, 2, 3, 4])
        for i in 0..<x.count { x.data[i] += Float(i % 3) }  // give channels different means
        let y = bn.forward(x, training: true)
        XCTAssertEqual(y.shape, x.shape)
        let spatial = 24
        for c in 0..<3 {
            var values: [Double] = []
            for n in 0..<2 { for i in 0..<spatial { values.append(Double(x.data[(n * 3 + c) * spatial + i])) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            for n in 0..<2 { for i in 0..<spatial {
                let index = (n * 3 + c) * spatial + i
                let expected = Double(bn.weight.value[c]) * (Double(x.data[index]) - mean) / (variance + 1e-5).squareRoot()
                    + Double(bn.bias.value[c])
                XCTAssertEqual(Double(y.data[index]), expected, accuracy: 1e-4)
            }}
            XCTAssertEqual(Double(bn.runningMean[c]), 0.1 * mean, accuracy: 1e-5)
            let unbiased = variance * Double(values.count) / Double(values.count - 1)
            XCTAssertEqual(Double(bn.runningVar[c]), 0.9 + 0.1 * unbiased, accuracy: 1e-5)
        }
        XCTAssertEqual(bn.numBatchesTracked, 1)
        // Eval mode uses the running statistics.
        let e = bn.forward(x, training: false)
        let c = 1, index = (1 * 3 + c) * spatial + 5
        let expected = Double(bn.weight.value[c]) * (Double(x.data[index]) - Double(bn.runningMean[c]))
            / (Double(bn.runningVar[c]) + 1e-5).squareRoot() + Double(bn.bias.value[c])
        XCTAssertEqual(Double(e.data[index]), expected, accuracy: 1e-4)
    }

    func testBatchNormGradientsByFiniteDifferences() {
        for fused in [false, true] {
            var random = TestRandom(13)
            var rng = SeededGenerator(seed: 14)
            let bn = BatchNorm3d(name: "bn", channels: 3, fusedReLU: fused, weightInitStd: 0.3, rng: &rng)
            bn.bias.value = [0.2, -0.1, 0.3]
            var x = random.tensor([2, 3, 2, 3, 3])
            let y = bn.forward(x, training: true)
            if fused { XCTAssertEqual(y.data.min(), 0, "ReLU clamps") }
            let projection = random.tensor(y.shape)
            let gradInput = bn.backward(projection)
            let loss = { projectedSum(bn.forward(x, training: true), projection) }
            checkFiniteDifferences(label: "bn input fused=\(fused)", count: x.count, samples: 40, step: 1e-3,
                                   get: { x.data[$0] }, set: { x.data[$0] = $1 }, loss: loss,
                                   analytic: { gradInput.data[$0] })
            checkFiniteDifferences(label: "bn gamma fused=\(fused)", count: 3, step: 1e-3, get: { bn.weight.value[$0] },
                                   set: { bn.weight.value[$0] = $1 }, loss: loss, analytic: { bn.weight.grad[$0] })
            checkFiniteDifferences(label: "bn beta fused=\(fused)", count: 3, step: 1e-3, get: { bn.bias.value[$0] },
                                   set: { bn.bias.value[$0] = $1 }, loss: loss, analytic: { bn.bias.grad[$0] })
        }
    }

    func testReLUForwardShapeAndGradient() {
        var random = TestRandom(15)
        let relu = ReLU()
        var x = random.tensor([2, 2, 3, 3, 3])
        let y = relu.forward(x)
        XCTAssertEqual(y.shape, x.shape)
        for i in 0..<x.count { XCTAssertEqual(y.data[i], max(x.data[i], 0)) }
        let projection = random.tensor(y.shape)
        let gradInput = relu.backward(projection)
        checkFiniteDifferences(label: "relu", count: x.count, samples: 30, step: 1e-3, get: { x.data[$0] },
                               set: { x.data[$0] = $1 },
                               loss: { projectedSum(relu.forward(x, saveForBackward: false), projection) },
                               analytic: { gradInput.data[$0] })
    }

    func testResidualAddAndSoftmax() {
        var random = TestRandom(16)
        let a = random.tensor([1, 2, 2, 2, 2]), b = random.tensor([1, 2, 2, 2, 2])
        let s = add(a, b)
        XCTAssertEqual(s.shape, a.shape)
        for i in 0..<a.count { XCTAssertEqual(s.data[i], a.data[i] + b.data[i]) }
        // Softmax against a hand computation at one voxel.
        let logits = Tensor(shape: [1, 3, 1, 1, 2], data: [1, 0, 2, 0, 3, 0])
        let p = softmaxChannels(logits)
        let e = [exp(1.0), exp(2.0), exp(3.0)], total = e.reduce(0, +)
        XCTAssertEqual(Double(p.data[0]), e[0] / total, accuracy: 1e-6)
        XCTAssertEqual(Double(p.data[2]), e[1] / total, accuracy: 1e-6)
        XCTAssertEqual(Double(p.data[4]), e[2] / total, accuracy: 1e-6)
        XCTAssertEqual(Double(p.data[1]), 1.0 / 3, accuracy: 1e-6)
    }
}

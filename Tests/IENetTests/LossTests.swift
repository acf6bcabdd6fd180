import XCTest
@testable import IENet

final class LossTests: XCTestCase {
    /// Two voxels, two classes, logits 0 (p = 0.5 everywhere); voxel 0 is class 0, voxel 1 is class 1.
    let uniformLogits = Tensor(shape: [1, 2, 1, 1, 2], data: [0, 0, 0, 0])
    let twoVoxelTarget = Tensor(shape: [1, 2, 1, 1, 2], data: [1, 0, 0, 1])

    func testSoftDiceHandWorkedValue() {
        // Per class: sum(p t + eps) = 0.5 + 2 eps, sum(p^2 + eps) = 0.5 + 2 eps, sum(t^2 + eps) = 1 + 2 eps
        // (eps = 1e-10 at each of the 2 voxels): loss = 1 - 2 * (0.5 + 2 eps) / (1.5 + 4 eps).
        let r = SegmentationLoss.softDice().evaluate(logits: uniformLogits, target: twoVoxelTarget)
        let eps = 1e-10
        XCTAssertEqual(r.value, 1 - 2 * (0.5 + 2 * eps) / (1.5 + 4 * eps), accuracy: 1e-7)
        // A large eps shows it is added per voxel: 1 - 2 * (0.5 + 2 * 0.1) / (1.5 + 4 * 0.1).
        let big = SegmentationLoss.softDice(eps: 0.1).evaluate(logits: uniformLogits, target: twoVoxelTarget)
        XCTAssertEqual(big.value, 1 - 2 * 0.7 / 1.9, accuracy: 1e-7)
        // Perfect prediction: large correct logits give a loss near 0 (background included).
        let confident = Tensor(shape: [1, 2, 1, 1, 2], data: [20, -20, -20, 20])
        XCTAssertEqual(SegmentationLoss.softDice().evaluate(logits: confident, target: twoVoxelTarget).value, 0, accuracy: 1e-5)
    }

    func testSoftDiceIsTheMeanOverCropsAndClassesNotPooledOverTheBatch() {
        // Crop 0: one voxel of class 1 predicted (almost) perfectly; crop 1: one voxel of class 0 with p = (0.5, 0.5).
        // InnerEye takes the mean of the 4 (crop, class) ratios; the old rule pooled the batch per class.
        let logits = Tensor(shape: [2, 2, 1, 1, 1], data: [-30, 30, 0, 0])
        let target = Tensor(shape: [2, 2, 1, 1, 1], data: [0, 1, 1, 0])
        let eps = 1e-10
        // Crop 0: class 0 ratio eps / (p0^2 + 2 eps) with p0 = e^-60 / (1 + e^-60); class 1 ratio ~ 1/2.
        let p0 = exp(-60.0) / (1 + exp(-60.0))
        let crop0 = [(p0 * 0 + eps) / (p0 * p0 + eps + eps), ((1 - p0) + eps) / ((1 - p0) * (1 - p0) + eps + 1 + eps)]
        // Crop 1: class 0: (0.5 + eps) / (0.25 + eps + 1 + eps); class 1: eps / (0.25 + eps + eps).
        let crop1 = [(0.5 + eps) / (1.25 + 2 * eps), eps / (0.25 + 2 * eps)]
        let expected = 1 - 2 * (crop0 + crop1).reduce(0, +) / 4
        let r = SegmentationLoss.softDice().evaluate(logits: logits, target: target)
        XCTAssertEqual(r.value, expected, accuracy: 1e-6)
        // Pooled per class: class 0 I = 0.5, O + T = 0.25 + 1; class 1 I = 1, O + T = 1.25 + 1.
        let pooled = 1 - (0.5 / 1.25 + 1 / 2.25)
        XCTAssertGreaterThan(abs(r.value - pooled), 0.1)
    }

    func testCrossEntropyHandWorkedValues() {
        let r = SegmentationLoss.crossEntropy().evaluate(logits: uniformLogits, target: twoVoxelTarget)
        XCTAssertEqual(r.value, log(2), accuracy: 1e-7)
        // Three voxels with class counts [2, 1]: weights (1/count)^1 normalised to mean 1 are [2/3, 4/3].
        let logits = Tensor(zeros: [1, 2, 1, 1, 3])
        let target = Tensor(shape: [1, 2, 1, 1, 3], data: [1, 1, 0, 0, 0, 1])
        let weighted = SegmentationLoss.crossEntropy(classWeightPower: 1).evaluate(logits: logits, target: target)
        let meanWeight: Double = (2.0 / 3 + 2.0 / 3 + 4.0 / 3) / 3
        XCTAssertEqual(weighted.value, meanWeight * log(2.0), accuracy: 1e-7)
        let weights = classWeightsFromCounts([2, 1, 0], power: 1)
        let expectedWeights: [Double] = [0.5 * 3 / 2.5, 3 / 2.5, 3 / 2.5]
        for (w, e) in zip(weights, expectedWeights) { XCTAssertEqual(w, e, accuracy: 1e-12) }
    }

    func testFocalHandWorkedValue() {
        // Voxel 0: logits (log 3, 0) -> p = (0.75, 0.25), target 0. Voxel 1: logits 0 -> p = 0.5, target 1.
        let logits = Tensor(shape: [1, 2, 1, 1, 2], data: [Float(log(3.0)), 0, 0, 0])
        let r = SegmentationLoss.focal(gamma: 2).evaluate(logits: logits, target: twoVoxelTarget)
        let w0 = pow(0.25 + 1e-6, 2.0), w1 = pow(0.5 + 1e-6, 2.0)
        let scaling = 2 / (w0 + w1 + 1e-6)
        let expected = (w0 * scaling * -log(0.75) + w1 * scaling * -log(0.5)) / 2
        XCTAssertEqual(r.value, expected, accuracy: 1e-6)
        // The pixel weights are constants: the gradient is the CE gradient scaled per voxel.
        let ce = SegmentationLoss.crossEntropy().evaluate(logits: logits, target: twoVoxelTarget)
        for (i, w) in [(0, w0 * scaling), (1, w1 * scaling)] {
            XCTAssertEqual(Double(r.gradLogits.data[i]), w * Double(ce.gradLogits.data[i]), accuracy: 1e-6)
            XCTAssertEqual(Double(r.gradLogits.data[2 + i]), w * Double(ce.gradLogits.data[2 + i]), accuracy: 1e-6)
        }
    }

    func testMixtureIsWeightedSumWithWeightsRenormalised() {
        var random = TestRandom(21)
        let logits = random.tensor([2, 3, 2, 2, 2])
        let target = randomOneHot(&random, [2, 3, 2, 2, 2])
        let dice = SegmentationLoss.softDice().evaluate(logits: logits, target: target)
        let ce = SegmentationLoss.crossEntropy().evaluate(logits: logits, target: target)
        // Weights 0.6 and 1.4 sum to 2: InnerEye divides them by their sum, giving 0.3 and 0.7.
        let mix = SegmentationLoss.mixture([(0.6, .softDice()), (1.4, .crossEntropy())]).evaluate(logits: logits, target: target)
        XCTAssertEqual(mix.value, 0.3 * dice.value + 0.7 * ce.value, accuracy: 1e-9)
        for i in 0..<logits.count {
            XCTAssertEqual(mix.gradLogits.data[i], 0.3 * dice.gradLogits.data[i] + 0.7 * ce.gradLogits.data[i], accuracy: 1e-6)
        }
    }

    func testLabelSmoothingOfTheCrossEntropyTarget() {
        // 3 classes, eps 0.3: 1 -> 0.7, 0 -> 0.15. Uniform logits: -sum_c t_c log(1/3) = log 3 per voxel (targets
        // sum to 1); without class weights InnerEye's mean runs over voxels and classes: log 3 / 3.
        let logits = Tensor(zeros: [1, 3, 1, 1, 2])
        let target = Tensor(shape: [1, 3, 1, 1, 2], data: [1, 0, 0, 1, 0, 0])
        let smoothed = smoothTarget(target, eps: 0.3)
        XCTAssertEqual(smoothed.data.map(Double.init), [0.7, 0.15, 0.15, 0.7, 0.15, 0.15].map { Double(Float($0)) },
                       "smoothed target")
        let r = SegmentationLoss.crossEntropy(smoothingEps: 0.3).evaluate(logits: logits, target: target)
        XCTAssertEqual(r.value, log(3.0) / 3, accuracy: 1e-6)
        // Gradient at uniform p: (p_j - t_j) / (voxels * classes).
        XCTAssertEqual(Double(r.gradLogits.data[0]), (1.0 / 3 - 0.7) / 6, accuracy: 1e-6)
        XCTAssertEqual(Double(r.gradLogits.data[2]), (1.0 / 3 - 0.15) / 6, accuracy: 1e-6)
        // With class weights (smoothed counts 0.85, 0.85, 0.3; w = 1/count scaled to mean 1): the weighted sum over
        // classes, mean over voxels only.
        let weighted = SegmentationLoss.crossEntropy(classWeightPower: 1, smoothingEps: 0.3).evaluate(logits: logits, target: target)
        let w = [1 / 0.85, 1 / 0.85, 1 / 0.3]
        let scale = 3 / w.reduce(0, +)
        let perVoxel0 = (0.7 * w[0] + 0.15 * w[1] + 0.15 * w[2]) * scale * log(3.0)
        let perVoxel1 = (0.15 * w[0] + 0.7 * w[1] + 0.15 * w[2]) * scale * log(3.0)
        XCTAssertEqual(weighted.value, (perVoxel0 + perVoxel1) / 2, accuracy: 1e-6)
    }

    func testLossGradientsByFiniteDifferences() {
        var random = TestRandom(22)
        var logits = random.tensor([2, 3, 2, 3, 2], scale: 2)
        let target = randomOneHot(&random, logits.shape)
        let losses: [(String, SegmentationLoss)] = [
            ("softDice", .softDice()), ("softDice weighted", .softDice(classWeightPower: 1)),
            ("crossEntropy", .crossEntropy()), ("crossEntropy weighted", .crossEntropy(classWeightPower: 0.5)),
            ("focal gamma 0", .focal(gamma: 0)),
            ("mixture", .mixture([(0.5, .softDice()), (0.5, .crossEntropy(classWeightPower: 1))])),
            ("softDice eps 1e-2", .softDice(eps: 1e-2, classWeightPower: 0.5)),
            ("crossEntropy smoothed", .crossEntropy(classWeightPower: 1, smoothingEps: 0.1)),
            ("mixture unnormalised", .mixture([(3, .softDice(classWeightPower: 1)), (1, .crossEntropy(smoothingEps: 0.2))])),
        ]
        for (label, loss) in losses {
            let r = loss.evaluate(logits: logits, target: target)
            XCTAssertEqual(r.gradLogits.shape, logits.shape)
            checkFiniteDifferences(label: label, count: logits.count, samples: 30, step: 1e-2,
                                   get: { logits.data[$0] }, set: { logits.data[$0] = $1 },
                                   loss: { loss.evaluate(logits: logits, target: target).value },
                                   analytic: { r.gradLogits.data[$0] })
        }
    }

    func randomOneHot(_ random: inout TestRandom, _ shape: [Int]) -> Tensor {
        var t = Tensor(zeros: shape)
        let c = shape[1], s = shape.dropFirst(2).reduce(1, *)
        for b in 0..<shape[0] { for i in 0..<s { t.data[(b * c + random.index(c)) * s + i] = 1 } }
        return t
    }
}

final class OptimizerTests: XCTestCase {
    func single(_ value: Float) -> Parameter { Parameter(name: "p", shape: [1], value: [value]) }

    func testAdamTwoStepsByHand() {
        let p = single(1)
        let adam = Optimizer(kind: .adam, parameters: [p], settings: OptimizerSettings(eps: 1e-8, weightDecay: 0))
        p.grad = [0.5]; adam.step(lr: 0.1)
        XCTAssertEqual(Double(p.value[0]), 1 - 0.1 * 0.5 / (0.5 + 1e-8), accuracy: 1e-6)
        p.grad = [-1]; adam.step(lr: 0.1)
        let m = 0.9 * 0.05 - 0.1, v = 0.999 * 0.00025 + 0.001
        let expected = 0.9 - 0.1 * (m / 0.19) / ((v / (1 - 0.999 * 0.999)).squareRoot() + 1e-8)
        XCTAssertEqual(Double(p.value[0]), expected, accuracy: 1e-5)
        XCTAssertEqual(adam.stepCount, 2)
    }

    /// Adam runs 16 lanes at a time with a scalar tail: every element of a long parameter (lanes) must get the bits
    /// that the same element alone (the scalar tail) gets, and both follow PyTorch's rule evaluated in Double.
    func testAdamLanesEqualTheScalarRule() {
        let n = 16 * 5 + 7
        var random = TestRandom(31)
        let start = random.tensor([n]).data
        let long = Parameter(name: "long", shape: [n], value: start)
        let singles = start.map { single($0) }
        let settings = OptimizerSettings(eps: 1e-4, weightDecay: 1e-4)
        let adam = Optimizer(kind: .adam, parameters: [long], settings: settings)
        let alone = singles.map { Optimizer(kind: .adam, parameters: [$0], settings: settings) }
        var (m, v, x) = ([Double](repeating: 0, count: n), [Double](repeating: 0, count: n), start.map(Double.init))
        for t in 1...3 {
            let grads = random.tensor([n]).data
            long.grad = grads
            adam.step(lr: 1e-3)
            for i in 0..<n {
                singles[i].grad = [grads[i]]
                alone[i].step(lr: 1e-3)
                let g = Double(grads[i]) + 1e-4 * x[i]
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                let stepSize = 1e-3 / (1 - pow(0.9, Double(t)))
                x[i] -= stepSize * m[i] / (v[i].squareRoot() / (1 - pow(0.999, Double(t))).squareRoot() + 1e-4)
            }
            for i in 0..<n {
                XCTAssertEqual(long.value[i].bitPattern, singles[i].value[0].bitPattern, "element \(i), step \(t)")
                XCTAssertEqual(Double(long.value[i]), x[i], accuracy: 1e-6 * max(1, abs(x[i])), "element \(i), step \(t)")
            }
        }
    }

    func testAdamWeightDecayIsL2OnGradient() {
        let p = single(2)
        let adam = Optimizer(kind: .adam, parameters: [p], settings: OptimizerSettings(eps: 1e-8, weightDecay: 0.5))
        p.grad = [-0.5]  // effective gradient -0.5 + 0.5*2 = 0.5 > 0, so the parameter decreases
        adam.step(lr: 0.01)
        XCTAssertEqual(Double(p.value[0]), 2 - 0.01, accuracy: 1e-6)
    }

    func testAMSGradKeepsMaximumSecondMoment() {
        let a = single(0), b = single(0)
        let adam = Optimizer(kind: .adam, parameters: [a], settings: OptimizerSettings(eps: 1e-8, weightDecay: 0))
        let ams = Optimizer(kind: .amsgrad, parameters: [b], settings: OptimizerSettings(eps: 1e-8, weightDecay: 0))
        for g: Float in [1, 0.01] {
            a.grad = [g]; b.grad = [g]
            adam.step(lr: 0.1); ams.step(lr: 0.1)
        }
        // Step 2: v = 0.999*0.001 + 0.001*1e-4 < max = 0.001, m = 0.9*0.1 + 0.1*0.01.
        let m = 0.091, bc1 = 1 - 0.81, bc2 = 1 - 0.999 * 0.999
        let vAdam = 0.999 * 0.001 + 0.001 * 1e-4, vMax = 0.001
        XCTAssertEqual(Double(a.value[0]), -0.1 - 0.1 * (m / bc1) / ((vAdam / bc2).squareRoot() + 1e-8), accuracy: 1e-5)
        XCTAssertEqual(Double(b.value[0]), -0.1 - 0.1 * (m / bc1) / ((vMax / bc2).squareRoot() + 1e-8), accuracy: 1e-5)
        XCTAssertEqual(ams.slotNames, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
    }

    func testSGDMomentumNesterovAndWeightDecay() {
        let plain = single(1), nesterov = single(1), decay = single(1)
        let s1 = Optimizer(kind: .sgd, parameters: [plain], settings: OptimizerSettings(weightDecay: 0, momentum: 0.9))
        let s2 = Optimizer(kind: .sgd, parameters: [nesterov],
                           settings: OptimizerSettings(weightDecay: 0, momentum: 0.9, nesterov: true))
        let s3 = Optimizer(kind: .sgd, parameters: [decay], settings: OptimizerSettings(weightDecay: 0.01, momentum: 0))
        for _ in 0..<2 {
            plain.grad = [0.5]; nesterov.grad = [0.5]; decay.grad = [0.5]
            s1.step(lr: 0.1); s2.step(lr: 0.1)
        }
        s3.step(lr: 0.1)
        XCTAssertEqual(plain.value[0], 1 - 0.05 - 0.095, accuracy: 1e-6)
        XCTAssertEqual(nesterov.value[0], 1 - 0.095 - 0.1355, accuracy: 1e-6)
        XCTAssertEqual(decay.value[0], 1 - 0.1 * 0.51, accuracy: 1e-6)
    }

    func testRMSpropByHand() {
        let p = single(1), q = single(1)
        let plain = Optimizer(kind: .rmsprop, parameters: [p],
                              settings: OptimizerSettings(eps: 1e-8, weightDecay: 0, momentum: 0, rmsAlpha: 0.9))
        let withMomentum = Optimizer(kind: .rmsprop, parameters: [q],
                                     settings: OptimizerSettings(eps: 1e-8, weightDecay: 0, momentum: 0.5, rmsAlpha: 0.9))
        p.grad = [0.5]; q.grad = [0.5]
        plain.step(lr: 0.1); withMomentum.step(lr: 0.1)
        let avg1 = (0.025).squareRoot() + 1e-8
        XCTAssertEqual(Double(p.value[0]), 1 - 0.1 * 0.5 / avg1, accuracy: 1e-6)
        XCTAssertEqual(Double(q.value[0]), 1 - 0.1 * 0.5 / avg1, accuracy: 1e-6)
        q.grad = [0.5]; withMomentum.step(lr: 0.1)
        let avg2 = (0.9 * 0.025 + 0.1 * 0.25).squareRoot() + 1e-8
        let buffer = 0.5 * (0.5 / avg1) + 0.5 / avg2
        XCTAssertEqual(Double(q.value[0]), 1 - 0.1 * 0.5 / avg1 - 0.1 * buffer, accuracy: 1e-5)
    }

    func testLearningRateSchedules() {
        let base = 1e-3, minRate = 1e-5
        XCTAssertEqual(learningRate(epoch: 0, baseRate: base, minRate: minRate, numEpochs: 10, schedule: .polynomial(gamma: 0.9)),
                       base, accuracy: 1e-15)
        let x = minRate / base
        XCTAssertEqual(learningRate(epoch: 5, baseRate: base, minRate: minRate, numEpochs: 10, schedule: .polynomial(gamma: 0.9)),
                       base * ((1 - x) * pow(0.5, 0.9) + x), accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 10, baseRate: base, minRate: minRate, numEpochs: 10, schedule: .polynomial(gamma: 0.9)),
                       minRate, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 3, baseRate: base, numEpochs: 10, schedule: .exponential(gamma: 0.5)), base / 8, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 2, baseRate: base, numEpochs: 10, schedule: .step(stepSize: 3, gamma: 0.1)), base, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 3, baseRate: base, numEpochs: 10, schedule: .step(stepSize: 3, gamma: 0.1)), base * 0.1, accuracy: 1e-15)
        let multi = LearningRateSchedule.multiStep(milestones: [2, 5], gamma: 0.1)
        XCTAssertEqual(learningRate(epoch: 1, baseRate: base, numEpochs: 10, schedule: multi), base, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 2, baseRate: base, numEpochs: 10, schedule: multi), base * 0.1, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 5, baseRate: base, numEpochs: 10, schedule: multi), base * 0.01, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 5, baseRate: base, minRate: minRate, numEpochs: 10, schedule: .cosine),
                       (base + minRate) / 2, accuracy: 1e-15)
        // Linear warm-up over 2 epochs, then the schedule restarts at its epoch 0 over 8 epochs.
        XCTAssertEqual(learningRate(epoch: 0, baseRate: base, numEpochs: 10, schedule: .cosine, warmupEpochs: 2), base / 3, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 1, baseRate: base, numEpochs: 10, schedule: .cosine, warmupEpochs: 2), 2 * base / 3, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 2, baseRate: base, numEpochs: 10, schedule: .cosine, warmupEpochs: 2), base, accuracy: 1e-15)
        XCTAssertEqual(learningRate(epoch: 6, baseRate: base, numEpochs: 10, schedule: .cosine, warmupEpochs: 2), base / 2, accuracy: 1e-15)
    }
}

final class ConvenienceTests: XCTestCase {
    func testOneHotNamedLossesAndPredict() throws {
        let t = Tensor(oneHotLabels: [0, 2, 1, 0], batch: 2, classes: 3, spatialShape: [1, 1, 2])
        XCTAssertEqual(t.shape, [2, 3, 1, 1, 2])
        XCTAssertEqual(t.data, [1, 0, 0, 0, 0, 1, /* n=1 */ 0, 1, 1, 0, 0, 0])
        if case .focal(let gamma, let power) = try SegmentationLoss.named("Focal", classWeightPower: 0.5, focalGamma: 2) {
            XCTAssertEqual(gamma, 2); XCTAssertEqual(power, 0.5)
        } else { XCTFail("Focal") }
        XCTAssertThrowsError(try SegmentationLoss.named("Dice"))
        let net = UNet3D(imageChannels: 1, classes: 3, featureChannels: 2, seed: 1)
        let p = net.predictProbabilities(Tensor(zeros: [1, 1, 16, 16, 16]))
        for i in 0..<4096 {
            XCTAssertEqual(p.data[i] + p.data[4096 + i] + p.data[8192 + i], 1, accuracy: 1e-5)
        }
    }
}

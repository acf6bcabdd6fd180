import Foundation

// The layers and losses of the scalar (classification / regression) models, llm.c style: each a forward and a
// backward over plain buffers, checked against finite differences in ScalarLayerTests.

/// Fully connected layer as PyTorch's nn.Linear: y = x W^T + b, weight [out, in], input [N, in].
/// Initialised as PyTorch's default (kaiming_uniform(a=sqrt(5)) and a uniform bias, both within 1/sqrt(in)).
public final class Linear {
    public let weight: Parameter
    public let bias: Parameter
    public let inFeatures: Int, outFeatures: Int
    private var savedInput: Tensor?

    public init(name: String, inFeatures: Int, outFeatures: Int, rng: inout SeededGenerator) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        let bound = 1 / Double(inFeatures).squareRoot()
        weight = Parameter(name: name + ".weight", shape: [outFeatures, inFeatures],
                           value: (0..<(outFeatures * inFeatures)).map { _ in Float(rng.nextUniform(-bound, bound)) })
        bias = Parameter(name: name + ".bias", shape: [outFeatures],
                         value: (0..<outFeatures).map { _ in Float(rng.nextUniform(-bound, bound)) })
    }

    public var parameters: [Parameter] { [weight, bias] }

    public func forward(_ x: Tensor, saveForBackward: Bool = true) -> Tensor {
        precondition(x.shape.count == 2 && x.shape[1] == inFeatures, "Linear \(weight.name): expected [N, \(inFeatures)], got \(x.shape)")
        let n = x.shape[0]
        var y = Tensor(zeros: [n, outFeatures])
        for i in 0..<n {
            for o in 0..<outFeatures {
                var sum = Double(bias.value[o])
                for k in 0..<inFeatures { sum += Double(x.data[i * inFeatures + k]) * Double(weight.value[o * inFeatures + k]) }
                y.data[i * outFeatures + o] = Float(sum)
            }
        }
        savedInput = saveForBackward ? x : nil
        return y
    }

    /// Accumulates dW = g^T x and db = sum over the batch of g; returns dx = g W.
    public func backward(_ g: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("Linear \(weight.name): backward without forward") }
        let n = x.shape[0]
        var gradInput = Tensor(zeros: x.shape)
        for i in 0..<n {
            for o in 0..<outFeatures {
                let go = g.data[i * outFeatures + o]
                bias.grad[o] += go
                for k in 0..<inFeatures {
                    weight.grad[o * inFeatures + k] += go * x.data[i * inFeatures + k]
                    gradInput.data[i * inFeatures + k] += go * weight.value[o * inFeatures + k]
                }
            }
        }
        savedInput = nil
        return gradInput
    }
}

/// Mean over the spatial axes of an NC... tensor: [N, C, D, H, W] -> [N, C] (PyTorch's AdaptiveAvgPool3d(1) + flatten).
public struct GlobalAveragePool {
    public init() {}

    public func forward(_ x: Tensor) -> Tensor {
        let spatial = x.spatialCount, rows = x.batch * x.channels
        var y = Tensor(zeros: [x.batch, x.channels])
        for r in 0..<rows {
            var sum = 0.0
            for s in 0..<spatial { sum += Double(x.data[r * spatial + s]) }
            y.data[r] = Float(sum / Double(spatial))
        }
        return y
    }

    /// Each input element gets its channel's gradient divided by the spatial size.
    public func backward(_ g: Tensor, inputShape: [Int]) -> Tensor {
        var gradInput = Tensor(zeros: inputShape)
        let spatial = gradInput.spatialCount
        for r in 0..<g.count {
            let share = g.data[r] / Float(spatial)
            for s in 0..<spatial { gradInput.data[r * spatial + s] = share }
        }
        return gradInput
    }
}

/// Joins [N, A] and [N, B] into [N, A + B] (image features beside the non-image features).
public func concatenateColumns(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.shape.count == 2 && b.shape.count == 2 && a.shape[0] == b.shape[0], "concatenateColumns: \(a.shape) and \(b.shape)")
    let n = a.shape[0], wa = a.shape[1], wb = b.shape[1]
    var y = Tensor(zeros: [n, wa + wb])
    for i in 0..<n {
        for k in 0..<wa { y.data[i * (wa + wb) + k] = a.data[i * wa + k] }
        for k in 0..<wb { y.data[i * (wa + wb) + wa + k] = b.data[i * wb + k] }
    }
    return y
}

/// The first `width` columns of an [N, W] tensor (the gradient of the image part of a concatenation).
public func leadingColumns(_ x: Tensor, width: Int) -> Tensor {
    let n = x.shape[0], total = x.shape[1]
    var y = Tensor(zeros: [n, width])
    for i in 0..<n { for k in 0..<width { y.data[i * width + k] = x.data[i * total + k] } }
    return y
}

/// Losses of the scalar models (SPEC §13, InnerEye's ScalarLoss), each the mean over all N x K outputs, returning
/// the loss and d(loss)/d(output). Accumulated in double precision.
public enum ScalarLoss {
    /// PyTorch's BCEWithLogitsLoss(pos_weight=p): -[p t log σ(x) + (1 - t) log(1 - σ(x))], computed stably as
    /// (1 - t) x + (1 + (p - 1) t) softplus(-x). Gradient: ((1 + (p - 1) t) σ(x) - p t) / (N K).
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: [Float], positiveWeights: [Float]? = nil)
        -> (loss: Double, gradient: Tensor) {
        precondition(targets.count == logits.count, "one target per output")
        let k = logits.shape.last ?? 1
        var gradient = Tensor(zeros: logits.shape)
        var total = 0.0
        let scale = 1 / Double(logits.count)
        for i in 0..<logits.count {
            let x = Double(logits.data[i]), t = Double(targets[i])
            let p = Double(positiveWeights?[i % k] ?? 1)
            let softplusMinusX = max(-x, 0) + log1p(exp(-abs(x)))
            let weight = 1 + (p - 1) * t
            total += (1 - t) * x + weight * softplusMinusX
            let sigmoid = 1 / (1 + exp(-x))
            gradient.data[i] = Float((weight * sigmoid - p * t) * scale)
        }
        return (total * scale, gradient)
    }

    /// Mean squared error (PyTorch's MSELoss): mean (y - t)²; gradient 2 (y - t) / (N K).
    public static func meanSquaredError(_ outputs: Tensor, targets: [Float]) -> (loss: Double, gradient: Tensor) {
        precondition(targets.count == outputs.count, "one target per output")
        var gradient = Tensor(zeros: outputs.shape)
        var total = 0.0
        let scale = 1 / Double(outputs.count)
        for i in 0..<outputs.count {
            let d = Double(outputs.data[i]) - Double(targets[i])
            total += d * d
            gradient.data[i] = Float(2 * d * scale)
        }
        return (total * scale, gradient)
    }

    /// σ(x), the probability a classifier reports for a logit.
    public static func sigmoid(_ x: Float) -> Float { Float(1 / (1 + exp(-Double(x)))) }
}

import Foundation
import IECore

/// A loss value and its gradient with respect to the logits.
public struct LossResult {
    public var value: Double
    public var gradLogits: Tensor
}

/// InnerEye's segmentation losses on logits [N, C, ...] and one-hot targets of the same shape.
/// The network outputs logits; each loss applies the channel softmax itself, as InnerEye does.
public indirect enum SegmentationLoss {
    /// SoftDiceLoss: 1 - 2 * mean_c (w_c*I_c + eps) / (sum p^2 + sum t^2 + eps), sums over batch and space,
    /// background included; class weights (only when power is set and non-zero) multiply the intersection.
    case softDice(eps: Double = 1e-5, classWeightPower: Double? = nil)
    /// Multi-class cross entropy, mean over voxels, optional class weights ~ (1/count_c)^power (mean weight 1).
    case crossEntropy(classWeightPower: Double? = nil)
    /// Cross entropy with focal pixel weights (1 - p_target + 1e-6)^gamma, normalised to mean 1 and treated as
    /// constants in the gradient (InnerEye computes them under no_grad).
    case focal(gamma: Double = 1.0, classWeightPower: Double? = nil)
    /// Weighted sum of components.
    case mixture([(weight: Double, loss: SegmentationLoss)])

    /// InnerEye's loss_type names: "SoftDice", "CrossEntropy", "Focal" (Mixture is built with `.mixture`).
    /// `classWeightPower` is loss_class_weight_power (nil or 0: no class weights), `focalGamma` focal_loss_gamma.
    public static func named(_ lossType: String, classWeightPower: Double? = nil,
                             focalGamma: Double = 1.0) throws -> SegmentationLoss {
        switch lossType {
        case "SoftDice": return .softDice(classWeightPower: classWeightPower)
        case "CrossEntropy": return .crossEntropy(classWeightPower: classWeightPower)
        case "Focal": return .focal(gamma: focalGamma, classWeightPower: classWeightPower)
        default:
            throw IEError.badInput("loss_type \(lossType): expected SoftDice, CrossEntropy, Focal or Mixture")
        }
    }

    public func evaluate(logits: Tensor, target: Tensor) -> LossResult {
        precondition(logits.shape == target.shape, "loss: logits \(logits.shape) and target \(target.shape) differ")
        let probabilities = softmaxChannels(logits)
        return evaluate(logits: logits, probabilities: probabilities, target: target)
    }

    func evaluate(logits: Tensor, probabilities: Tensor, target: Tensor) -> LossResult {
        switch self {
        case .softDice(let eps, let power):
            return softDiceLoss(probabilities: probabilities, target: target, eps: eps, classWeightPower: power)
        case .crossEntropy(let power):
            return crossEntropyLoss(logits: logits, probabilities: probabilities, target: target,
                                    classWeightPower: power, focalGamma: nil)
        case .focal(let gamma, let power):
            return crossEntropyLoss(logits: logits, probabilities: probabilities, target: target,
                                    classWeightPower: power, focalGamma: gamma)
        case .mixture(let components):
            precondition(!components.isEmpty, "mixture loss needs at least one component")
            var value = 0.0
            var grad = Tensor(zeros: logits.shape)
            for (weight, loss) in components {
                let r = loss.evaluate(logits: logits, probabilities: probabilities, target: target)
                value += weight * r.value
                let w = Float(weight)
                for i in 0..<grad.count { grad.data[i] += w * r.gradLogits.data[i] }
            }
            return LossResult(value: value, gradLogits: grad)
        }
    }
}

/// Class weights as InnerEye's get_class_weights_from_counts: counts of 0 become 1, w_c = count_c^(-power),
/// normalised so the weights average 1.
public func classWeightsFromCounts(_ counts: [Double], power: Double) -> [Double] {
    let weights = counts.map { pow($0 == 0 ? 1 : $0, -power) }
    let total = weights.reduce(0, +)
    return weights.map { $0 * Double(weights.count) / total }
}

func classCounts(_ target: Tensor) -> [Double] {
    let n = target.batch, c = target.channels, s = target.spatialCount
    var counts = [Double](repeating: 0, count: c)
    target.data.withUnsafeBufferPointer { tp in
        for b in 0..<n { for k in 0..<c { counts[k] += simdSum(tp.baseAddress! + (b * c + k) * s, s) } }
    }
    return counts
}

/// Backpropagates d(loss)/d(probabilities) through the channel softmax: g_j = p_j (d_j - sum_k p_k d_k).
func softmaxBackward(probabilities p: Tensor, gradProbabilities d: Tensor) -> Tensor {
    let n = p.batch, c = p.channels, s = p.spatialCount
    var g = Tensor(uninitialized: p.shape)
    for b in 0..<n {
        let base = b * c * s
        for i in 0..<s {
            var dot: Float = 0
            for k in 0..<c { dot += p.data[base + k * s + i] * d.data[base + k * s + i] }
            for k in 0..<c {
                let idx = base + k * s + i
                g.data[idx] = p.data[idx] * (d.data[idx] - dot)
            }
        }
    }
    return g
}

func softDiceLoss(probabilities p: Tensor, target t: Tensor, eps: Double, classWeightPower: Double?) -> LossResult {
    let n = p.batch, c = p.channels, s = p.spatialCount
    var intersection = [Double](repeating: 0, count: c)
    var outputSquares = [Double](repeating: 0, count: c)
    var targetSquares = [Double](repeating: 0, count: c)
    for b in 0..<n {
        for k in 0..<c {
            let off = (b * c + k) * s
            var i1 = 0.0, o2 = 0.0, t2 = 0.0
            for i in 0..<s {
                let pv = Double(p.data[off + i]), tv = Double(t.data[off + i])
                i1 += pv * tv; o2 += pv * pv; t2 += tv * tv
            }
            intersection[k] += i1; outputSquares[k] += o2; targetSquares[k] += t2
        }
    }
    var weights = [Double](repeating: 1, count: c)
    if let power = classWeightPower, power != 0 { weights = classWeightsFromCounts(classCounts(t), power: power) }
    var ratioSum = 0.0
    var coefficientTarget = [Float](repeating: 0, count: c)  // d loss / d p = a_c * t + b_c * p
    var coefficientOutput = [Float](repeating: 0, count: c)
    for k in 0..<c {
        let numerator = weights[k] * intersection[k] + eps
        let denominator = outputSquares[k] + targetSquares[k] + eps
        ratioSum += numerator / denominator
        coefficientTarget[k] = Float(-2.0 / Double(c) * weights[k] / denominator)
        coefficientOutput[k] = Float(-2.0 / Double(c) * (-numerator * 2 / (denominator * denominator)))
    }
    let value = 1 - 2 * ratioSum / Double(c)
    var gradP = Tensor(uninitialized: p.shape)
    for b in 0..<n {
        for k in 0..<c {
            let off = (b * c + k) * s
            let a = coefficientTarget[k], bb = coefficientOutput[k]
            for i in 0..<s { gradP.data[off + i] = a * t.data[off + i] + bb * p.data[off + i] }
        }
    }
    return LossResult(value: value, gradLogits: softmaxBackward(probabilities: p, gradProbabilities: gradP))
}

func crossEntropyLoss(logits: Tensor, probabilities p: Tensor, target t: Tensor, classWeightPower: Double?,
                      focalGamma: Double?) -> LossResult {
    let n = p.batch, c = p.channels, s = p.spatialCount
    let voxels = n * s
    var weights = [Double](repeating: 1, count: c)
    if let power = classWeightPower, power != 0 { weights = classWeightsFromCounts(classCounts(t), power: power) }
    // Target class per voxel: argmax of the one-hot target (first maximum, as torch.argmax).
    var labels = [Int](repeating: 0, count: voxels)
    for b in 0..<n {
        for i in 0..<s {
            var best = 0
            var bestValue = t.data[b * c * s + i]
            for k in 1..<max(c, 1) where t.data[(b * c + k) * s + i] > bestValue {
                best = k; bestValue = t.data[(b * c + k) * s + i]
            }
            labels[b * s + i] = best
        }
    }
    var pixelWeights = [Double](repeating: 1, count: voxels)
    if let gamma = focalGamma {
        var total = 0.0
        for b in 0..<n {
            for i in 0..<s {
                let pt = Double(p.data[(b * c + labels[b * s + i]) * s + i])
                let w = pow(1 - pt + 1e-6, gamma)
                pixelWeights[b * s + i] = w
                total += w
            }
        }
        let scaling = Double(voxels) / (total + 1e-6)
        for i in 0..<voxels { pixelWeights[i] *= scaling }
    }
    var value = 0.0
    var grad = Tensor(uninitialized: p.shape)
    for b in 0..<n {
        for i in 0..<s {
            let label = labels[b * s + i]
            let w = weights[label] * pixelWeights[b * s + i]
            // log-softmax from the logits (stable: no log of an underflowed probability).
            var m = -Double.infinity
            for k in 0..<c { m = max(m, Double(logits.data[(b * c + k) * s + i])) }
            var sumExp = 0.0
            for k in 0..<c { sumExp += exp(Double(logits.data[(b * c + k) * s + i]) - m) }
            let logP = Double(logits.data[(b * c + label) * s + i]) - m - log(sumExp)
            value += -w * logP
            let scale = Float(w / Double(voxels))
            for k in 0..<c {
                let idx = (b * c + k) * s + i
                grad.data[idx] = scale * (p.data[idx] - (k == label ? 1 : 0))
            }
        }
    }
    return LossResult(value: value / Double(voxels), gradLogits: grad)
}

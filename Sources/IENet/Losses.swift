import Foundation
import IECore

/// A loss value and its gradient with respect to the logits.
public struct LossResult {
    public var value: Double
    public var gradLogits: Tensor
}

/// InnerEye's segmentation losses (ML/models/losses, built as utils/model_util.create_segmentation_loss_function)
/// on logits [N, C, ...] and one-hot targets of the same shape. The network outputs logits; each loss applies the
/// channel softmax itself, as InnerEye does. Exact formulas: SPEC §4.2.
public indirect enum SegmentationLoss {
    /// SoftDiceLoss: per crop b and class c, I = sum_x (p t + eps), O = sum_x (p^2 + eps), T = sum_x (t^2 + eps)
    /// (eps added at every voxel, so each sum carries |x| * eps), I multiplied by the class weight w_c (only when the
    /// power is set and non-zero; weights from the whole batch's target), loss = 1 - 2 mean_{b,c} I / (O + T).
    /// Background included; no label smoothing (InnerEye builds SoftDice without it).
    case softDice(eps: Double = 1e-10, classWeightPower: Double? = nil)
    /// CrossEntropyLoss: per voxel -w_y log p_y (y = argmax of the target; w = class weights, 1 without a power),
    /// mean over all voxels of the batch. With label smoothing eps_s > 0 the target becomes
    /// t (1 - eps_s) + (1 - t) eps_s / (C - 1) and the per-voxel loss -sum_c w_c t_c log p_c (without class
    /// weights InnerEye's mean also runs over the classes: that sum / C).
    case crossEntropy(classWeightPower: Double? = nil, smoothingEps: Double = 0)
    /// Cross entropy with focal pixel weights (1 - p_target + 1e-6)^gamma, normalised to mean 1 and treated as
    /// constants in the gradient (InnerEye computes them under no_grad). InnerEye refuses label smoothing here.
    case focal(gamma: Double = 1.0, classWeightPower: Double? = nil)
    /// Weighted sum of components, the weights renormalised to sum to 1 (as create_segmentation_loss_function).
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

    public func evaluate(logits: Tensor, target: Tensor, threads: Int = 1) -> LossResult {
        precondition(logits.shape == target.shape, "loss: logits \(logits.shape) and target \(target.shape) differ")
        let probabilities = softmaxChannels(logits, threads: threads)
        return evaluate(logits: logits, probabilities: probabilities, target: target)
    }

    func evaluate(logits: Tensor, probabilities: Tensor, target: Tensor) -> LossResult {
        switch self {
        case .softDice(let eps, let power):
            return softDiceLoss(probabilities: probabilities, target: target, eps: eps, classWeightPower: power)
        case .crossEntropy(let power, let smoothingEps):
            if smoothingEps > 0 {
                return smoothedCrossEntropyLoss(logits: logits, probabilities: probabilities,
                                                target: smoothTarget(target, eps: smoothingEps), classWeightPower: power)
            }
            return crossEntropyLoss(logits: logits, probabilities: probabilities, target: target,
                                    classWeightPower: power, focalGamma: nil)
        case .focal(let gamma, let power):
            return crossEntropyLoss(logits: logits, probabilities: probabilities, target: target,
                                    classWeightPower: power, focalGamma: gamma)
        case .mixture(let components):
            precondition(!components.isEmpty, "mixture loss needs at least one component")
            let totalWeight = components.reduce(0) { $0 + $1.weight }
            precondition(totalWeight > 0, "mixture loss weights must sum to a positive number")
            var value = 0.0
            var grad = Tensor(zeros: logits.shape)
            for (weight, loss) in components {
                let normalisedWeight = weight / totalWeight
                let r = loss.evaluate(logits: logits, probabilities: probabilities, target: target)
                value += normalisedWeight * r.value
                let w = Float(normalisedWeight)
                for i in 0..<grad.count { grad.data[i] += w * r.gradLogits.data[i] }
            }
            return LossResult(value: value, gradLogits: grad)
        }
    }
}

/// InnerEye's label smoothing (SupervisedLearningCriterion): 1 becomes 1 - eps, 0 becomes eps / (C - 1).
func smoothTarget(_ target: Tensor, eps: Double) -> Tensor {
    let c = target.channels
    precondition(c > 1, "label smoothing needs at least two classes")
    let on = Float(1 - eps), off = Float(eps / Double(c - 1))
    var smoothed = target
    for i in 0..<smoothed.count { smoothed.data[i] = target.data[i] * on + (1 - target.data[i]) * off }
    return smoothed
}

/// Class weights as InnerEye's get_class_weights (utils/image_util): counts of 0 become 1, w_c = count_c^(-power),
/// normalised so the weights average 1.
public func classWeightsFromCounts(_ counts: [Double], power: Double) -> [Double] {
    let weights = counts.map { pow($0 == 0 ? 1 : $0, -power) }
    let total = weights.reduce(0, +)
    return weights.map { $0 * Double(weights.count) / total }
}

func classCounts(_ target: Tensor) -> [Double] {
    let n = target.batch, c = target.channels, s = target.spatialCount
    var counts = [Double](repeating: 0, count: c)
    target.withPointer { t in
        for b in 0..<n { for k in 0..<c { counts[k] += simdSum(t + (b * c + k) * s, s) } }
    }
    return counts
}

/// InnerEye's get_class_weights on the batch's target, or all 1 when the power is nil or 0.
func lossClassWeights(_ target: Tensor, power: Double?) -> [Double] {
    guard let power, power != 0 else { return [Double](repeating: 1, count: target.channels) }
    return classWeightsFromCounts(classCounts(target), power: power)
}

// The losses below obtain their tensors' pointers once and call one kernel (bottom of the file) per pass.

func softDiceLoss(probabilities p: Tensor, target t: Tensor, eps: Double, classWeightPower: Double?) -> LossResult {
    let weights = lossClassWeights(t, power: classWeightPower)
    var gradP = Tensor(uninitialized: p.shape)
    let ratioSum = p.withPointer { pp in
        t.withPointer { tp in
            gradP.withMutablePointer { gp in
                softDiceKernel(probabilities: pp, target: tp, gradProbabilities: gp, classWeights: weights,
                               eps: eps, batch: p.batch, classes: p.channels, spatial: p.spatialCount)
            }
        }
    }
    let value = 1 - 2 * ratioSum / Double(p.batch * p.channels)
    return LossResult(value: value, gradLogits: softmaxBackward(probabilities: p, gradProbabilities: gradP))
}

/// Backpropagates d(loss)/d(probabilities) through the channel softmax: g_j = p_j (d_j - sum_k p_k d_k).
func softmaxBackward(probabilities p: Tensor, gradProbabilities d: Tensor) -> Tensor {
    var g = Tensor(uninitialized: p.shape)
    p.withPointer { pp in
        d.withPointer { dp in
            g.withMutablePointer { gp in
                softmaxBackwardKernel(probabilities: pp, gradProbabilities: dp, gradLogits: gp, batch: p.batch,
                                      classes: p.channels, spatial: p.spatialCount)
            }
        }
    }
    return g
}

/// InnerEye's CrossEntropyLoss with label smoothing (smoothing_eps > 0) on the smoothed target: with class weights
/// (from the smoothed target's sums) the per-voxel loss -sum_c w_c t_c log p_c, averaged over voxels; without them
/// InnerEye averages -t_c log p_c over voxels and classes, i.e. the same sum divided by C as well.
func smoothedCrossEntropyLoss(logits: Tensor, probabilities p: Tensor, target t: Tensor,
                              classWeightPower: Double?) -> LossResult {
    let weighted = classWeightPower.map { $0 != 0 } ?? false
    let voxels = Double(p.batch * p.spatialCount) * (weighted ? 1 : Double(p.channels))
    let weights = lossClassWeights(t, power: classWeightPower)
    var grad = Tensor(uninitialized: p.shape)
    let sum = logits.withPointer { lp in
        p.withPointer { pp in
            t.withPointer { tp in
                grad.withMutablePointer { gp in
                    smoothedCrossEntropyKernel(logits: lp, probabilities: pp, target: tp, gradLogits: gp,
                                               classWeights: weights, voxels: voxels, batch: p.batch,
                                               classes: p.channels, spatial: p.spatialCount)
                }
            }
        }
    }
    return LossResult(value: sum / voxels, gradLogits: grad)
}

func crossEntropyLoss(logits: Tensor, probabilities p: Tensor, target t: Tensor, classWeightPower: Double?,
                      focalGamma: Double?) -> LossResult {
    let n = p.batch, c = p.channels, s = p.spatialCount
    let voxels = n * s
    let weights = lossClassWeights(t, power: classWeightPower)
    var labels = [Int](repeating: 0, count: voxels)
    var pixelWeights = [Double](repeating: 1, count: voxels)
    p.withPointer { pp in
        t.withPointer { tp in
            argmaxLabelsKernel(target: tp, labels: &labels, batch: n, classes: c, spatial: s)
            if let gamma = focalGamma {
                focalPixelWeightsKernel(probabilities: pp, labels: labels, pixelWeights: &pixelWeights, gamma: gamma,
                                        batch: n, classes: c, spatial: s)
            }
        }
    }
    var grad = Tensor(uninitialized: p.shape)
    let sum = logits.withPointer { lp in
        p.withPointer { pp in
            grad.withMutablePointer { gp in
                crossEntropyKernel(logits: lp, probabilities: pp, labels: labels, pixelWeights: pixelWeights,
                                   classWeights: weights, gradLogits: gp, batch: n, classes: c, spatial: s)
            }
        }
    }
    return LossResult(value: sum / Double(voxels), gradLogits: grad)
}

// MARK: - Loss kernels (NC + spatial layout; sums in Double, in voxel order)

/// Soft Dice per crop b and class k: writes d loss / d p and returns the sum of the ratios w_k I / (O + T).
/// eps is added at each of the s voxels of each sum (InnerEye: torch.sum(x + eps, spatial axes)).
func softDiceKernel(probabilities p: UnsafePointer<Float>, target t: UnsafePointer<Float>,
                    gradProbabilities g: UnsafeMutablePointer<Float>, classWeights weights: UnsafePointer<Double>,
                    eps: Double, batch n: Int, classes c: Int, spatial s: Int) -> Double {
    let voxelEps = Double(s) * eps
    let ratios = Double(n * c)
    var ratioSum = 0.0
    for b in 0..<n {
        for k in 0..<c {
            let off = (b * c + k) * s
            var i1 = 0.0, o2 = 0.0, t2 = 0.0
            for i in 0..<s {
                let pv = Double(p[off + i]), tv = Double(t[off + i])
                i1 += pv * tv; o2 += pv * pv; t2 += tv * tv
            }
            let numerator = weights[k] * (i1 + voxelEps)
            let denominator = (o2 + voxelEps) + (t2 + voxelEps)
            let ratio = numerator / denominator
            ratioSum += ratio
            // d loss / d p = -2 / (N C) * (w t / D - 2 ratio p / D)
            let coefficientTarget = Float(-2 / ratios * weights[k] / denominator)
            let coefficientOutput = Float(-2 / ratios * (-2 * ratio / denominator))
            for i in 0..<s { g[off + i] = coefficientTarget * t[off + i] + coefficientOutput * p[off + i] }
        }
    }
    return ratioSum
}

/// g_j = p_j (d_j - sum_k p_k d_k) per voxel.
func softmaxBackwardKernel(probabilities p: UnsafePointer<Float>, gradProbabilities d: UnsafePointer<Float>,
                           gradLogits g: UnsafeMutablePointer<Float>, batch n: Int, classes c: Int, spatial s: Int) {
    for b in 0..<n {
        let base = b * c * s
        for i in 0..<s {
            var dot: Float = 0
            for k in 0..<c { dot += p[base + k * s + i] * d[base + k * s + i] }
            for k in 0..<c {
                let idx = base + k * s + i
                g[idx] = p[idx] * (d[idx] - dot)
            }
        }
    }
}

/// Stable log-softmax of one voxel's logits: log p_k for k in 0..<c.
@inline(__always)
func logSoftmax(_ logits: UnsafePointer<Float>, base: Int, stride s: Int, classes c: Int,
                into out: UnsafeMutablePointer<Double>) {
    var m = -Double.infinity
    for k in 0..<c { m = max(m, Double(logits[base + k * s])) }
    var sumExp = 0.0
    for k in 0..<c { sumExp += exp(Double(logits[base + k * s]) - m) }
    let logSum = m + log(sumExp)
    for k in 0..<c { out[k] = Double(logits[base + k * s]) - logSum }
}

/// Cross entropy against a soft target: writes d/dz_j = (p_j sum_c w_c t_c - w_j t_j) / voxels and returns
/// -sum w_c t_c log p_c over all voxels.
func smoothedCrossEntropyKernel(logits: UnsafePointer<Float>, probabilities p: UnsafePointer<Float>,
                                target t: UnsafePointer<Float>, gradLogits g: UnsafeMutablePointer<Float>,
                                classWeights weights: UnsafePointer<Double>, voxels: Double, batch n: Int,
                                classes c: Int, spatial s: Int) -> Double {
    var logP = [Double](repeating: 0, count: c)
    var value = 0.0
    for b in 0..<n {
        for i in 0..<s {
            let base = b * c * s + i
            logSoftmax(logits, base: base, stride: s, classes: c, into: &logP)
            var weightedTargetSum = 0.0
            for k in 0..<c {
                let wt = weights[k] * Double(t[base + k * s])
                value -= wt * logP[k]
                weightedTargetSum += wt
            }
            for k in 0..<c {
                let idx = base + k * s
                g[idx] = Float((Double(p[idx]) * weightedTargetSum - weights[k] * Double(t[idx])) / voxels)
            }
        }
    }
    return value
}

/// Target class per voxel: argmax of the one-hot target (first maximum, as torch.argmax).
func argmaxLabelsKernel(target t: UnsafePointer<Float>, labels: UnsafeMutablePointer<Int>, batch n: Int,
                        classes c: Int, spatial s: Int) {
    for b in 0..<n {
        for i in 0..<s {
            var best = 0
            var bestValue = t[b * c * s + i]
            for k in 1..<max(c, 1) where t[(b * c + k) * s + i] > bestValue {
                best = k; bestValue = t[(b * c + k) * s + i]
            }
            labels[b * s + i] = best
        }
    }
}

/// Focal pixel weights (1 - p_label + 1e-6)^gamma, scaled to mean 1.
func focalPixelWeightsKernel(probabilities p: UnsafePointer<Float>, labels: UnsafePointer<Int>,
                             pixelWeights: UnsafeMutablePointer<Double>, gamma: Double, batch n: Int, classes c: Int,
                             spatial s: Int) {
    var total = 0.0
    for b in 0..<n {
        for i in 0..<s {
            let pt = Double(p[(b * c + labels[b * s + i]) * s + i])
            let w = pow(1 - pt + 1e-6, gamma)
            pixelWeights[b * s + i] = w
            total += w
        }
    }
    let scaling = Double(n * s) / (total + 1e-6)
    for i in 0..<n * s { pixelWeights[i] *= scaling }
}

/// Cross entropy against class labels, per voxel weighted by class weight x pixel weight: writes
/// d/dz_k = w (p_k - [k = label]) / voxels and returns -sum w log p_label over all voxels.
func crossEntropyKernel(logits: UnsafePointer<Float>, probabilities p: UnsafePointer<Float>,
                        labels: UnsafePointer<Int>, pixelWeights: UnsafePointer<Double>,
                        classWeights weights: UnsafePointer<Double>, gradLogits g: UnsafeMutablePointer<Float>,
                        batch n: Int, classes c: Int, spatial s: Int) -> Double {
    let voxels = n * s
    var value = 0.0
    var logP = [Double](repeating: 0, count: c)
    for b in 0..<n {
        for i in 0..<s {
            let label = labels[b * s + i]
            let w = weights[label] * pixelWeights[b * s + i]
            // log-softmax from the logits (stable: no log of an underflowed probability).
            logSoftmax(logits, base: b * c * s + i, stride: s, classes: c, into: &logP)
            value += -w * logP[label]
            let scale = Float(w / Double(voxels))
            for k in 0..<c {
                let idx = (b * c + k) * s + i
                g[idx] = scale * (p[idx] - (k == label ? 1 : 0))
            }
        }
    }
    return value
}

import Foundation
import IECore

public enum OptimizerKind: String, CaseIterable {
    case adam = "Adam", amsgrad = "AMSGrad", sgd = "SGD", rmsprop = "RMSprop"
}

/// Hyper-parameters with InnerEye's defaults (adam_betas, opt_eps, weight_decay, momentum, rms_alpha).
public struct OptimizerSettings {
    public var betas: (Double, Double) = (0.9, 0.999)
    public var eps: Double = 1e-4
    public var weightDecay: Double = 1e-4
    public var momentum: Double = 0.6
    public var nesterov: Bool = false
    public var rmsAlpha: Double = 0.9
    public init(betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-4, weightDecay: Double = 1e-4,
                momentum: Double = 0.6, nesterov: Bool = false, rmsAlpha: Double = 0.9) {
        self.betas = betas; self.eps = eps; self.weightDecay = weightDecay
        self.momentum = momentum; self.nesterov = nesterov; self.rmsAlpha = rmsAlpha
    }
}

/// Optimizers over a flat parameter list with PyTorch's update rules (torch.optim.Adam(amsgrad:), SGD with
/// momentum/Nesterov and dampening 0, RMSprop non-centred). weight_decay is L2 added to the gradient.
public final class Optimizer {
    public let kind: OptimizerKind
    public let parameters: [Parameter]
    public var settings: OptimizerSettings
    /// Number of steps taken (PyTorch's `step` state; Adam's bias correction uses it).
    public private(set) var stepCount: Int = 0
    /// Per parameter, its slot buffers in `slotNames` order (e.g. "exp_avg", "exp_avg_sq").
    private var slots: [SlotBuffers]

    public init(kind: OptimizerKind, parameters: [Parameter], settings: OptimizerSettings = OptimizerSettings()) {
        self.kind = kind
        self.parameters = parameters
        self.settings = settings
        let slotCount = Optimizer.slotNames(kind, settings).count
        self.slots = parameters.map { SlotBuffers(slots: slotCount, count: $0.count) }
    }

    static func slotNames(_ kind: OptimizerKind, _ settings: OptimizerSettings) -> [String] {
        switch kind {
        case .adam: return ["exp_avg", "exp_avg_sq"]
        case .amsgrad: return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
        case .sgd: return settings.momentum != 0 ? ["momentum_buffer"] : []
        case .rmsprop: return settings.momentum > 0 ? ["square_avg", "momentum_buffer"] : ["square_avg"]
        }
    }

    public var slotNames: [String] { Optimizer.slotNames(kind, settings) }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// One update of every parameter from its accumulated gradient.
    public func step(lr: Double) {
        stepCount += 1
        let t = Double(stepCount)
        let lr = Float(lr)
        let wd = Float(settings.weightDecay)
        let firstStep = stepCount == 1
        let kind = self.kind, settings = self.settings
        let slotCount = slotNames.count
        for (p, state) in zip(parameters, slots) {
            let n = p.count  // read before withUpdatePointers holds the value for writing
            state.ensure(slots: slotCount, count: n)
            p.withUpdatePointers { value, grad in
                switch kind {
                case .adam, .amsgrad:
                    let stepSize = lr / Float(1 - pow(settings.betas.0, t))
                    let correction2Root = Float((1 - pow(settings.betas.1, t)).squareRoot())
                    let b1 = Float(settings.betas.0), b2 = Float(settings.betas.1), eps = Float(settings.eps)
                    if kind == .amsgrad {
                        adamStepKernel(value: value, grad: grad, expAvg: &state.first, expAvgSq: &state.second,
                                       maxExpAvgSq: &state.third, count: n, stepSize: stepSize, beta1: b1,
                                       beta2: b2, correction2Root: correction2Root, eps: eps, weightDecay: wd)
                    } else {
                        adamStepKernel(value: value, grad: grad, expAvg: &state.first, expAvgSq: &state.second,
                                       maxExpAvgSq: nil, count: n, stepSize: stepSize, beta1: b1,
                                       beta2: b2, correction2Root: correction2Root, eps: eps, weightDecay: wd)
                    }
                case .sgd:
                    let mu = Float(settings.momentum)
                    if mu != 0 {
                        sgdStepKernel(value: value, grad: grad, momentumBuffer: &state.first, count: n, lr: lr,
                                      weightDecay: wd, momentum: mu, nesterov: settings.nesterov, firstStep: firstStep)
                    } else {
                        sgdStepKernel(value: value, grad: grad, momentumBuffer: nil, count: n, lr: lr,
                                      weightDecay: wd, momentum: mu, nesterov: settings.nesterov, firstStep: firstStep)
                    }
                case .rmsprop:
                    let alpha = Float(settings.rmsAlpha), eps = Float(settings.eps), mu = Float(settings.momentum)
                    if mu > 0 {
                        rmspropStepKernel(value: value, grad: grad, squareAvg: &state.first,
                                          momentumBuffer: &state.second, count: n, lr: lr, weightDecay: wd,
                                          alpha: alpha, eps: eps, momentum: mu)
                    } else {
                        rmspropStepKernel(value: value, grad: grad, squareAvg: &state.first, momentumBuffer: nil,
                                          count: n, lr: lr, weightDecay: wd, alpha: alpha, eps: eps,
                                          momentum: mu)
                    }
                }
            }
        }
    }

    /// State as `optimizer/<parameter name>/<slot>` tensors (parameter shapes, F32).
    public func stateTensors() -> [NamedTensor] {
        var out: [NamedTensor] = []
        for (p, state) in zip(parameters, slots) {
            for (k, name) in slotNames.enumerated() {
                out.append(NamedTensor(name: "optimizer/\(p.name)/\(name)", shape: p.shape, float32: state[k]))
            }
        }
        return out
    }

    /// Restores state written by `stateTensors()` (extra tensors are ignored; missing or misshaped ones are errors).
    public func loadState(_ tensors: [NamedTensor], stepCount: Int, source: String = "checkpoint") throws {
        var byName: [String: NamedTensor] = [:]
        for t in tensors { byName[t.name.hasPrefix("model.") ? String(t.name.dropFirst(6)) : t.name] = t }
        let names = slotNames
        var restored: [SlotBuffers] = []
        var missing: [String] = []
        for p in parameters {
            let state = SlotBuffers(slots: 0, count: 0)
            for (k, name) in names.enumerated() {
                let key = "optimizer/\(p.name)/\(name)"
                guard let t = byName[key] else { missing.append(key); continue }
                guard t.shape == p.shape else {
                    throw IEError.badInput("\(source): \(key) has shape \(t.shape), expected \(p.shape)")
                }
                state[k] = try t.floatValues(source: source)
            }
            restored.append(state)
        }
        if !missing.isEmpty {
            throw IEError.badInput("\(source): \(kind.rawValue) optimizer state missing: "
                                   + missing.prefix(5).joined(separator: ", ")
                                   + (missing.count > 5 ? " (+\(missing.count - 5) more)" : ""))
        }
        slots = restored
        self.stepCount = stepCount
    }
}

/// One parameter's optimizer state: up to three slot buffers, in `slotNames` order. Separate stored properties,
/// so that a step can hand all of them to one kernel.
private final class SlotBuffers {
    var first: [Float] = [], second: [Float] = [], third: [Float] = []

    init(slots: Int, count: Int) { ensure(slots: slots, count: count) }

    /// Zero-filled buffers for the first `slots` slots that have none of `count` values yet.
    func ensure(slots: Int, count: Int) {
        for k in 0..<min(slots, 3) where self[k].count != count { self[k] = [Float](repeating: 0, count: count) }
    }

    subscript(index: Int) -> [Float] {
        get { index == 0 ? first : index == 1 ? second : third }
        set {
            switch index {
            case 0: first = newValue
            case 1: second = newValue
            default: third = newValue
            }
        }
    }
}

// MARK: - Update kernels (PyTorch's rules; weight decay is L2 added to the gradient)

/// Adam (AMSGrad when `maxExpAvgSq` is given): stepSize = lr / (1 - beta1^t), correction2Root = sqrt(1 - beta2^t).
func adamStepKernel(value: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>, expAvg m: UnsafeMutablePointer<Float>,
                    expAvgSq v: UnsafeMutablePointer<Float>, maxExpAvgSq: UnsafeMutablePointer<Float>?, count n: Int,
                    stepSize: Float, beta1 b1: Float, beta2 b2: Float, correction2Root: Float, eps: Float,
                    weightDecay wd: Float) {
    if let vmax = maxExpAvgSq {
        for i in 0..<n {
            let g = grad[i] + wd * value[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            vmax[i] = max(vmax[i], v[i])
            value[i] -= stepSize * m[i] / (vmax[i].squareRoot() / correction2Root + eps)
        }
    } else {
        // 16 lanes at a time: the compiler cannot vectorize the scalar loop (the four buffers might alias), and its
        // division and square root per element made Adam 0.12 s of a 2.6 s UNet step. The same operations in the
        // same order per lane: the bits equal the scalar loop's (tail) for every element.
        typealias Lanes = SIMD16<Float>
        let width = Lanes.scalarCount
        let (oneMinusB1, oneMinusB2) = (1 - b1, 1 - b2)
        var i = 0
        while i + width <= n {
            let (pv, pg, pm, ps) = (UnsafeMutableRawPointer(value + i), UnsafeRawPointer(grad + i),
                                    UnsafeMutableRawPointer(m + i), UnsafeMutableRawPointer(v + i))
            let x = pv.loadUnaligned(as: Lanes.self)
            let g = pg.loadUnaligned(as: Lanes.self) + wd * x
            let first = b1 * pm.loadUnaligned(as: Lanes.self) + oneMinusB1 * g
            let second = b2 * ps.loadUnaligned(as: Lanes.self) + oneMinusB2 * g * g
            let updated = x - stepSize * first / (second.squareRoot() / correction2Root + eps)
            pm.storeBytes(of: first, as: Lanes.self)
            ps.storeBytes(of: second, as: Lanes.self)
            pv.storeBytes(of: updated, as: Lanes.self)
            i += width
        }
        while i < n {
            let g = grad[i] + wd * value[i]
            m[i] = b1 * m[i] + oneMinusB1 * g
            v[i] = b2 * v[i] + oneMinusB2 * g * g
            value[i] -= stepSize * m[i] / (v[i].squareRoot() / correction2Root + eps)
            i += 1
        }
    }
}

/// SGD, with momentum (dampening 0, optionally Nesterov) when `momentumBuffer` is given.
func sgdStepKernel(value: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>,
                   momentumBuffer: UnsafeMutablePointer<Float>?, count n: Int, lr: Float, weightDecay wd: Float,
                   momentum mu: Float, nesterov: Bool, firstStep: Bool) {
    guard let buffer = momentumBuffer else {
        for i in 0..<n { value[i] -= lr * (grad[i] + wd * value[i]) }
        return
    }
    for i in 0..<n {
        let g = grad[i] + wd * value[i]
        buffer[i] = firstStep ? g : mu * buffer[i] + g
        let direction = nesterov ? g + mu * buffer[i] : buffer[i]
        value[i] -= lr * direction
    }
}

/// RMSprop (non-centred), with momentum when `momentumBuffer` is given.
func rmspropStepKernel(value: UnsafeMutablePointer<Float>, grad: UnsafePointer<Float>,
                       squareAvg square: UnsafeMutablePointer<Float>, momentumBuffer: UnsafeMutablePointer<Float>?,
                       count n: Int, lr: Float, weightDecay wd: Float, alpha: Float, eps: Float, momentum mu: Float) {
    for i in 0..<n {
        let g = grad[i] + wd * value[i]
        square[i] = alpha * square[i] + (1 - alpha) * g * g
        let average = square[i].squareRoot() + eps
        if let buffer = momentumBuffer {
            buffer[i] = mu * buffer[i] + g / average
            value[i] -= lr * buffer[i]
        } else {
            value[i] -= lr * g / average
        }
    }
}

/// Learning-rate schedules as InnerEye's SchedulerWithWarmUp (stepped once per epoch).
public enum LearningRateSchedule: Equatable {
    case polynomial(gamma: Double)
    case exponential(gamma: Double)
    case step(stepSize: Int, gamma: Double)
    case multiStep(milestones: [Int], gamma: Double)
    case cosine
}

/// The learning rate for the 0-based training epoch `epoch`. During `warmupEpochs` a linear warm-up
/// lr = l_rate*(e+1)/(W+1); afterwards the schedule runs on e' = e - W over E' = numEpochs - W epochs:
/// Polynomial l_rate*((1-x)*(1-e'/E')^gamma + x) with x = min_l_rate/l_rate; Exponential l_rate*gamma^e';
/// Step l_rate*gamma^floor(e'/stepSize); MultiStep l_rate*gamma^#(milestones <= e');
/// Cosine min + (l_rate-min)*(1+cos(pi*e'/E'))/2.
public func learningRate(epoch: Int, baseRate: Double, minRate: Double = 0, numEpochs: Int,
                         schedule: LearningRateSchedule, warmupEpochs: Int = 0) -> Double {
    let warmup = max(0, warmupEpochs)
    if epoch < warmup { return baseRate * Double(epoch + 1) / Double(warmup + 1) }
    let e = Double(epoch - warmup)
    let total = Double(max(1, numEpochs - warmup))
    switch schedule {
    case .polynomial(let gamma):
        let x = baseRate == 0 ? 0 : minRate / baseRate
        return baseRate * ((1 - x) * pow(max(0, 1 - e / total), gamma) + x)
    case .exponential(let gamma):
        return baseRate * pow(gamma, e)
    case .step(let stepSize, let gamma):
        return baseRate * pow(gamma, floor(e / Double(max(1, stepSize))))
    case .multiStep(let milestones, let gamma):
        return baseRate * pow(gamma, Double(milestones.filter { $0 <= epoch - warmup }.count))
    case .cosine:
        return minRate + (baseRate - minRate) * (1 + cos(Double.pi * e / total)) / 2
    }
}

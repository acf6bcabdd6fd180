import Foundation

/// How a convolution's weights start out.
public enum WeightInitialisation {
    /// kaiming_normal_(mode='fan_in', nonlinearity='relu'), bias zero: InnerEye's `initialise_layer_weights`.
    case kaimingNormal
    /// PyTorch's default for Conv3d/ConvTranspose3d: kaiming_uniform_(a=sqrt(5)) and a uniform bias,
    /// both bounded by 1/sqrt(fan_in). InnerEye leaves its ConvTranspose3d and output layer at this default.
    case pytorchDefault
}

// MARK: - Conv3d

/// 3D convolution, cubic kernel, zero padding. Weight [out, in, k, k, k] as PyTorch.
public final class Conv3d {
    public let weight: Parameter
    public let bias: Parameter?
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    let engine: Engine
    /// The backend for the last input shape (made again when the shape changes).
    private var plan: ConvPlan?
    private var savedInput: Tensor?

    public init(name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool, initialisation: WeightInitialisation = .kaimingNormal, rng: inout SeededGenerator,
                engine: Engine = Engine()) {
        self.engine = engine
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        let fanIn = inChannels * kernel * kernel * kernel
        let shape = [outChannels, inChannels, kernel, kernel, kernel]
        let values = initialWeights(count: shape.reduce(1, *), fanIn: fanIn, initialisation, &rng)
        weight = Parameter(name: name + ".weight", shape: shape, value: values)
        if bias {
            let b = initialBias(count: outChannels, fanIn: fanIn, initialisation, &rng)
            self.bias = Parameter(name: name + ".bias", shape: [outChannels], value: b)
        } else {
            self.bias = nil
        }
    }

    public var parameters: [Parameter] { bias.map { [weight, $0] } ?? [weight] }

    func geometry(_ x: Tensor) -> ConvGeometry {
        precondition(x.shape.count == 5 && x.shape[1] == inChannels,
                     "Conv3d \(weight.name): expected [N, \(inChannels), D, H, W], got \(x.shape)")
        return ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
                            padding: padding, inD: x.shape[2], inH: x.shape[3], inW: x.shape[4])
    }

    /// The plan for an input of x's shape: the one made for the previous input, or a new one.
    func plan(for x: Tensor) -> ConvPlan {
        let g = geometry(x)
        if let plan, plan.geometry == g, plan.batch == x.batch { return plan }
        let made = engine.plan(g, batch: x.batch, adjoint: false)
        plan = made
        return made
    }

    /// `saveForBackward` keeps a reference to the input (no copy) for `backward`.
    public func forward(_ x: Tensor, saveForBackward: Bool = true) -> Tensor {
        let plan = plan(for: x), g = plan.geometry
        var y = Tensor(uninitialized: [x.batch, outChannels, g.outD, g.outH, g.outW])
        plan.forward(x, weight: weight, into: &y, eval: !saveForBackward)
        if let bias { addChannelBias(&y, bias.value, threads: engine.threads) }
        savedInput = saveForBackward ? x : nil
        return y
    }

    /// Accumulates weight/bias gradients; returns the input gradient when asked for.
    @discardableResult
    public func backward(_ gradOutput: Tensor, inputGradient: Bool = true) -> Tensor? {
        guard let x = savedInput else { preconditionFailure("Conv3d \(weight.name): backward without forward") }
        var gradInput: Tensor? = inputGradient ? Tensor(uninitialized: x.shape) : nil
        plan(for: x).backward(x, weight: weight, gradOutput: gradOutput, gradInput: &gradInput)
        if let bias { accumulateChannelSums(gradOutput, into: &bias.grad, threads: engine.threads) }
        savedInput = nil
        return gradInput
    }
}

// MARK: - ConvTranspose3d

/// Transposed 3D convolution with bias. Weight [in, out, k, k, k] as PyTorch's ConvTranspose3d.
/// It is the adjoint of a Conv3d from `outChannels` to `inChannels` with the same weight tensor.
public final class ConvTranspose3d {
    public let weight: Parameter
    public let bias: Parameter
    public let inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    let engine: Engine
    private var plan: ConvPlan?
    private var savedInput: Tensor?

    public init(name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int,
                initialisation: WeightInitialisation = .pytorchDefault, rng: inout SeededGenerator,
                engine: Engine = Engine()) {
        self.engine = engine
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
        // PyTorch computes fan_in of a transposed conv weight from its dimension 1 (= out channels).
        let fanIn = outChannels * kernel * kernel * kernel
        let shape = [inChannels, outChannels, kernel, kernel, kernel]
        weight = Parameter(name: name + ".weight", shape: shape,
                           value: initialWeights(count: shape.reduce(1, *), fanIn: fanIn, initialisation, &rng))
        bias = Parameter(name: name + ".bias", shape: [outChannels],
                         value: initialBias(count: outChannels, fanIn: fanIn, initialisation, &rng))
    }

    public var parameters: [Parameter] { [weight, bias] }

    func outputSize(_ n: Int) -> Int { (n - 1) * stride - 2 * padding + kernel }

    /// The geometry of the convolution whose adjoint this layer is (its input = our output).
    func adjointGeometry(_ x: Tensor) -> ConvGeometry {
        precondition(x.shape.count == 5 && x.shape[1] == inChannels,
                     "ConvTranspose3d \(weight.name): expected [N, \(inChannels), D, H, W], got \(x.shape)")
        let g = ConvGeometry(inChannels: outChannels, outChannels: inChannels, kernel: kernel, stride: stride,
                             padding: padding, inD: outputSize(x.shape[2]), inH: outputSize(x.shape[3]),
                             inW: outputSize(x.shape[4]))
        precondition(g.outD == x.shape[2] && g.outH == x.shape[3] && g.outW == x.shape[4])
        return g
    }

    /// The plan for an input of x's shape (the adjoint of a convolution whose output has x's shape).
    func plan(for x: Tensor) -> ConvPlan {
        let g = adjointGeometry(x)
        if let plan, plan.geometry == g, plan.batch == x.batch { return plan }
        let made = engine.plan(g, batch: x.batch, adjoint: true)
        plan = made
        return made
    }

    public func forward(_ x: Tensor, saveForBackward: Bool = true) -> Tensor {
        let plan = plan(for: x), g = plan.geometry
        var y = Tensor(uninitialized: [x.batch, outChannels, g.inD, g.inH, g.inW])
        plan.adjointForward(x, weight: weight, into: &y)
        addChannelBias(&y, bias.value, threads: engine.threads)
        savedInput = saveForBackward ? x : nil
        return y
    }

    @discardableResult
    public func backward(_ gradOutput: Tensor, inputGradient: Bool = true) -> Tensor? {
        guard let x = savedInput else { preconditionFailure("ConvTranspose3d \(weight.name): backward without forward") }
        var gradInput: Tensor? = inputGradient ? Tensor(uninitialized: x.shape) : nil
        plan(for: x).adjointBackward(x, weight: weight, gradOutput: gradOutput, gradInput: &gradInput)
        accumulateChannelSums(gradOutput, into: &bias.grad, threads: engine.threads)
        savedInput = nil
        return gradInput
    }
}

// MARK: - BatchNorm3d (+ optional fused ReLU)

/// BatchNorm3d as PyTorch: training mode normalises with the batch statistics (biased variance) and updates
/// running_mean/running_var with momentum (unbiased variance); eval mode uses the running statistics.
/// With `fusedReLU` the layer computes relu(bn(x)) in one pass (the UNet always follows BN by ReLU).
public final class BatchNorm3d {
    public let weight: Parameter
    public let bias: Parameter
    public var runningMean: [Float]
    public var runningVar: [Float]
    public var numBatchesTracked: Int64 = 0
    public let name: String
    public let channels: Int
    public let momentum: Float
    public let eps: Float
    public let fusedReLU: Bool
    /// Threads of the per-channel loops (results do not depend on them).
    let threads: Int
    private var savedInput: Tensor?
    private var savedMean: [Float] = []
    private var savedInvStd: [Float] = []

    /// `weightInitStd` > 0 draws gamma ~ N(1, std) (InnerEye's init); 0 gives gamma = 1 (PyTorch default).
    public init(name: String, channels: Int, fusedReLU: Bool, weightInitStd: Double = 0,
                momentum: Float = 0.1, eps: Float = 1e-5, rng: inout SeededGenerator, threads: Int = 1) {
        self.name = name; self.channels = channels; self.fusedReLU = fusedReLU; self.threads = threads
        self.momentum = momentum; self.eps = eps
        var gamma = [Float](repeating: 1, count: channels)
        if weightInitStd > 0 {
            for c in 0..<channels { gamma[c] = Float(1 + weightInitStd * rng.nextNormal()) }
        }
        weight = Parameter(name: name + ".weight", shape: [channels], value: gamma)
        bias = Parameter(name: name + ".bias", shape: [channels], value: [Float](repeating: 0, count: channels))
        runningMean = [Float](repeating: 0, count: channels)
        runningVar = [Float](repeating: 1, count: channels)
    }

    public var parameters: [Parameter] { [weight, bias] }

    /// `x` is consumed: in eval mode a caller that passes its last reference (`consume`) gets the result in x's
    /// storage (an inference holds one activation less at a time: ~34 MB at the UNet's 64^3 level).
    public func forward(_ x: consuming Tensor, training: Bool) -> Tensor {
        precondition(x.shape.count >= 2 && x.shape[1] == channels, "BatchNorm3d \(name): bad input shape \(x.shape)")
        let batch = x.batch, spatial = x.spatialCount
        var mean = [Float](repeating: 0, count: channels)
        var invStd = [Float](repeating: 0, count: channels)
        if training {
            let count = batch * spatial
            var meanD = [Double](repeating: 0, count: channels)
            var variance = [Double](repeating: 0, count: channels)
            x.withPointer { xp in
                batchNormStatisticsKernel(input: xp, mean: &meanD, variance: &variance, channels: channels,
                                          spatial: spatial, batch: batch, threads: threads)
            }
            numBatchesTracked += 1
            for c in 0..<channels {
                mean[c] = Float(meanD[c])
                invStd[c] = Float(1 / (variance[c] + Double(eps)).squareRoot())
                let unbiased = count > 1 ? variance[c] * Double(count) / Double(count - 1) : variance[c]
                runningMean[c] = (1 - momentum) * runningMean[c] + momentum * Float(meanD[c])
                runningVar[c] = (1 - momentum) * runningVar[c] + momentum * Float(unbiased)
            }
            savedInput = x
            savedMean = mean
            savedInvStd = invStd
        } else {
            for c in 0..<channels {
                mean[c] = runningMean[c]
                invStd[c] = 1 / (runningVar[c] + eps).squareRoot()
            }
            savedInput = nil
        }
        if !training {
            // Element by element, each read before its write: the kernel may write over its input.
            var y = x
            y.withMutablePointer { yp in
                batchNormForwardKernel(input: yp, output: yp, mean: mean, invStd: invStd, gamma: weight.value,
                                       beta: bias.value, channels: channels, spatial: spatial, batch: batch,
                                       fusedReLU: fusedReLU, threads: threads)
            }
            return y
        }
        var y = Tensor(uninitialized: x.shape)
        x.withPointer { xp in
            y.withMutablePointer { yp in
                batchNormForwardKernel(input: xp, output: yp, mean: mean, invStd: invStd, gamma: weight.value,
                                       beta: bias.value, channels: channels, spatial: spatial, batch: batch,
                                       fusedReLU: fusedReLU, threads: threads)
            }
        }
        return y
    }

    /// Training-mode backward (batch statistics depend on the input).
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("BatchNorm3d \(name): backward without training forward") }
        var sumGrad = [Double](repeating: 0, count: channels)      // d beta
        var sumGradXhat = [Double](repeating: 0, count: channels)  // d gamma
        var gradInput = Tensor(uninitialized: x.shape)
        x.withPointer { xp in
            gradOutput.withPointer { gp in
                gradInput.withMutablePointer { dp in
                    batchNormBackwardKernel(input: xp, gradOutput: gp, gradInput: dp, mean: savedMean,
                                            invStd: savedInvStd, gamma: weight.value, beta: bias.value,
                                            sumGrad: &sumGrad, sumGradXhat: &sumGradXhat, channels: channels,
                                            spatial: x.spatialCount, batch: x.batch, fusedReLU: fusedReLU,
                                            threads: threads)
                }
            }
        }
        for c in 0..<channels {
            weight.grad[c] += Float(sumGradXhat[c])
            bias.grad[c] += Float(sumGrad[c])
        }
        savedInput = nil
        return gradInput
    }
}

// MARK: - ReLU, residual add, softmax

public final class ReLU {
    private var savedOutput: Tensor?
    let threads: Int
    public init(threads: Int = 1) { self.threads = threads }
    public func forward(_ x: Tensor, saveForBackward: Bool = true) -> Tensor {
        var y = x
        y.withMutablePointer { reluForwardKernel($0, count: x.count, threads: threads) }
        savedOutput = saveForBackward ? y : nil
        return y
    }
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = savedOutput else { preconditionFailure("ReLU: backward without forward") }
        var g = gradOutput
        y.withPointer { yp in g.withMutablePointer { reluBackwardKernel(output: yp, gradient: $0, count: y.count) } }
        savedOutput = nil
        return g
    }
}

/// Element-wise a + b (residual connection). Its backward passes the gradient unchanged to both inputs.
public func add(_ a: Tensor, _ b: Tensor, threads: Int = 1) -> Tensor {
    precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
    var out = a
    addInPlace(&out, b, threads: threads)
    return out
}

public func addInPlace(_ a: inout Tensor, _ b: Tensor, threads: Int = 1) {
    precondition(a.shape == b.shape, "add: shapes \(a.shape) and \(b.shape) differ")
    let count = a.count
    b.withPointer { bp in a.withMutablePointer { addInPlaceKernel($0, bp, count: count, threads: threads) } }
}

/// Softmax over the channel axis (dim 1) of an [N, C, ...] tensor (each voxel on its own: threads change no bits).
public func softmaxChannels(_ logits: Tensor, threads: Int = 1) -> Tensor {
    var out = Tensor(uninitialized: logits.shape)
    logits.withPointer { lp in
        out.withMutablePointer { op in
            softmaxChannelsKernel(logits: lp, output: op, batch: logits.batch, classes: logits.channels,
                                  spatial: logits.spatialCount, threads: threads)
        }
    }
    return out
}

// MARK: - Helpers

func initialWeights(count: Int, fanIn: Int, _ initialisation: WeightInitialisation,
                    _ rng: inout SeededGenerator) -> [Float] {
    var values = [Float](repeating: 0, count: count)
    switch initialisation {
    case .kaimingNormal:
        let std = (2.0 / Double(fanIn)).squareRoot()
        for i in 0..<count { values[i] = Float(std * rng.nextNormal()) }
    case .pytorchDefault:
        // kaiming_uniform_(a=sqrt(5)): gain = sqrt(2/(1+5)), bound = gain*sqrt(3/fan_in) = 1/sqrt(fan_in)
        let bound = 1 / Double(fanIn).squareRoot()
        for i in 0..<count { values[i] = Float(rng.nextUniform(-bound, bound)) }
    }
    return values
}

func initialBias(count: Int, fanIn: Int, _ initialisation: WeightInitialisation,
                 _ rng: inout SeededGenerator) -> [Float] {
    switch initialisation {
    case .kaimingNormal:
        return [Float](repeating: 0, count: count)
    case .pytorchDefault:
        let bound = 1 / Double(fanIn).squareRoot()
        return (0..<count).map { _ in Float(rng.nextUniform(-bound, bound)) }
    }
}

func addChannelBias(_ y: inout Tensor, _ bias: [Float], threads: Int) {
    let channels = y.channels, spatial = y.spatialCount, batch = y.batch
    y.withMutablePointer { addChannelBiasKernel($0, bias: bias, channels: channels, spatial: spatial, batch: batch,
                                                threads: threads) }
}

func accumulateChannelSums(_ g: Tensor, into grad: inout [Float], threads: Int) {
    var sums = [Double](repeating: 0, count: g.channels)
    g.withPointer { channelSumsKernel($0, sums: &sums, channels: g.channels, spatial: g.spatialCount,
                                      batch: g.batch, threads: threads) }
    for c in 0..<g.channels { grad[c] += Float(sums[c]) }
}

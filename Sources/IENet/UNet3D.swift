import Foundation
import IECore

/// InnerEye's BasicLayer: Conv3d (no bias) -> optional BatchNorm3d -> optional ReLU (fused into the BN).
final class BasicLayer {
    let conv: Conv3d
    let bn: BatchNorm3d?

    init(name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int, batchNormAndReLU: Bool,
         rng: inout SeededGenerator, engine: Engine) {
        conv = Conv3d(name: name + ".conv1", inChannels: inChannels, outChannels: outChannels, kernel: kernel,
                      stride: stride, padding: (kernel - 1) / 2, bias: false, initialisation: .kaimingNormal, rng: &rng,
                      engine: engine)
        bn = batchNormAndReLU
            ? BatchNorm3d(name: name + ".bn1", channels: outChannels, fusedReLU: true, weightInitStd: 0.01, rng: &rng,
                          threads: engine.threads)
            : nil
    }

    func forward(_ x: Tensor, training: Bool) -> Tensor {
        let y = conv.forward(x, saveForBackward: training)
        guard let bn else { return y }
        return bn.forward(consume y, training: training)
    }

    func backward(_ g: Tensor, inputGradient: Bool = true) -> Tensor? {
        let gConv = bn.map { $0.backward(g) } ?? g
        return conv.backward(gConv, inputGradient: inputGradient)
    }

    var stateEntries: [StateEntry] { [.parameter(conv.weight)] + (bn.map { [.batchNorm($0)] } ?? []) }
}

/// UNetEncodeBlock: block1 (may downsample) then block2, with block2 learning a residual: out = block2(h) + h.
final class EncodeBlock {
    let block1: BasicLayer, block2: BasicLayer
    let threads: Int
    init(name: String, inChannels: Int, outChannels: Int, kernel: Int, stride: Int, rng: inout SeededGenerator,
         engine: Engine) {
        threads = engine.threads
        block1 = BasicLayer(name: name + ".block1", inChannels: inChannels, outChannels: outChannels, kernel: kernel,
                            stride: stride, batchNormAndReLU: true, rng: &rng, engine: engine)
        block2 = BasicLayer(name: name + ".block2", inChannels: outChannels, outChannels: outChannels, kernel: kernel,
                            stride: 1, batchNormAndReLU: true, rng: &rng, engine: engine)
    }
    func forward(_ x: Tensor, training: Bool) -> Tensor {
        let h = block1.forward(x, training: training)
        var out = block2.forward(h, training: training)
        addInPlace(&out, h, threads: threads)
        return out
    }
    func backward(_ g: Tensor, inputGradient: Bool) -> Tensor? {
        var gh = block2.backward(g)!
        addInPlace(&gh, g, threads: threads)
        return block1.backward(gh, inputGradient: inputGradient)
    }
    var stateEntries: [StateEntry] { block1.stateEntries + block2.stateEntries }
}

/// UNetDecodeBlock: ConvTranspose3d(k=2*factor, stride factor, padding) -> BatchNorm3d -> ReLU.
final class DecodeBlock {
    let upsample: ConvTranspose3d
    let bn: BatchNorm3d
    init(name: String, inChannels: Int, outChannels: Int, rng: inout SeededGenerator, engine: Engine) {
        upsample = ConvTranspose3d(name: name + ".upsample_block.0", inChannels: inChannels, outChannels: outChannels,
                                   kernel: 4, stride: 2, padding: 1, initialisation: .pytorchDefault, rng: &rng,
                                   engine: engine)
        // InnerEye does not re-initialise this block: BN keeps PyTorch's gamma = 1, beta = 0.
        bn = BatchNorm3d(name: name + ".upsample_block.1", channels: outChannels, fusedReLU: true, rng: &rng,
                         threads: engine.threads)
    }
    func forward(_ x: Tensor, training: Bool) -> Tensor {
        bn.forward(upsample.forward(x, saveForBackward: training), training: training)
    }
    func backward(_ g: Tensor) -> Tensor {
        upsample.backward(bn.backward(g))!
    }
    var stateEntries: [StateEntry] { [.parameter(upsample.weight), .parameter(upsample.bias), .batchNorm(bn)] }
}

/// UNetEncodeBlockSynthesis: a = relu(bn(conv1(x) + conv2(skip))); out = block2(a) + a.
final class SynthesisBlock {
    let conv1: BasicLayer, conv2: BasicLayer
    let activation: BatchNorm3d
    let block2: BasicLayer
    let threads: Int
    init(name: String, channels: Int, kernel: Int, rng: inout SeededGenerator, engine: Engine) {
        threads = engine.threads
        conv1 = BasicLayer(name: name + ".conv1", inChannels: channels, outChannels: channels, kernel: kernel, stride: 1,
                           batchNormAndReLU: false, rng: &rng, engine: engine)
        conv2 = BasicLayer(name: name + ".conv2", inChannels: channels, outChannels: channels, kernel: kernel, stride: 1,
                           batchNormAndReLU: false, rng: &rng, engine: engine)
        activation = BatchNorm3d(name: name + ".activation_block.0", channels: channels, fusedReLU: true,
                                 weightInitStd: 0.01, rng: &rng, threads: engine.threads)
        block2 = BasicLayer(name: name + ".block2", inChannels: channels, outChannels: channels, kernel: kernel,
                            stride: 1, batchNormAndReLU: true, rng: &rng, engine: engine)
    }
    func forward(_ x: Tensor, skip: Tensor, training: Bool) -> Tensor {
        var sum = conv1.forward(x, training: training)
        addInPlace(&sum, conv2.forward(skip, training: training), threads: threads)
        let a = activation.forward(consume sum, training: training)
        var out = block2.forward(a, training: training)
        addInPlace(&out, a, threads: threads)
        return out
    }
    /// Returns (gradient for x, gradient for the skip connection).
    func backward(_ g: Tensor) -> (Tensor, Tensor) {
        var ga = block2.backward(g)!
        addInPlace(&ga, g, threads: threads)
        let gSum = activation.backward(ga)
        return (conv1.backward(gSum)!, conv2.backward(gSum)!)
    }
    var stateEntries: [StateEntry] {
        conv1.stateEntries + conv2.stateEntries + [.batchNorm(activation)] + block2.stateEntries
    }
}

/// One element of the PyTorch state_dict: a parameter, or a BatchNorm's parameters + buffers.
/// InnerEye's UNet3D (InnerEye/ML/models/architectures/unet_3d.py) with `downsamplingPaths` strided-conv
/// levels, kernel 3, zero padding. Tensor names are exactly the PyTorch state_dict keys.
public final class UNet3D {
    public let imageChannels: Int
    public let classes: Int
    public let featureChannels: Int
    public let downsamplingPaths: Int
    public let kernelSize: Int
    let encoders: [EncodeBlock]
    let decoders: [DecodeBlock]
    let synthesis: [SynthesisBlock]
    let outputLayer: Conv3d
    /// How this model computes: threads, convolution backends, their scratch memory (shared by all layers).
    public let engine: Engine

    /// `options`: EngineOptions.fromEnvironment(...) in the tools; the built-in defaults (1 thread) otherwise.
    public init(imageChannels: Int, classes: Int, featureChannels: Int, seed: UInt64,
                downsamplingPaths: Int = 4, kernelSize: Int = 3, options: EngineOptions = EngineOptions()) {
        precondition(imageChannels > 0 && classes > 0 && featureChannels > 0 && downsamplingPaths >= 1)
        precondition(kernelSize % 2 == 1, "UNet3D: kernel size must be odd")
        let engine = Engine(options)
        self.engine = engine
        self.imageChannels = imageChannels
        self.classes = classes
        self.featureChannels = featureChannels
        self.downsamplingPaths = downsamplingPaths
        self.kernelSize = kernelSize
        var rng = SeededGenerator(seed: seed)
        var encoders: [EncodeBlock] = []
        var layerIndex = 0
        encoders.append(EncodeBlock(name: "_layers.0", inChannels: imageChannels, outChannels: featureChannels,
                                    kernel: kernelSize, stride: 1, rng: &rng, engine: engine))
        var channels = featureChannels
        for _ in 1...downsamplingPaths {
            layerIndex += 1
            encoders.append(EncodeBlock(name: "_layers.\(layerIndex)", inChannels: channels, outChannels: channels * 2,
                                        kernel: kernelSize, stride: 2, rng: &rng, engine: engine))
            channels *= 2
        }
        var decoders: [DecodeBlock] = [], synthesis: [SynthesisBlock] = []
        for _ in 0..<downsamplingPaths {
            layerIndex += 1
            decoders.append(DecodeBlock(name: "_layers.\(layerIndex)", inChannels: channels, outChannels: channels / 2,
                                        rng: &rng, engine: engine))
            layerIndex += 1
            synthesis.append(SynthesisBlock(name: "_layers.\(layerIndex)", channels: channels / 2, kernel: kernelSize,
                                            rng: &rng, engine: engine))
            channels /= 2
        }
        outputLayer = Conv3d(name: "output_layer", inChannels: channels, outChannels: classes, kernel: 1, bias: true,
                             initialisation: .pytorchDefault, rng: &rng, engine: engine)
        self.encoders = encoders
        self.decoders = decoders
        self.synthesis = synthesis
    }

    /// Every spatial size must be a multiple of this.
    public var sizeMultiple: Int { 1 << downsamplingPaths }

    /// Throws IEError.badInput unless `shape` is [N, imageChannels, D, H, W] with sizes multiples of `sizeMultiple`.
    public func validateInputShape(_ shape: [Int]) throws {
        guard shape.count == 5, shape[0] > 0, shape[1] == imageChannels,
              shape[2...].allSatisfy({ $0 > 0 && $0 % sizeMultiple == 0 }) else {
            throw IEError.badInput("UNet3D input shape \(shape): expected [N, \(imageChannels), D, H, W] with D, H, W "
                                   + "positive multiples of \(sizeMultiple)")
        }
    }

    /// Logits [N, classes, D, H, W]. `training` selects batch statistics in BatchNorm and keeps what backward needs.
    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        do { try validateInputShape(x.shape) } catch { preconditionFailure("\(error)") }
        var skips: [Tensor] = []
        var h = x
        for (depth, encoder) in encoders.enumerated() {
            h = encoder.forward(h, training: training)
            if depth < downsamplingPaths { skips.append(h) }
        }
        for i in 0..<downsamplingPaths {
            h = decoders[i].forward(h, training: training)
            h = synthesis[i].forward(h, skip: skips.removeLast(), training: training)
        }
        return outputLayer.forward(h, saveForBackward: training)
    }

    /// Accumulates parameter gradients given d(loss)/d(logits) from the last `forward(training: true)`.
    public func backward(_ gradLogits: Tensor) {
        var g = outputLayer.backward(gradLogits)!
        var skipGradients = [Tensor?](repeating: nil, count: downsamplingPaths)
        for i in (0..<downsamplingPaths).reversed() {
            let (gx, gSkip) = synthesis[i].backward(g)
            skipGradients[downsamplingPaths - 1 - i] = gSkip
            g = decoders[i].backward(gx)
        }
        for depth in (0...downsamplingPaths).reversed() {
            if depth < downsamplingPaths { addInPlace(&g, skipGradients[depth]!, threads: engine.threads) }
            if let next = encoders[depth].backward(g, inputGradient: depth > 0) { g = next }
        }
    }

    public var stateEntries: [StateEntry] {
        encoders.flatMap(\.stateEntries)
            + zip(decoders, synthesis).flatMap { $0.stateEntries + $1.stateEntries }
            + [.parameter(outputLayer.weight), .parameter(outputLayer.bias!)]
    }

}

extension UNet3D: StatefulModel {
    public var architectureDescription: String { architecture.description }
}

extension UNet3D {
    /// Class probabilities (softmax over channels) in eval mode: running BatchNorm statistics, nothing saved.
    public func predictProbabilities(_ x: Tensor) -> Tensor {
        softmaxChannels(forward(x, training: false), threads: engine.threads)
    }
}

extension Tensor {
    /// One-hot target [N, classes, D, H, W] from per-voxel class indices laid out [N, D, H, W] (X fastest).
    public init(oneHotLabels labels: [Int], batch: Int, classes: Int, spatialShape: [Int]) {
        let spatial = spatialShape.reduce(1, *)
        precondition(labels.count == batch * spatial, "oneHotLabels: \(labels.count) labels for \(batch) x \(spatialShape)")
        self.init(zeros: [batch, classes] + spatialShape)
        for n in 0..<batch {
            for i in 0..<spatial {
                let c = labels[n * spatial + i]
                precondition(c >= 0 && c < classes, "oneHotLabels: class \(c) outside 0..<\(classes)")
                data[(n * classes + c) * spatial + i] = 1
            }
        }
    }
}

import Foundation
import IECore

/// The shape of an image classifier / regressor (SPEC §13): a ResNet-style encoder (a stem block, then one
/// residual block per entry of `featureChannels` after the first, each halving every spatial axis larger than 1),
/// global average pooling, and an MLP head over the pooled image features and the non-image features.
public struct ImageClassifierArchitecture: Equatable, Sendable, CustomStringConvertible {
    public var imageChannels: Int
    /// Channels of the stem and of each downsampling stage, e.g. [16, 32, 64].
    public var featureChannels: [Int]
    /// Numbers beside the image (numerical columns and one-hot categorical columns).
    public var nonImageFeatures: Int
    /// Units of the MLP's hidden layer.
    public var hiddenUnits: Int
    /// Model outputs: 1 for binary classification and regression, the class count for multi-label.
    public var outputs: Int

    public init(imageChannels: Int, featureChannels: [Int], nonImageFeatures: Int = 0, hiddenUnits: Int = 32, outputs: Int = 1) {
        self.imageChannels = imageChannels; self.featureChannels = featureChannels
        self.nonImageFeatures = nonImageFeatures; self.hiddenUnits = hiddenUnits; self.outputs = outputs
    }

    public var description: String {
        "ImageClassifier(image_channels \(imageChannels), feature_channels \(featureChannels), non-image features \(nonImageFeatures), hidden \(hiddenUnits), outputs \(outputs))"
    }

    public func validate() throws {
        guard imageChannels > 0, !featureChannels.isEmpty, featureChannels.allSatisfy({ $0 > 0 }), nonImageFeatures >= 0,
              hiddenUnits > 0, outputs > 0 else {
            throw IEError.usage("\(self) is invalid, expected positive channel counts, at least one feature channel entry, positive hidden units and outputs")
        }
    }
}

/// The image classifier. Inputs are [N, C, D, H, W] (2-D images have D = 1: the 3x3x3 kernels then see zero padding
/// above and below, which computes a 3x3 convolution); logits [N, outputs]. Tensor names follow PyTorch's
/// state_dict conventions (`encoder.<i>.block<j>.conv1.weight`, `head.<i>.weight`).
public final class ImageClassifier {
    public let architecture: ImageClassifierArchitecture
    public let engine: Engine
    let stem: BasicLayer
    let stages: [EncodeBlock]
    let pool = GlobalAveragePool()
    let hidden: Linear
    let hiddenActivation: ReLU
    let output: Linear
    private var pooledShape: [Int] = []
    private var encodedShape: [Int] = []

    public init(_ architecture: ImageClassifierArchitecture, seed: UInt64, options: EngineOptions = EngineOptions()) {
        self.architecture = architecture
        let engine = Engine(options)
        self.engine = engine
        var rng = SeededGenerator(seed: seed)
        let widths = architecture.featureChannels
        stem = BasicLayer(name: "encoder.0", inChannels: architecture.imageChannels, outChannels: widths[0], kernel: 3,
                          stride: 1, batchNormAndReLU: true, rng: &rng, engine: engine)
        var stages: [EncodeBlock] = []
        for i in 1..<widths.count {
            stages.append(EncodeBlock(name: "encoder.\(i)", inChannels: widths[i - 1], outChannels: widths[i], kernel: 3,
                                      stride: 2, rng: &rng, engine: engine))
        }
        self.stages = stages
        hidden = Linear(name: "head.0", inFeatures: widths[widths.count - 1] + architecture.nonImageFeatures,
                        outFeatures: architecture.hiddenUnits, rng: &rng)
        hiddenActivation = ReLU(threads: 1)
        output = Linear(name: "head.2", inFeatures: architecture.hiddenUnits, outFeatures: architecture.outputs, rng: &rng)
    }

    /// Throws IEError.badInput unless `shape` is [N, imageChannels, D, H, W] with positive sizes.
    public func validateInputShape(_ shape: [Int]) throws {
        guard shape.count == 5, shape[0] > 0, shape[1] == architecture.imageChannels, shape[2...].allSatisfy({ $0 > 0 }) else {
            throw IEError.badInput("ImageClassifier input shape \(shape): expected [N, \(architecture.imageChannels), D, H, W]")
        }
    }

    /// Logits [N, outputs]; `features` is [N, nonImageFeatures] (ignored when the architecture has none).
    public func forward(_ images: Tensor, features: Tensor? = nil, training: Bool) -> Tensor {
        do { try validateInputShape(images.shape) } catch { preconditionFailure("\(error)") }
        var h = stem.forward(images, training: training)
        for stage in stages { h = stage.forward(h, training: training) }
        encodedShape = h.shape
        var pooled = pool.forward(h)
        pooledShape = pooled.shape
        if architecture.nonImageFeatures > 0 {
            let n = images.batch
            let extra = features ?? Tensor(zeros: [n, architecture.nonImageFeatures])
            precondition(extra.shape == [n, architecture.nonImageFeatures], "non-image features \(extra.shape), expected [\(n), \(architecture.nonImageFeatures)]")
            pooled = concatenateColumns(pooled, extra)
        }
        let a = hiddenActivation.forward(hidden.forward(pooled, saveForBackward: training), saveForBackward: training)
        return output.forward(a, saveForBackward: training)
    }

    /// Accumulates parameter gradients from d(loss)/d(logits) of the last `forward(training: true)`.
    public func backward(_ gradLogits: Tensor) {
        let gPooledAll = hidden.backward(hiddenActivation.backward(output.backward(gradLogits)))
        let gPooled = architecture.nonImageFeatures > 0 ? leadingColumns(gPooledAll, width: pooledShape[1]) : gPooledAll
        var g = pool.backward(gPooled, inputShape: encodedShape)
        for stage in stages.reversed() { g = stage.backward(g, inputGradient: true) ?? g }
        _ = stem.backward(g, inputGradient: false)
    }

    public var stateEntries: [StateEntry] {
        stem.stateEntries + stages.flatMap(\.stateEntries)
            + [.parameter(hidden.weight), .parameter(hidden.bias), .parameter(output.weight), .parameter(output.bias)]
    }
}

extension ImageClassifier: StatefulModel {
    public var architectureDescription: String { architecture.description }
}

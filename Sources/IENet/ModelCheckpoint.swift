import Foundation
import IECore

/// Checkpoints of a UNet3D + optimizer: the model's state_dict keys, `optimizer/<name>/<slot>` tensors, and
/// metadata (architecture parameters, epoch, optimizer type/step/slot names, plus whatever the caller adds,
/// e.g. model_name and rng_state).
extension Checkpoint {
    public enum MetadataKey {
        public static let architecture = "architecture"
        public static let imageChannels = "image_channels"
        public static let classes = "num_classes"
        public static let featureChannels = "feature_channels"
        public static let downsamplingPaths = "num_downsampling_paths"
        public static let kernelSize = "kernel_size"
        public static let epoch = "epoch"
        public static let optimizerType = "optimizer_type"
        public static let optimizerStep = "optimizer_step"
        public static let optimizerState = "optimizer_state"
        /// Keys only ie-toolbox writes (not generic ones such as epoch, which other writers use too): their
        /// presence marks a checkpoint that must carry its tensor hash.
        static let ownKeys: Set<String> = [architecture, imageChannels, featureChannels, downsamplingPaths,
                                           optimizerType, optimizerState]
    }

    public static func serialize(model: UNet3D, optimizer: Optimizer?, epoch: Int,
                                 metadata extra: [String: String] = [:]) -> Data {
        var metadata = extra
        metadata[MetadataKey.architecture] = "UNet3D"
        metadata[MetadataKey.imageChannels] = String(model.imageChannels)
        metadata[MetadataKey.classes] = String(model.classes)
        metadata[MetadataKey.featureChannels] = String(model.featureChannels)
        metadata[MetadataKey.downsamplingPaths] = String(model.downsamplingPaths)
        metadata[MetadataKey.kernelSize] = String(model.kernelSize)
        metadata[MetadataKey.epoch] = String(epoch)
        return serialize(model: model, optimizer: optimizer, metadata: metadata)
    }

    /// A model's state_dict and, when given, the optimizer's state and its metadata keys.
    static func serialize(model: any StatefulModel, optimizer: Optimizer?, metadata: [String: String]) -> Data {
        var metadata = metadata
        var tensors = model.stateDict()
        if let optimizer {
            metadata[MetadataKey.optimizerType] = optimizer.kind.rawValue
            metadata[MetadataKey.optimizerStep] = String(optimizer.stepCount)
            metadata[MetadataKey.optimizerState] = optimizer.slotNames.joined(separator: ",")
            tensors += optimizer.stateTensors()
        }
        return serialize(tensors: tensors, metadata: metadata)
    }

    public var epoch: Int? { metadata[MetadataKey.epoch].flatMap { Int($0) } }

    /// The integer metadata our checkpoints write, where present, must be integers (`epoch: "abc"` was accepted):
    /// the architecture's positive and at most 2^20, the epoch and optimizer step non-negative.
    static func checkIntegerMetadata(_ metadata: [String: String], source: String) throws {
        let positive = [MetadataKey.imageChannels, MetadataKey.classes, MetadataKey.featureChannels,
                        MetadataKey.downsamplingPaths, MetadataKey.kernelSize]
        for key in positive + [MetadataKey.epoch, MetadataKey.optimizerStep] {
            guard let text = metadata[key] else { continue }
            let lowest = positive.contains(key) ? 1 : 0
            guard let value = Int(text), value >= lowest, value <= (positive.contains(key) ? 1 << 20 : Int(Int32.max)) else {
                throw IEError.badInput("\(source): metadata \(key) is '\(text)', expected an integer >= \(lowest)")
            }
        }
    }

    /// The recorded architecture must be the one the tensors have (checked before a network of that size is
    /// allocated): the first convolution [feature_channels, image_channels, k, k, k], the output layer
    /// [classes, feature_channels, 1, 1, 1], and 3 * num_downsampling_paths as the last `_layers` index.
    func checkTensorShapes(_ a: UNet3DArchitecture, source: String) throws {
        let k = a.kernelSize
        for (name, expected) in [("_layers.0.block1.conv1.weight", [a.featureChannels, a.imageChannels, k, k, k]),
                                 ("output_layer.weight", [a.classes, a.featureChannels, 1, 1, 1])] {
            guard let t = tensor(name) else {
                throw IEError.badInput("\(source): no tensor \(name), expected the UNet3D weights its metadata describes")
            }
            guard t.shape == expected else {
                throw IEError.badInput("\(source): tensor \(name) has shape \(t.shape), the metadata's \(a) needs \(expected)")
            }
        }
        let lastLayer = tensors.compactMap { t -> Int? in
            guard t.name.hasPrefix("_layers.") else { return nil }
            return Int(t.name.dropFirst("_layers.".count).prefix { $0 != "." })
        }.max() ?? 0
        guard lastLayer == 3 * a.downsamplingPaths else {
            throw IEError.badInput("\(source): the tensors have layers up to _layers.\(lastLayer), the metadata's "
                                   + "num_downsampling_paths \(a.downsamplingPaths) needs up to _layers.\(3 * a.downsamplingPaths)")
        }
    }

    /// A UNet3D (weights not yet loaded) with the architecture recorded in the metadata; for a checkpoint without
    /// it (a state_dict written by PyTorch: safetensors.torch.save_file or torch.save), the `configured` one, which
    /// callers take from the model config (SPEC 4.4). `restore` then checks every tensor against it.
    public func makeModel(seed: UInt64 = 0, source: String = "checkpoint", configured: UNet3DArchitecture? = nil,
                          options: EngineOptions = EngineOptions()) throws -> UNet3D {
        if metadata[MetadataKey.imageChannels] == nil, metadata[MetadataKey.architecture] == nil {
            guard let configured else {
                throw IEError.badInput("\(source): the checkpoint does not record its architecture (written by PyTorch?), "
                                       + "expected a model config to take it from (e.g. ie-infer --model=NAME)")
            }
            return try configured.makeModel(seed: seed, source: source, options: options)
        }
        func integer(_ key: String) throws -> Int {
            guard let text = metadata[key], let value = Int(text), value > 0 else {
                throw IEError.badInput("\(source): metadata \(key) is \(metadata[key] ?? "missing"), expected a positive integer")
            }
            return value
        }
        if let architecture = metadata[MetadataKey.architecture], architecture != "UNet3D" {
            throw IEError.badInput("\(source): architecture \(architecture), expected UNet3D")
        }
        let recorded = UNet3DArchitecture(imageChannels: try integer(MetadataKey.imageChannels), classes: try integer(MetadataKey.classes),
                                          featureChannels: try integer(MetadataKey.featureChannels),
                                          downsamplingPaths: try integer(MetadataKey.downsamplingPaths),
                                          kernelSize: try integer(MetadataKey.kernelSize))
        try checkTensorShapes(recorded, source: source)
        return try recorded.makeModel(seed: seed, source: source, options: options)
    }

    /// Loads the weights into `model` and, when `optimizer` is given, its state (which must then be present).
    public func restore(model: any StatefulModel, optimizer: Optimizer? = nil, source: String = "checkpoint") throws {
        try model.loadStateDict(tensors.filter { !$0.name.hasPrefix("optimizer/") }, source: source)
        if let optimizer {
            if let type = metadata[MetadataKey.optimizerType], type != optimizer.kind.rawValue {
                throw IEError.badInput("\(source): optimizer state is for \(type), expected \(optimizer.kind.rawValue)")
            }
            let step = metadata[MetadataKey.optimizerStep].flatMap { Int($0) } ?? 0
            try optimizer.loadState(tensors.filter { $0.name.hasPrefix("optimizer/") }, stepCount: step, source: source)
        }
    }
}

/// The hyper-parameters that fix a UNet3D's tensors (InnerEye's UNet3D arguments).
public struct UNet3DArchitecture: Equatable, CustomStringConvertible, Sendable {
    public var imageChannels: Int
    public var classes: Int
    public var featureChannels: Int
    public var downsamplingPaths: Int
    public var kernelSize: Int

    public init(imageChannels: Int, classes: Int, featureChannels: Int, downsamplingPaths: Int = 4, kernelSize: Int = 3) {
        self.imageChannels = imageChannels; self.classes = classes; self.featureChannels = featureChannels
        self.downsamplingPaths = downsamplingPaths; self.kernelSize = kernelSize
    }

    public var description: String {
        "UNet3D(image channels \(imageChannels), classes \(classes), feature channels \(featureChannels), "
            + "downsampling paths \(downsamplingPaths), kernel size \(kernelSize))"
    }

    /// A freshly initialised UNet3D; sizes outside what the network can be are an IEError, not a crash.
    public func makeModel(seed: UInt64 = 0, source: String = "checkpoint", options: EngineOptions = EngineOptions()) throws -> UNet3D {
        guard imageChannels > 0, classes > 0, featureChannels > 0, downsamplingPaths >= 1, downsamplingPaths <= 10,
              kernelSize > 0, kernelSize % 2 == 1, featureChannels <= (1 << 20) >> downsamplingPaths else {
            throw IEError.badInput("\(source): \(self) is not a valid UNet3D, expected positive sizes, an odd kernel size and "
                                   + "1...10 downsampling paths")
        }
        return UNet3D(imageChannels: imageChannels, classes: classes, featureChannels: featureChannels, seed: seed,
                      downsamplingPaths: downsamplingPaths, kernelSize: kernelSize, options: options)
    }
}

extension UNet3D {
    public var architecture: UNet3DArchitecture {
        UNet3DArchitecture(imageChannels: imageChannels, classes: classes, featureChannels: featureChannels,
                           downsamplingPaths: downsamplingPaths, kernelSize: kernelSize)
    }
}

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

    /// A UNet3D with the architecture recorded in the metadata (weights not yet loaded).
    public func makeModel(seed: UInt64 = 0, source: String = "checkpoint") throws -> UNet3D {
        func integer(_ key: String) throws -> Int {
            guard let text = metadata[key], let value = Int(text), value > 0 else {
                throw IEError.badInput("\(source): metadata \(key) is \(metadata[key] ?? "missing"), expected a positive integer")
            }
            return value
        }
        if let architecture = metadata[MetadataKey.architecture], architecture != "UNet3D" {
            throw IEError.badInput("\(source): architecture \(architecture), expected UNet3D")
        }
        return UNet3D(imageChannels: try integer(MetadataKey.imageChannels), classes: try integer(MetadataKey.classes),
                      featureChannels: try integer(MetadataKey.featureChannels), seed: seed,
                      downsamplingPaths: try integer(MetadataKey.downsamplingPaths),
                      kernelSize: try integer(MetadataKey.kernelSize))
    }

    /// Loads the weights into `model` and, when `optimizer` is given, its state (which must then be present).
    public func restore(model: UNet3D, optimizer: Optimizer? = nil, source: String = "checkpoint") throws {
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

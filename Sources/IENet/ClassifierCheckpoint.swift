import Foundation
import IECore

/// Checkpoints of an ImageClassifier + optimizer: its state_dict, `optimizer/<name>/<slot>` tensors, and the
/// architecture in the metadata (architecture = ImageClassifier and the keys below), so that ie-infer can rebuild
/// the network from the file alone.
extension Checkpoint {
    public enum ClassifierKey {
        public static let featureChannels = "classifier_feature_channels"
        public static let nonImageFeatures = "classifier_non_image_features"
        public static let hiddenUnits = "classifier_hidden_units"
        public static let outputs = "classifier_outputs"
    }

    public static func serialize(classifier model: ImageClassifier, optimizer: Optimizer?, epoch: Int,
                                 metadata extra: [String: String] = [:]) -> Data {
        var metadata = extra
        let a = model.architecture
        metadata[MetadataKey.architecture] = "ImageClassifier"
        metadata[MetadataKey.imageChannels] = String(a.imageChannels)
        metadata[ClassifierKey.featureChannels] = a.featureChannels.map(String.init).joined(separator: ",")
        metadata[ClassifierKey.nonImageFeatures] = String(a.nonImageFeatures)
        metadata[ClassifierKey.hiddenUnits] = String(a.hiddenUnits)
        metadata[ClassifierKey.outputs] = String(a.outputs)
        metadata[MetadataKey.epoch] = String(epoch)
        return serialize(model: model, optimizer: optimizer, metadata: metadata)
    }

    /// The classifier architecture the metadata records (every value checked: positive, at most 2^20), nil for a
    /// checkpoint of another architecture.
    public func classifierArchitecture(source: String = "checkpoint") throws -> ImageClassifierArchitecture? {
        guard metadata[MetadataKey.architecture] == "ImageClassifier" else { return nil }
        func integers(_ key: String, minimum: Int) throws -> [Int] {
            let parts = (metadata[key] ?? "").split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
            guard !parts.isEmpty, parts.allSatisfy({ $0 != nil && $0! >= minimum && $0! <= 1 << 20 }) else {
                throw IEError.badInput("\(source): metadata \(key) is '\(metadata[key] ?? "missing")', expected integers >= \(minimum)")
            }
            return parts.compactMap { $0 }
        }
        let architecture = ImageClassifierArchitecture(
            imageChannels: try integers(MetadataKey.imageChannels, minimum: 1)[0],
            featureChannels: try integers(ClassifierKey.featureChannels, minimum: 1),
            nonImageFeatures: try integers(ClassifierKey.nonImageFeatures, minimum: 0)[0],
            hiddenUnits: try integers(ClassifierKey.hiddenUnits, minimum: 1)[0],
            outputs: try integers(ClassifierKey.outputs, minimum: 1)[0])
        guard architecture.featureChannels.count <= 16 else {
            throw IEError.badInput("\(source): \(architecture.featureChannels.count) encoder stages, expected at most 16")
        }
        return architecture
    }

    /// The classifier this checkpoint holds, weights loaded (strictly: every tensor must fit).
    public func makeClassifier(source: String = "checkpoint", options: EngineOptions = EngineOptions()) throws -> ImageClassifier {
        guard let architecture = try classifierArchitecture(source: source) else {
            throw IEError.badInput("\(source): architecture \(metadata[MetadataKey.architecture] ?? "not recorded"), expected ImageClassifier")
        }
        let model = ImageClassifier(architecture, seed: 0, options: options)
        try restore(model: model, source: source)
        return model
    }
}

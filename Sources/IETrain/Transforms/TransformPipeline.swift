// Transform pipelines of the scalar models (SPEC §13): an ordered list of named transforms built from config
// records, one pipeline for training and one for validation/test. Every random draw comes from the generator
// the caller passes in, derived per (epoch, subject), so the result does not depend on batch order, threads or
// where a run was resumed.
import Foundation
import IECore

/// One named transform. `apply` draws the transform's random parameters (if any) from `rng` and transforms
/// the image; the pipeline decides beforehand, with probability `probability`, whether it runs at all.
public protocol ImageTransform: Sendable {
    static var transformName: String { get }
    /// The probability used when a record has no `p` (torchvision's default where it has one, else 1).
    static var defaultProbability: Double { get }
    var probability: Double { get }
    /// Builds the transform from a record's fields (everything but `name` and `p`).
    init(fields: inout TransformFieldReader, probability: Double) throws
    func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage
}

extension ImageTransform {
    public static var defaultProbability: Double { 1 }
}

public struct TransformPipeline: Sendable {
    public var transforms: [any ImageTransform]

    /// Every transform a record can name, in the order of SPEC §13.
    public static let transformTypes: [any ImageTransform.Type] = [
        ResizeTransform.self, CenterCropTransform.self, RandomResizedCropTransform.self, RandomAffineTransform.self,
        RandomHorizontalFlipTransform.self, RandomVerticalFlipTransform.self, ColorJitterTransform.self,
        RandomGammaTransform.self, GaussianNoiseTransform.self, ElasticDeformationTransform.self,
        RandomErasingTransform.self, ExpandChannelsTransform.self,
    ]
    public static var transformNames: [String] { transformTypes.map { $0.transformName } }

    public init(_ transforms: [any ImageTransform]) { self.transforms = transforms }

    /// Builds a pipeline from records; `label` names the pipeline in errors (e.g. "train_transforms"), `file`
    /// the config file. Errors are one line: `<label>[<index>] <name>: field '<field>' is ..., expected ...`.
    public init(records: [TransformRecord], label: String, file: String? = nil) throws {
        var transforms: [any ImageTransform] = []
        for (index, record) in records.enumerated() {
            let place = "\(label)[\(index)]"
            guard let nameField = record["name"] else {
                throw IEError.usage("\(place): missing field 'name', expected one of "
                                       + TransformPipeline.transformNames.joined(separator: ", "), file: file)
            }
            guard case .text(let name) = nameField,
                  let type = TransformPipeline.transformTypes.first(where: { $0.transformName == name }) else {
                var hint = ""
                if case .text(let s) = nameField, let near = closestMatch(s, in: TransformPipeline.transformNames) {
                    hint = " (did you mean '\(near)'?)"
                }
                throw IEError.usage("\(place): unknown transform \(nameField)\(hint), expected one of "
                                       + TransformPipeline.transformNames.joined(separator: ", "), file: file)
            }
            var reader = TransformFieldReader(context: "\(place) \(name)", file: file, fields: record)
            let p = try reader.number("p", default: type.defaultProbability, expected: "a probability in [0, 1]") {
                $0 >= 0 && $0 <= 1
            }
            let transform = try type.init(fields: &reader, probability: p)
            try reader.finish()
            transforms.append(transform)
        }
        self.transforms = transforms
    }

    /// Builds a pipeline from what a YAML/JSON loader returns for the config key: a list of dictionaries.
    public init(loaded value: Any, label: String, file: String? = nil) throws {
        guard let list = value as? [Any] else {
            throw IEError.usage("\(label): expected a list of transforms ({name: ..., p: ..., ...})", file: file)
        }
        var records: [TransformRecord] = []
        for (index, item) in list.enumerated() {
            guard let dictionary = item as? [String: Any] else {
                throw IEError.usage("\(label)[\(index)]: expected a dictionary {name: ..., p: ..., ...}", file: file)
            }
            var record: TransformRecord = [:]
            for (key, raw) in dictionary {
                guard let field = TransformField(loaded: raw) else {
                    throw IEError.usage("\(label)[\(index)]: field '\(key)' is not a number, a list of numbers, "
                                           + "a string or a boolean", file: file)
                }
                record[key] = field
            }
            records.append(record)
        }
        try self.init(records: records, label: label, file: file)
    }

    /// The generator for one subject in one epoch: independent of the order subjects are visited in.
    /// `mode` separates the training stream from validation/test streams.
    public static func generator(seed: UInt64, epoch: Int, subject: String, mode: String = "train") -> Xoshiro256 {
        Xoshiro256(seed: seed, stream: "transforms/\(mode)/epoch \(epoch)/subject \(subject)")
    }

    /// Applies the transforms in order. Each transform gets its own generator seeded from one draw of `rng`,
    /// then a Bernoulli(p) draw decides whether it runs; so every transform consumes exactly one number of
    /// `rng`, and changing one transform's parameters does not change the draws of the others.
    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        var image = image
        for transform in transforms {
            var own = Xoshiro256(seed: rng.next())
            if own.bernoulli(transform.probability) {
                image = try transform.apply(image, using: &own)
            }
        }
        return image
    }

    /// Applies the pipeline with the generator of (seed, epoch, subject, mode).
    public func apply(_ image: TransformImage, seed: UInt64, epoch: Int, subject: String,
                      mode: String = "train") throws -> TransformImage {
        var rng = TransformPipeline.generator(seed: seed, epoch: epoch, subject: subject, mode: mode)
        return try apply(image, using: &rng)
    }
}

/// The training pipeline and the validation/test pipeline of one model.
public struct TransformPipelines: Sendable {
    public var train: TransformPipeline
    public var evaluation: TransformPipeline

    public init(train: TransformPipeline = TransformPipeline([]), evaluation: TransformPipeline = TransformPipeline([])) {
        self.train = train; self.evaluation = evaluation
    }

    /// The pipeline for training (true) or for validation and test (false).
    public func pipeline(training: Bool) -> TransformPipeline { training ? train : evaluation }
}

import Foundation
import IECore
import IEConfig
import IEData
import IEImage
import IENet

extension UNet3DArchitecture {
    /// The network a model config describes (SPEC 4.4: the architecture of a checkpoint written by PyTorch).
    public init(config: ModelConfig) throws {
        guard let f = config.featureChannels.first, f > 0 else {
            throw IEError.usage("\(config.name): feature_channels is not set, expected a positive integer", file: config.file)
        }
        self.init(imageChannels: config.imageChannels.count, classes: config.groundTruthIds.count + 1, featureChannels: f,
                  downsamplingPaths: config.numDownsamplingPaths, kernelSize: config.kernelSize)
    }

    /// The config's architecture, or nil when it sets no feature_channels (then only our own checkpoints load).
    public static func configured(_ config: ModelConfig) -> UNet3DArchitecture? { try? UNet3DArchitecture(config: config) }
}

/// The optimisation parameters every model shares (SPEC §1.4): batch size, epochs, learning rate and its
/// schedule, the optimizer and its settings.
public struct OptimisationSetup {
    public var batchSize: Int
    public var numEpochs: Int
    public var learningRate: Double
    public var minLearningRate: Double
    public var schedule: LearningRateSchedule
    public var warmupEpochs: Int
    public var optimizer: OptimizerKind
    public var optimizerSettings: OptimizerSettings

    public init(config: ModelConfig) throws {
        batchSize = max(1, config.trainBatchSize)
        numEpochs = config.numEpochs
        learningRate = config.lRate
        minLearningRate = config.minLRate
        switch config.lRateScheduler {
        case "Exponential": schedule = .exponential(gamma: config.lRateExponentialGamma)
        case "Step": schedule = .step(stepSize: config.lRateStepStepSize, gamma: config.lRateStepGamma)
        case "MultiStep": schedule = .multiStep(milestones: config.lRateMultiStepMilestones ?? [], gamma: config.lRateMultiStepGamma)
        case "Cosine": schedule = .cosine
        default: schedule = .polynomial(gamma: config.lRatePolynomialGamma)
        }
        warmupEpochs = config.lRateWarmup == "Linear" ? config.lRateWarmupEpochs : 0
        guard let kind = OptimizerKind(rawValue: config.optimizerType) else {
            throw IEError.usage("\(config.name): optimizer_type \(config.optimizerType), expected one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", "))", file: config.file)
        }
        optimizer = kind
        optimizerSettings = OptimizerSettings(betas: config.adamBetas, eps: config.optEps, weightDecay: config.weightDecay,
                                              momentum: config.momentum, nesterov: false, rmsAlpha: config.rmsAlpha)
    }

    /// The learning rate of a 0-based epoch.
    public func learningRate(epoch: Int) -> Double {
        IENet.learningRate(epoch: epoch, baseRate: learningRate, minRate: minLearningRate, numEpochs: numEpochs,
                             schedule: schedule, warmupEpochs: warmupEpochs)
    }
}

extension TrainingSetup {
    /// The training parameters of a model config (SPEC §1.4), checked for what the loop needs.
    public init(config: ModelConfig) throws {
        guard let crop = config.cropSize, crop.count == 3 else {
            throw IEError.usage("\(config.name): crop_size is not set, expected a (Z,Y,X) triple", file: config.file)
        }
        guard let f = config.featureChannels.first, f > 0 else {
            throw IEError.usage("\(config.name): feature_channels is not set, expected a positive integer", file: config.file)
        }
        self.init(modelName: config.name, structureNames: config.groundTruthIds, imageChannels: config.imageChannels.count,
                  featureChannels: f, cropSize: Shape3D(crop))
        downsamplingPaths = config.numDownsamplingPaths
        kernelSize = config.kernelSize
        classWeights = config.classWeights
        paddingMode = PaddingMode(configValue: config.paddingMode) ?? .edge
        let optimisation = try OptimisationSetup(config: config)
        batchSize = optimisation.batchSize
        numEpochs = optimisation.numEpochs
        learningRate = optimisation.learningRate
        minLearningRate = optimisation.minLearningRate
        schedule = optimisation.schedule
        warmupEpochs = optimisation.warmupEpochs
        optimizer = optimisation.optimizer
        optimizerSettings = optimisation.optimizerSettings
        loss = try TrainingSetup.loss(config: config)
        seed = config.effectiveRandomSeed
        applyAugmentations = config.applyAugmentations
        outputRange = config.outputRange
        saveStartEpoch = config.saveStartEpoch
        saveStepEpochs = config.saveStepEpochs
        crossValidationSplitIndex = config.crossValidationSplitIndex
    }

    static func loss(config: ModelConfig) throws -> SegmentationLoss {
        // InnerEye's create_segmentation_loss_function: label smoothing reaches CrossEntropy and Focal only, and
        // Focal then refuses the non-one-hot target (ModelConfig.validate refuses that, and a value outside 0...1,
        // when the config loads).
        let smoothing = config.labelSmoothingEps
        func single(_ type: String, power: Double?) throws -> SegmentationLoss {
            switch type {
            case "CrossEntropy": return .crossEntropy(classWeightPower: power, smoothingEps: smoothing)
            case "Focal": return .focal(gamma: config.focalLossGamma, classWeightPower: power)
            default: return .softDice(classWeightPower: power)
            }
        }
        if config.lossType == "Mixture" {
            let components = try config.mixtureLossComponents()
            guard !components.isEmpty else {
                throw IEError.usage("\(config.name): loss_type Mixture needs mixture_loss_components", file: config.file)
            }
            guard components.reduce(0, { $0 + $1.weight }) > 0 else {
                throw IEError.usage("\(config.name): mixture_loss_components weights sum to 0 or less, expected a positive sum (they are renormalised to 1)", file: config.file)
            }
            return .mixture(try components.map { (weight: $0.weight, loss: try single($0.lossType, power: $0.classWeightPower)) })
        }
        return try single(config.lossType, power: config.lossClassWeightPower)
    }
}

extension PhotometricNormalisation {
    public init(config: ModelConfig) throws {
        guard let method = NormalisationMethod(rawValue: config.normMethod) else {
            throw IEError.usage("\(config.name): norm_method \(config.normMethod), expected one of \(NormalisationMethod.allCases.map(\.rawValue).joined(separator: ", "))", file: config.file)
        }
        self.init(method: method, window: Double(config.window), level: Double(config.level), outputRange: config.outputRange,
                  sharpen: config.sharpen, tail: config.tail ?? [1.0], trimPercentiles: config.trimPercentiles)
    }
}

/// Loads subjects of a dataset and turns them into normalised network inputs.
public struct SubjectPreparation {
    public let dataset: Dataset
    public let request: SubjectRequest
    public let normalisation: PhotometricNormalisation

    public init(dataset: Dataset, config: ModelConfig) throws {
        self.dataset = dataset
        request = SubjectRequest(config: config)
        normalisation = try PhotometricNormalisation(config: config)
    }

    /// The subject's channels normalised per channel over the whole image, labels one-hot, and the raw data
    /// (kept for its geometry).
    public func load(_ subject: String) throws -> (prepared: SegmentationSubject, raw: SubjectData) {
        let data = try dataset.loadSubject(subject, request)
        let shape = Shape3D(data.shape.z, data.shape.y, data.shape.x)
        let mask = data.mask?.data
        let image = try normalisation.apply(image: data.channels.flatMap(\.data), channels: data.channels.count, mask: mask)
        let structures = data.structures.map { $0?.data ?? [UInt8](repeating: 0, count: shape.count) }
        let labels = SegmentationSubject.oneHot(structures: structures, voxelCount: shape.count)
        let prepared = try SegmentationSubject(id: subject, shape: shape, channels: data.channels.count, image: image,
                                           classCount: structures.count + 1, labels: labels, mask: mask)
        return (prepared, data)
    }

    public func loadAll(_ subjects: [String], label: String) throws -> [SegmentationSubject] {
        let progress = Progress("loading \(label)", total: subjects.count)
        return try subjects.map { s in
            let r = try load(s).prepared
            progress.step(s)
            return r
        }
    }
}

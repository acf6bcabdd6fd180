import Foundation
import IECore
import IEConfig
import IEImage
import IENet

/// How a full image becomes a segmentation (SPEC §5 and §6).
public struct InferenceSettings {
    public var patch: Shape3D
    public var stride: Shape3D?
    public var batchSize: Int = 8
    public var paddingMode: PaddingMode = .edge
    /// Average (default), Gaussian, InnerEye's or MONAI's (config `inference_tiling`; `--gaussian` forces Gaussian,
    /// or MONAIGaussian for a MONAI tiling). Set `.innerEye` to reproduce InnerEye's segmentation of an
    /// InnerEye-trained model exactly, `.monai`/`.monaiGaussian` for MONAI's sliding_window_inference.
    public var tiling: InferenceTiling = .average
    /// MONAI's `overlap` (config `inference_overlap`), for the MONAI tilings only.
    public var overlap = 0.25
    public var testTimeMirroring = false
    public var smoothingMM: (z: Double, y: Double, x: Double)?
    /// Class indices (1-based structures) that keep only their largest connected component.
    public var largestComponentClasses: [Int] = []
    /// summed_probability_rules and slice_exclusion_rules (none when disable_extra_postprocessing).
    public var labelRules = LabelRules()
    public var majorityVote = false

    public init(patch: Shape3D) { self.patch = patch }

    public init(config: ModelConfig, gaussian: Bool = false, tta: Bool = false) throws {
        guard let crop = config.testCropSize ?? config.cropSize, crop.count == 3 else {
            throw IEError.usage("\(config.name): test_crop_size and crop_size are unset, expected a (Z,Y,X) triple", file: config.file)
        }
        self.init(patch: Shape3D(crop))
        stride = config.inferenceStrideSize.map(Shape3D.init)
        batchSize = max(1, config.inferenceBatchSize)
        paddingMode = PaddingMode(configValue: config.paddingMode) ?? .edge
        guard let configured = InferenceTiling(rawValue: config.inferenceTiling) else {
            throw IEError.usage("\(config.name): inference_tiling \(config.inferenceTiling), expected one of \(InferenceTiling.allCases.map(\.rawValue).joined(separator: ", "))", file: config.file)
        }
        tiling = !gaussian ? configured : (configured == .monai || configured == .monaiGaussian) ? .monaiGaussian : .gaussian
        overlap = config.inferenceOverlap
        testTimeMirroring = tta
        if let s = config.posteriorSmoothingMM, !s.isEmpty {
            smoothingMM = s.count == 3 ? (s[0], s[1], s[2]) : (s[0], s[0], s[0])
        }
        let names = config.groundTruthIds
        largestComponentClasses = try (config.largestConnectedComponentClasses ?? []).map { name in
            guard let i = names.firstIndex(of: name) else {
                throw IEError.usage("largest_connected_component_foreground_classes: \(name) is not a ground_truth_id, expected one of \(names.joined(separator: ", "))", file: config.file)
            }
            return i + 1
        }
        majorityVote = config.ensembleAggregationType == "MajorityVote"
        if !config.disableExtraPostprocessing {
            func index(_ key: String, _ name: String) throws -> Int {
                guard let i = names.firstIndex(of: name) else {
                    throw IEError.usage("\(key): \(name) is not a ground_truth_id, expected one of \(names.joined(separator: ", "))", file: config.file)
                }
                return i + 1
            }
            labelRules.summedProbability = try config.summedProbabilityRules().map {
                LabelRules.SummedProbability(first: try index("summed_probability_rules", $0.firstClass),
                                             second: try index("summed_probability_rules", $0.secondClass),
                                             external: try index("summed_probability_rules", $0.externalClass))
            }
            labelRules.sliceExclusion = try config.sliceExclusionRules().map {
                LabelRules.SliceExclusion(higher: try index("slice_exclusion_rules", $0.higherClass),
                                          lower: try index("slice_exclusion_rules", $0.lowerClass),
                                          higherDominates: $0.higherDominates)
            }
        }
    }
}

/// Runs one model or an ensemble (mean of the members' softmax posteriors) over whole images.
public final class Segmenter {
    public let models: [UNet3D]
    public let settings: InferenceSettings
    public let classCount: Int
    /// With a label, `segment` reports its sliding-window patches (every model's, with an ETA) at most every
    /// 5 s: a single large image is otherwise silent for minutes. nil: quiet (a run's inference reports subjects).
    public var progressLabel: String?

    public init(models: [UNet3D], settings: InferenceSettings) throws {
        guard let first = models.first else { throw IEError.usage("no model given, expected at least one checkpoint") }
        guard models.allSatisfy({ $0.classes == first.classes && $0.imageChannels == first.imageChannels }) else {
            throw IEError.usage("ensemble members differ in image channels or classes, expected the same architecture")
        }
        let m = first.sizeMultiple
        guard settings.patch.z % m == 0, settings.patch.y % m == 0, settings.patch.x % m == 0 else {
            throw IEError.usage("test_crop_size \(settings.patch) is not a multiple of \(m) on every axis, as the UNet3D needs")
        }
        self.models = models
        self.settings = settings
        classCount = first.classes
    }

    /// Softmax posteriors [K, Z, Y, X] of one model over the whole normalised image [C, Z, Y, X].
    func posteriors(model: UNet3D, image: [Float], channels: Int, shape: Shape3D,
                    patchProgress: ((Int, Int) -> Void)? = nil) throws -> [Float] {
        let weighting: SlidingWindow.Weighting
        switch settings.tiling {
        case .gaussian: weighting = .gaussian
        case .monaiGaussian: weighting = .monaiGaussian(sigmaScale: 0.125)
        case .average, .innerEye, .monai: weighting = .uniform
        }
        let monai = settings.tiling == .monai || settings.tiling == .monaiGaussian
        let window = try SlidingWindow(patch: settings.patch, stride: settings.stride, classCount: classCount,
                                   batchSize: settings.batchSize, paddingMode: settings.paddingMode, weighting: weighting,
                                   placement: monai ? .monai(overlap: settings.overlap) : .padded,
                                   mirrorings: settings.testTimeMirroring ? SlidingWindow.allMirrorings : [[]],
                                   multiple: model.sizeMultiple)
        let predict: SlidingWindow.Predictor = { batch, count, patch in
            let input = Tensor(shape: [count, channels, patch.z, patch.y, patch.x], data: batch)
            return model.predictProbabilities(input).data
        }
        if settings.tiling == .innerEye {
            return try window.runInnerEye(image: image, channels: channels, shape: shape, progress: patchProgress, predict: predict)
        }
        return try window.run(image: image, channels: channels, shape: shape, progress: patchProgress, predict: predict)
    }

    /// Averaged posteriors, post-processed, and labels (SPEC §5, §6).
    public func segment(image: [Float], channels: Int, shape: Shape3D, mask: [UInt8]?,
                        spacing: (z: Double, y: Double, x: Double)) throws -> (posteriors: [Float], labels: [UInt8]) {
        var mean = [Float]()
        var votes: [[UInt8]] = []
        var progress: IECore.Progress?
        for (m, model) in models.enumerated() {
            let report: ((Int, Int) -> Void)? = progressLabel.map { label in
                { [models] done, total in
                    if progress == nil { progress = IECore.Progress(label, total: models.count * total, every: 5) }
                    progress?.advance(to: m * total + done, detail: models.count > 1 ? "(model \(m + 1) of \(models.count))" : "")
                }
            }
            let p = try posteriors(model: model, image: image, channels: channels, shape: shape, patchProgress: report)
            // A NaN posterior would become background in the label map and 0 in the uint8 posteriors: a silent,
            // plausible-looking empty segmentation. Refuse it instead.
            if let bad = p.firstIndex(where: { !$0.isFinite }) {
                let voxel = bad % max(shape.count, 1)
                throw IEError.failure("the model's posteriors are not finite (\(p[bad]) at voxel \(voxel) of class \(bad / max(shape.count, 1))): "
                                      + "check the image's normalisation parameters (window, level, output_range) and the checkpoint")
            }
            // One model: its posteriors are the mean (no copy, no extra K floats per voxel).
            if mean.isEmpty { mean = p } else { for i in 0..<mean.count { mean[i] += p[i] } }
            if settings.majorityVote {
                var masked = p
                if let mask { PostProcessing.applyMask(&masked, classCount: classCount, mask: mask) }
                votes.append(PostProcessing.argmax(masked, classCount: classCount))
            }
        }
        if models.count > 1 {
            let scale = 1 / Float(models.count)
            for i in 0..<mean.count { mean[i] *= scale }
        }
        var voted: [UInt8]?
        if settings.majorityVote && models.count > 1 {
            var labels = [UInt8](repeating: 0, count: shape.count)
            var counts = [Int](repeating: 0, count: classCount)
            for v in 0..<shape.count {
                for c in 0..<classCount { counts[c] = 0 }
                for vote in votes { counts[Int(vote[v])] += 1 }
                var best = 0
                for c in 1..<classCount where counts[c] > counts[best] { best = c }
                labels[v] = UInt8(best)
            }
            voted = labels
        }
        return PostProcessing.run(posteriors: mean, classCount: classCount, shape: shape, mask: mask,
                                  smoothingMM: settings.smoothingMM, spacing: spacing,
                                  largestComponentClasses: settings.largestComponentClasses,
                                  rules: settings.labelRules, votes: voted)
    }
}

/// Loading models from checkpoint files (hash verified; a bad file is exit 3). `architecture` is used for a
/// checkpoint that records none (written by PyTorch, SPEC 4.4).
public enum ModelLoading {
    /// `options` default to the environment's (SPEC 12); the tools pass theirs.
    public static func load(checkpointPath: String, architecture: UNet3DArchitecture? = nil,
                            options: EngineOptions = .fromEnvironment()) throws -> UNet3D {
        let model = try {
            let checkpoint = try RunPipeline.readCheckpoint(checkpointPath)
            let model = try checkpoint.makeModel(source: checkpointPath, configured: architecture, options: options)
            try checkpoint.restore(model: model, source: checkpointPath)
            return model
        }()
        releaseFreeHeapMemory()   // the file's bytes and the initial weights are gone: their pages go back
        return model
    }

    /// Loads a checkpoint to segment with `config`: its architecture is the config's where the checkpoint records
    /// none, and its image channels and classes must be the config's (`requireMatch`).
    public static func load(checkpointPath: String, config: ModelConfig,
                            options: EngineOptions = .fromEnvironment()) throws -> UNet3D {
        let model = try load(checkpointPath: checkpointPath, architecture: .configured(config), options: options)
        try requireMatch(model.architecture, checkpoint: checkpointPath, config: config)
        return model
    }

    /// A checkpoint whose image channels or classes are not the config's would read the image's channels wrongly
    /// and write another number of class files: bad input (exit 3) naming the checkpoint and both counts, before
    /// any inference.
    public static func requireMatch(_ architecture: UNet3DArchitecture, checkpoint: String, config: ModelConfig) throws {
        let channels = config.imageChannels, classes = [SubjectOutputNames.backgroundClass] + config.groundTruthIds
        guard architecture.imageChannels != channels.count || architecture.classes != classes.count else { return }
        func count(_ n: Int, _ noun: String) -> String { "\(n) \(noun)\(n == 1 ? "" : noun.hasSuffix("s") ? "es" : "s")" }
        throw IEError.badInput("checkpoint has \(count(architecture.imageChannels, "image channel")) and "
                               + "\(count(architecture.classes, "class")), expected \(count(channels.count, "image channel")) "
                               + "(\(channels.joined(separator: ", "))) and \(count(classes.count, "class")) "
                               + "(\(classes.joined(separator: ", "))) as model \(config.name)'s config", file: checkpoint)
    }
}

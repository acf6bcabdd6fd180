import Foundation
import IECore

/// One `weight:loss_type:class_weight_power` entry of mixture_loss_components.
public struct MixtureLossComponent: Sendable, Equatable {
    public var weight: Double
    public var lossType: String
    public var classWeightPower: Double
}

/// Typed access to the parameters (SPEC §1.4). Lists that may be unset are optionals.
extension ModelConfig {
    func int(_ k: String) -> Int { if case .int(let v) = value(k) { return v }; return 0 }
    func float(_ k: String) -> Double {
        switch value(k) { case .float(let v): return v; case .int(let v): return Double(v); default: return 0 }
    }
    func bool(_ k: String) -> Bool { if case .bool(let v) = value(k) { return v }; return false }
    func string(_ k: String) -> String? { if case .string(let v) = value(k) { return v }; return nil }
    func strings(_ k: String) -> [String]? { if case .strings(let v) = value(k) { return v }; return nil }
    func ints(_ k: String) -> [Int]? { if case .ints(let v) = value(k) { return v }; return nil }
    func floats(_ k: String) -> [Double]? { if case .floats(let v) = value(k) { return v }; return nil }

    // Data
    public var datasetId: String? { string("dataset_id") }
    /// local_dataset as written (see `datasetFolder(settings:)` for the resolved path).
    public var localDataset: String? { string("local_dataset") }
    public var datasetCSV: String { string("dataset_csv") ?? "dataset.csv" }
    public var imageChannels: [String] { strings("image_channels") ?? [] }
    public var groundTruthIds: [String] { strings("ground_truth_ids") ?? [] }
    public var groundTruthDisplayNames: [String] { strings("ground_truth_ids_display_names") ?? [] }
    public var maskId: String? { string("mask_id") }
    public var checkExclusive: Bool { bool("check_exclusive") }
    public var allowIncompleteLabels: Bool { bool("allow_incomplete_labels") }

    // Splits
    public var trainSubjects: [String]? { strings("train_subjects") }
    public var valSubjects: [String]? { strings("val_subjects") }
    public var testSubjects: [String]? { strings("test_subjects") }
    public var proportionTrain: Double { float("proportion_train") }
    public var proportionVal: Double { float("proportion_val") }
    public var proportionTest: Double { float("proportion_test") }
    public var splitByInstitution: Bool { bool("split_by_institution") }
    public var excludeInstitutions: [String] { strings("exclude_institutions") ?? [] }
    public var institutionsForTestOnly: [String] { strings("institutions_for_test_only") ?? [] }
    public var subjectIdsForTestOnly: [String] { strings("subject_ids_for_test_only") ?? [] }
    public var groupColumn: String? { string("group_column") }
    public var numberOfCrossValidationSplits: Int { int("number_of_cross_validation_splits") }
    public var crossValidationSplitIndex: Int { int("cross_validation_split_index") }
    public var performCrossValidation: Bool { numberOfCrossValidationSplits > 1 }

    // Model
    public var architecture: String { string("architecture") ?? "UNet3D" }
    public var featureChannels: [Int] { ints("feature_channels") ?? [] }
    public var kernelSize: Int { int("kernel_size") }
    public var numDownsamplingPaths: Int { int("num_downsampling_paths") }
    /// (Z, Y, X); nil when unset (partial configs).
    public var cropSize: [Int]? { ints("crop_size") }
    /// (Z, Y, X); default crop_size.
    public var testCropSize: [Int]? { ints("test_crop_size") }
    /// (Z, Y, X); default test_crop_size.
    public var inferenceStrideSize: [Int]? { ints("inference_stride_size") }
    public var inferenceBatchSize: Int { int("inference_batch_size") }
    /// Average, Gaussian or InnerEye (SPEC §5).
    public var inferenceTiling: String { string("inference_tiling") ?? "Average" }
    /// MONAI's `overlap` for the MONAI tilings (SPEC §5).
    public var inferenceOverlap: Double { float("inference_overlap") }
    /// Background first; nil when unset.
    public var classWeights: [Double]? { floats("class_weights") }
    /// The number of classes including background.
    public var numberOfClasses: Int { groundTruthIds.count + 1 }

    // Loss
    public var lossType: String { string("loss_type") ?? "SoftDice" }
    public func mixtureLossComponents() throws -> [MixtureLossComponent] {
        guard let entries = strings("mixture_loss_components") else { return [] }
        return try entries.map { entry in
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 3, let w = Double(parts[0]), let p = Double(parts[2]),
                  let type = ParameterSchema.lossTypes.first(where: { $0.lowercased() == parts[1].lowercased() }), type != "Mixture" else {
                throw fail("mixture_loss_components", "cannot use '\(entry)', expected weight:loss_type:class_weight_power such as 0.5:Focal:0.2")
            }
            return MixtureLossComponent(weight: w, lossType: type, classWeightPower: p)
        }
    }
    public var focalLossGamma: Double { float("focal_loss_gamma") }
    public var labelSmoothingEps: Double { float("label_smoothing_eps") }
    public var lossClassWeightPower: Double? { if case .float(let v) = value("loss_class_weight_power") { return v }; return nil }

    // Normalisation
    public var normMethod: String { string("norm_method") ?? "CtWindow" }
    public var window: Int { int("window") }
    public var level: Int { int("level") }
    public var outputRange: (Double, Double) { let r = floats("output_range") ?? [-1, 1]; return (r[0], r[1]) }
    public var sharpen: Double { float("sharpen") }
    public var tail: [Double]? { floats("tail") }
    public var trimPercentiles: (Double, Double) { let r = floats("trim_percentiles") ?? [1, 99]; return (r[0], r[1]) }
    public var paddingMode: String { string("padding_mode") ?? "Edge" }

    // Training
    public var train: Bool { bool("train") }
    public var numEpochs: Int { int("num_epochs") }
    public var startEpoch: Int { int("start_epoch") }
    public var trainBatchSize: Int { int("train_batch_size") }
    public var randomSeed: Int { int("random_seed") }
    /// InnerEye's effective seed: the fold index is added in cross-validation runs.
    public var effectiveRandomSeed: Int { randomSeed + (performCrossValidation ? crossValidationSplitIndex : 0) }
    public var applyAugmentations: Bool { bool("apply_augmentations") }
    public var lRate: Double { float("l_rate") }
    public var minLRate: Double { float("min_l_rate") }
    public var lRateScheduler: String { string("l_rate_scheduler") ?? "Polynomial" }
    public var lRatePolynomialGamma: Double { float("l_rate_polynomial_gamma") }
    public var lRateExponentialGamma: Double { float("l_rate_exponential_gamma") }
    public var lRateStepGamma: Double { float("l_rate_step_gamma") }
    public var lRateStepStepSize: Int { int("l_rate_step_step_size") }
    public var lRateMultiStepGamma: Double { float("l_rate_multi_step_gamma") }
    public var lRateMultiStepMilestones: [Int]? { ints("l_rate_multi_step_milestones") }
    public var lRateWarmup: String { string("l_rate_warmup") ?? "NoWarmUp" }
    public var lRateWarmupEpochs: Int { int("l_rate_warmup_epochs") }
    public var optimizerType: String { string("optimizer_type") ?? "Adam" }
    public var adamBetas: (Double, Double) { let b = floats("adam_betas") ?? [0.9, 0.999]; return (b[0], b[1]) }
    public var optEps: Double { float("opt_eps") }
    public var rmsAlpha: Double { float("rms_alpha") }
    public var momentum: Double { float("momentum") }
    public var weightDecay: Double { float("weight_decay") }
    public var saveStartEpoch: Int { int("save_start_epoch") }
    public var saveStepEpochs: Int { int("save_step_epochs") }
    /// Whether the epoch-`epoch` checkpoint is kept (SPEC §1.4: epoch >= start with epoch % step == 0, and the last).
    public func keepsCheckpoint(epoch: Int) -> Bool {
        epoch == numEpochs || (epoch >= saveStartEpoch && saveStepEpochs > 0 && epoch % saveStepEpochs == 0)
    }
    public var runRecoveryId: String? { string("run_recovery_id") }
    public var localWeightsPath: [String] { strings("local_weights_path") ?? [] }
    public var modelId: String? { string("model_id") }

    // Inference
    public var epochsToTest: [Int] { ints("epochs_to_test") ?? [numEpochs] }
    public var inferenceOnTrainSet: Bool { bool("inference_on_train_set") }
    public var inferenceOnValSet: Bool { bool("inference_on_val_set") }
    public var inferenceOnTestSet: Bool { bool("inference_on_test_set") }
    public var ensembleAggregationType: String { string("ensemble_aggregation_type") ?? "Average" }
    public var posteriorSmoothingMM: [Double]? { floats("posterior_smoothing_mm") }
    public var largestConnectedComponentClasses: [String]? { strings("largest_connected_component_foreground_classes") }
    /// comparison_runs as (name, EXPERIMENT:RUN_ID) pairs.
    public func comparisonRuns() throws -> [(name: String, runRecoveryId: String)] {
        guard let entries = strings("comparison_runs") else { return [] }
        return try entries.map { e in
            guard let eq = e.firstIndex(of: "=") else {
                throw fail("comparison_runs", "cannot use '\(e)', expected name=EXPERIMENT:RUN_ID")
            }
            return (String(e[..<eq]), String(e[e.index(after: eq)...]))
        }
    }

    // Execution
    public var numNodes: Int { int("num_nodes") }
    public var slurm: Bool { bool("slurm") }
    public var cluster: String? { string("cluster") }

    /// The dataset folder: local_dataset (relative to the file or the working directory that set it), else
    /// `<datasets_dir>/<dataset_id>`.
    public func datasetFolder(settings: Settings, workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> String {
        if let local = localDataset {
            var base = workingDirectory
            if let s = sources["local_dataset"], s.flag == nil, let f = s.file {
                base = URL(fileURLWithPath: f).deletingLastPathComponent().path
            }
            return resolve(local, against: base)
        }
        if let id = datasetId { return settings.datasetFolder(id: id) }
        throw IEError.usage("\(name) sets neither dataset_id nor local_dataset, expected one of them (or --dataset_id=NAME)", file: file)
    }

    /// `<dataset folder>/<dataset_csv>`.
    public func datasetCSVPath(settings: Settings, workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> String {
        try datasetFolder(settings: settings, workingDirectory: workingDirectory) + "/" + datasetCSV
    }
}

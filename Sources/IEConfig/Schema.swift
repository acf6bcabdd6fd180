import Foundation

/// One model-config parameter: InnerEye's name, type and default (SPEC §1.4).
public struct ParameterSpec: Sendable {
    public var name: String
    public var type: ParameterType
    /// `.none` means "not set"; whether that is allowed for a runnable config is decided by `ModelConfig.validate`.
    public var defaultValue: ConfigValue
    public var doc: String

    public init(_ name: String, _ type: ParameterType, _ defaultValue: ConfigValue, _ doc: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.doc = doc
    }

    /// Converts command-line or YAML text (`type.parse`). loss_type keeps a name it does not know as given: which
    /// losses a model takes depends on its category, so ModelConfig.validateCategory refuses it naming those.
    public func parse(_ text: String) -> ConfigValue? {
        if let value = type.parse(text) { return value }
        let name = text.trimmingCharacters(in: .whitespaces)
        return self.name == "loss_type" && !name.isEmpty ? .string(name) : nil
    }
}

/// The full parameter schema, in the order args.txt lists it.
public enum ParameterSchema {
    public static let lossTypes = ["SoftDice", "CrossEntropy", "Focal", "Mixture"]
    /// Losses of classification and regression models (InnerEye's ScalarLoss).
    public static let scalarLossTypes = ["BCEWithLogits", "WeightedCrossEntropy", "MSE"]
    public static let normMethods = ["CtWindow", "MriWindow", "TrimmedNorm", "SimpleNorm", "None"]
    public static let schedulers = ["Polynomial", "Exponential", "Step", "MultiStep", "Cosine"]
    public static let optimizers = ["Adam", "AMSGrad", "SGD", "RMSprop"]
    public static let paddingModes = ["Edge", "Zero", "Reflect", "Symmetric", "NoPadding"]
    public static let inferenceTilings = ["Average", "Gaussian", "InnerEye", "MONAI", "MONAIGaussian"]

    public static let parameters: [ParameterSpec] = [
        // Data
        ParameterSpec("dataset_id", .string, .none, "dataset name: <datasets_dir>/<dataset_id>/<dataset_csv>"),
        ParameterSpec("local_dataset", .string, .none, "dataset folder (relative to the config file, or to the working directory on the command line)"),
        ParameterSpec("dataset_csv", .string, .string("dataset.csv"), "name of the dataset file inside the dataset folder"),
        ParameterSpec("image_channels", .fileNames, .none, "channel names of the input images, in network input order"),
        ParameterSpec("ground_truth_ids", .fileNames, .none, "channel names of the ground-truth structures (foreground classes)"),
        ParameterSpec("ground_truth_ids_display_names", .fileNames, .none, "display names of the structures (default ground_truth_ids)"),
        ParameterSpec("structure_defaults", .choice(["None", "ProstateBase", "HeadAndNeckBase", "HeadAndNeckPaper"]), .string("None"),
                      "InnerEye Base class whose rules derive per-structure lists from ground_truth_ids"),
        ParameterSpec("mask_id", .string, .none, "channel name of the body mask, if any"),
        ParameterSpec("check_exclusive", .bool, .bool(true), "structures must not overlap"),
        ParameterSpec("allow_incomplete_labels", .bool, .bool(false), "subjects may lack some structures"),
        // Splits (SPEC §3)
        ParameterSpec("train_subjects", .fileNames, .none, "explicit training subjects"),
        ParameterSpec("val_subjects", .fileNames, .none, "explicit validation subjects"),
        ParameterSpec("test_subjects", .fileNames, .none, "explicit test subjects"),
        ParameterSpec("proportion_train", .float, .float(0.8), "fraction of subjects for training (proportional split)"),
        ParameterSpec("proportion_val", .float, .float(0.1), "fraction of subjects for validation"),
        ParameterSpec("proportion_test", .float, .float(0.1), "fraction of subjects for testing"),
        ParameterSpec("split_by_institution", .bool, .bool(false), "apply the proportions within each institutionId"),
        ParameterSpec("exclude_institutions", .names, .none, "institutions left out of every split"),
        ParameterSpec("institutions_for_test_only", .names, .none, "institutions whose subjects all go to the test set"),
        ParameterSpec("subject_ids_for_test_only", .fileNames, .none, "subjects that always go to the test set"),
        ParameterSpec("group_column", .string, .none, "dataset.csv column whose values are kept together in one split"),
        ParameterSpec("number_of_cross_validation_splits", .int, .int(0), "k of k-fold cross-validation (0: none)"),
        ParameterSpec("cross_validation_split_index", .int, .int(-1), "the fold of this run (-1: none)"),
        // Model
        ParameterSpec("architecture", .choice(["UNet3D"]), .string("UNet3D"), "network architecture (InnerEye's Basic and UNet2D are not built)"),
        ParameterSpec("feature_channels", .ints, .none, "feature channels of the first level"),
        ParameterSpec("kernel_size", .int, .int(3), "convolution kernel size"),
        ParameterSpec("num_downsampling_paths", .int, .int(4), "UNet levels"),
        ParameterSpec("crop_size", .intTuple(3), .none, "training patch (Z,Y,X)"),
        ParameterSpec("test_crop_size", .intTuple(3), .none, "inference patch (Z,Y,X); default crop_size"),
        ParameterSpec("inference_stride_size", .intTuple(3), .none, "inference stride (Z,Y,X); default test_crop_size"),
        ParameterSpec("inference_batch_size", .int, .int(8), "patches per inference batch"),
        ParameterSpec("inference_tiling", .choice(inferenceTilings), .string("Average"),
                      "how patches make the whole image: Average, Gaussian (blended), InnerEye (its padding and centre crops) or MONAI / MONAIGaussian (sliding_window_inference)"),
        ParameterSpec("inference_overlap", .float, .float(0.25),
                      "MONAI tilings: overlap of neighbouring windows per axis, 0 <= overlap < 1 (scan interval int(patch * (1 - overlap)))"),
        ParameterSpec("class_weights", .floats, .none, "probabilities of a crop centre's class, background first, sum 1"),
        // Loss
        ParameterSpec("loss_type", .choice(lossTypes + scalarLossTypes), .none,
                      "training loss (default SoftDice; classification BCEWithLogits; regression MSE)"),
        ParameterSpec("mixture_loss_components", .names, .none, "weight:loss_type:class_weight_power entries for Mixture"),
        ParameterSpec("focal_loss_gamma", .float, .float(1.0), "Focal loss gamma"),
        ParameterSpec("loss_class_weight_power", .float, .none, "power of the class weights in the loss (None: unweighted)"),
        ParameterSpec("label_smoothing_eps", .float, .float(0.0), "label smoothing of the CrossEntropy loss target, 0 ... 1"),
        // Normalisation
        ParameterSpec("norm_method", .choice(normMethods), .string("CtWindow"), "photometric normalisation"),
        ParameterSpec("window", .int, .int(600), "CT window width"),
        ParameterSpec("level", .int, .int(50), "CT window level"),
        ParameterSpec("output_range", .floatTuple(2), .floats([-1.0, 1.0]), "normalised value range"),
        ParameterSpec("sharpen", .float, .float(0.9), "MriWindow: standard deviations inside the window"),
        ParameterSpec("tail", .floats, .none, "MriWindow: tail per input channel"),
        ParameterSpec("trim_percentiles", .floatTuple(2), .floats([1.0, 99.0]), "TrimmedNorm percentiles"),
        ParameterSpec("padding_mode", .choice(paddingModes), .string("Edge"), "padding of images smaller than a crop"),
        // Training
        ParameterSpec("train", .bool, .bool(true), "train (false: inference with existing weights only)"),
        ParameterSpec("num_epochs", .int, .int(100), "training epochs"),
        ParameterSpec("start_epoch", .int, .int(0), "first epoch (with run_recovery_id)"),
        ParameterSpec("train_batch_size", .int, .int(4), "crops per training batch"),
        ParameterSpec("random_seed", .int, .int(42), "seed (effective seed = seed + cross_validation_split_index)"),
        ParameterSpec("apply_augmentations", .bool, .bool(false), "apply the SPEC §4.3 augmentations to training crops"),
        ParameterSpec("l_rate", .float, .float(1e-4), "initial learning rate"),
        ParameterSpec("min_l_rate", .float, .float(0.0), "minimum learning rate (Polynomial, Cosine)"),
        ParameterSpec("l_rate_scheduler", .choice(schedulers), .string("Polynomial"), "learning-rate schedule"),
        ParameterSpec("l_rate_polynomial_gamma", .float, .float(1e-4), "Polynomial schedule exponent"),
        ParameterSpec("l_rate_exponential_gamma", .float, .float(0.9), "Exponential schedule factor"),
        ParameterSpec("l_rate_step_gamma", .float, .float(0.1), "Step schedule factor"),
        ParameterSpec("l_rate_step_step_size", .int, .int(50), "Step schedule period (epochs)"),
        ParameterSpec("l_rate_multi_step_gamma", .float, .float(0.1), "MultiStep schedule factor"),
        ParameterSpec("l_rate_multi_step_milestones", .ints, .none, "MultiStep milestones (epochs)"),
        ParameterSpec("l_rate_warmup", .choice(["NoWarmUp", "Linear"]), .string("NoWarmUp"), "learning-rate warm-up"),
        ParameterSpec("l_rate_warmup_epochs", .int, .int(0), "warm-up epochs (>= 0)"),
        ParameterSpec("optimizer_type", .choice(optimizers), .string("Adam"), "optimizer"),
        ParameterSpec("adam_betas", .floatTuple(2), .floats([0.9, 0.999]), "Adam betas"),
        ParameterSpec("opt_eps", .float, .float(1e-4), "Adam/RMSprop epsilon"),
        ParameterSpec("rms_alpha", .float, .float(0.9), "RMSprop alpha"),
        ParameterSpec("momentum", .float, .float(0.6), "SGD/RMSprop momentum"),
        ParameterSpec("weight_decay", .float, .float(1e-4), "L2 weight decay"),
        ParameterSpec("save_start_epoch", .int, .int(100), "keep epoch checkpoints from this epoch on"),
        ParameterSpec("save_step_epochs", .int, .int(50), "keep epoch checkpoints every this many epochs"),
        ParameterSpec("run_recovery_id", .string, .none, "EXPERIMENT:RUN_ID to continue from"),
        ParameterSpec("local_weights_path", .names, .none, "checkpoint files to start from or infer with"),
        ParameterSpec("model_id", .string, .none, "registered model Name:version"),
        // Inference and post-processing
        ParameterSpec("epochs_to_test", .ints, .none, "epochs to run inference with (default [num_epochs])"),
        ParameterSpec("inference_on_train_set", .bool, .bool(false), "run inference on the training set"),
        ParameterSpec("inference_on_val_set", .bool, .bool(true), "run inference on the validation set"),
        ParameterSpec("inference_on_test_set", .bool, .bool(true), "run inference on the test set"),
        ParameterSpec("ensemble_aggregation_type", .choice(["Average", "MajorityVote"]), .string("Average"), "ensemble combination"),
        ParameterSpec("posterior_smoothing_mm", .floatTuple(3), .none, "Gaussian posterior smoothing (Z,Y,X) in mm"),
        ParameterSpec("largest_connected_component_foreground_classes", .fileNames, .none, "classes reduced to their largest component"),
        ParameterSpec("summed_probability_rules", .records(["first_class", "second_class", "external_class"]), .none,
                      "where external_class won but first_class + second_class is more probable, the likelier of the two wins"),
        ParameterSpec("slice_exclusion_rules", .records(["higher_class", "lower_class", "higher_dominates"]), .none,
                      "slices holding both classes go to one of them (higher_dominates: higher_class, else lower_class)"),
        ParameterSpec("disable_extra_postprocessing", .bool, .bool(false), "ignore summed_probability_rules and slice_exclusion_rules"),
        ParameterSpec("comparison_runs", .namedEntries, .none, "baselines as name=EXPERIMENT:RUN_ID"),
        // Classification and regression models (SPEC §13)
        ParameterSpec("model_category", .choice(["Segmentation", "Classification", "Regression"]), .none,
                      "kind of model (default: from the config's folder, segmentation/ or classification/)"),
        ParameterSpec("label_channels", .names, .none, "channels whose dataset rows hold the label (default: one row per subject)"),
        ParameterSpec("label_value_column", .string, .string("label"), "dataset.csv column of the label"),
        ParameterSpec("numerical_columns", .names, .none, "dataset.csv columns of numbers fed to the model beside the image"),
        ParameterSpec("categorical_columns", .names, .none, "dataset.csv columns of categories fed to the model one-hot encoded"),
        ParameterSpec("non_image_feature_channels", .names, .none, "channels whose rows hold the feature columns (default: the label row)"),
        ParameterSpec("class_names", .fileNames, .none, "names of the classes of a multi-label model (one output each; default: one binary output)"),
        ParameterSpec("image_size", .ints, .none, "size every image must have after the val/test transforms, [H, W] or [D, H, W]"),
        ParameterSpec("hidden_units", .int, .int(32), "units of the classifier's hidden layer"),
        ParameterSpec("train_transforms", .transforms, .none, "transforms of training images, a list of {name: ..., p: ..., field: value}"),
        ParameterSpec("val_transforms", .transforms, .none, "transforms of validation and test images"),
        // Execution
        ParameterSpec("num_nodes", .int, .int(1), "nodes for data-parallel training (Slurm)"),
        ParameterSpec("slurm", .bool, .bool(false), "submit to Slurm instead of running here"),
        ParameterSpec("cluster", .string, .none, "Slurm partition"),
    ]

    public static let byName: [String: ParameterSpec] = {
        var d: [String: ParameterSpec] = [:]
        for p in parameters { d[p.name] = p }
        return d
    }()

    public static var names: [String] { parameters.map(\.name) }

    /// The parameters ie-split chooses a run's subjects with (SPEC §3): its dataset and split rules. A tool working
    /// on an existing run takes them only with the run's own values (RunDirectory.modelConfig).
    public static let splitParameters = [
        "dataset_id", "local_dataset", "dataset_csv", "train_subjects", "val_subjects", "test_subjects",
        "proportion_train", "proportion_val", "proportion_test", "split_by_institution", "exclude_institutions",
        "institutions_for_test_only", "subject_ids_for_test_only", "group_column", "number_of_cross_validation_splits",
        "cross_validation_split_index",
    ]

    /// Whether a YAML value of `spec` may be a list of lists, each inner list one colon-joined entry:
    /// mixture_loss_components `[[0.5, Focal, 0.2], ...]` and the records (`[[brainstem, spinal_cord, False]]`).
    static func takesNestedLists(_ spec: ParameterSpec) -> Bool {
        spec.type.isRecords || spec.name == "mixture_loss_components"
    }

    /// Keys that are part of the config file format but not parameters.
    public static let structuralKeys = ["base"]
}

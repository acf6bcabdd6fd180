import Foundation
import IECore
import Yams

/// Where a parameter value came from, for error messages.
public struct ValueSource: Sendable, Equatable {
    public var file: String?
    public var line: Int?
    /// The command-line flag, for overrides.
    public var flag: String?

    public static func flag(_ f: String) -> ValueSource { ValueSource(file: nil, line: nil, flag: f) }
}

/// A model configuration after `base:` inheritance and command-line overrides (SPEC §1.2).
/// `explicitValues` holds what files and overrides set; `value(_:)` adds defaults and derived defaults.
public struct ModelConfig: Sendable {
    public var name: String
    /// The model's own YAML file (nil for a config built from defaults only, e.g. `ie-split --dataset`).
    public var file: String?
    /// Files read, most derived first.
    public var inheritanceChain: [String]
    public var explicitValues: [String: ConfigValue]
    public var sources: [String: ValueSource]

    public init(name: String, file: String? = nil, inheritanceChain: [String] = [],
                explicitValues: [String: ConfigValue] = [:], sources: [String: ValueSource] = [:]) {
        self.name = name
        self.file = file
        self.inheritanceChain = inheritanceChain
        self.explicitValues = explicitValues
        self.sources = sources
    }

    /// Names ending in `Base` are partial configs that only serve as `base:` of others.
    public var isPartial: Bool { name.hasSuffix("Base") }

    // MARK: Finding and loading

    /// `<dir>/segmentation/<name>.yml` or `<dir>/classification/<name>.yml` (or `.yaml`) in model_configs_dirs
    /// order, segmentation first; the first match wins.
    public static func findFile(name: String, settings: Settings) throws -> String {
        guard !name.isEmpty, !name.contains("/") else {
            throw IEError.usage("invalid model name '\(name)', expected a config name such as HelloWorld")
        }
        for dir in settings.modelConfigsDirs {
            for folder in ModelCategory.configFolders {
                for ext in ["yml", "yaml"] {
                    let candidate = dir + "/" + folder + "/" + name + "." + ext
                    if FileManager.default.fileExists(atPath: candidate) { return candidate }
                }
            }
        }
        let available = availableModels(settings: settings)
        let hint = closestMatch(name, in: available).map { " (closest: \($0))" } ?? ""
        throw IEError.usage("no model config '\(name)' in \(settings.modelConfigsDirs.flatMap { dir in ModelCategory.configFolders.map { dir + "/" + $0 } }.joined(separator: ", "))\(hint), expected one of: \(available.joined(separator: ", "))",
                            file: settings.file)
    }

    /// Every model name visible through the search path.
    public static func availableModels(settings: Settings) -> [String] {
        var names = Set<String>()
        for dir in settings.modelConfigsDirs {
            for folder in ModelCategory.configFolders.map({ dir + "/" + $0 }) {
            for f in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [] where f.hasSuffix(".yml") || f.hasSuffix(".yaml") {
                names.insert(String(f.prefix(upTo: f.lastIndex(of: ".")!)))
            }
            }
        }
        return names.sorted()
    }

    /// Loads `name` through the search path, applies `overrides`, and validates. With `requireRunnable`, partial
    /// (`*Base`) configs and configs lacking required keys are errors.
    public static func load(name: String, settings: Settings, overrides: [ConfigOverride] = [],
                            requireRunnable: Bool = true) throws -> ModelConfig {
        var config = try loadFile(name: name, settings: settings, visiting: [])
        try config.apply(overrides)
        if requireRunnable { try config.checkRunnable() }
        try config.validate()
        return config
    }

    /// A config with only defaults and overrides (tools that can work without a model, such as `ie-split --dataset`).
    public static func fromDefaults(overrides: [ConfigOverride] = []) throws -> ModelConfig {
        var config = ModelConfig(name: "default")
        try config.apply(overrides)
        try config.validate()
        return config
    }

    static func loadFile(name: String, settings: Settings, visiting: [String]) throws -> ModelConfig {
        let path = try findFile(name: name, settings: settings)
        if visiting.contains(name) {
            throw IEError.usage("config inheritance cycle \((visiting + [name]).joined(separator: " -> ")), expected base: chains that end",
                                file: path)
        }
        let parsed = try parseFile(path: path)
        var config: ModelConfig
        if let base = parsed.base {
            do {
                _ = try findFile(name: base.name, settings: settings)
            } catch let e as IEError {
                // Name the file and line that asked for the missing base.
                throw IEError.usage("base: \(e.message)", file: path, line: base.line)
            }
            config = try loadFile(name: base.name, settings: settings, visiting: visiting + [name])
        } else {
            config = ModelConfig(name: name)
        }
        config.name = name
        config.file = path
        config.inheritanceChain.insert(path, at: 0)
        for (key, value) in parsed.values {
            config.explicitValues[key] = value
            config.sources[key] = parsed.sources[key]
        }
        return config
    }

    struct ParsedFile {
        var base: (name: String, line: Int?)?
        var values: [(String, ConfigValue)] = []
        var sources: [String: ValueSource] = [:]
    }

    /// Reads one YAML file: every key must be a known parameter (or `base`), every value of the right type.
    static func parseFile(path: String) throws -> ParsedFile {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw IEError.usage(FileManager.default.isReadableFile(atPath: path) ? "cannot read model config: not UTF-8 text, expected a YAML file in UTF-8" : "cannot read model config, expected a readable YAML file", file: path)
        }
        try YAMLGuard.check(text, file: path)
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw IEError.usage("invalid YAML (\(yamlProblem(error))), expected a mapping of parameters", file: path)
        }
        var result = ParsedFile()
        guard let node else { return result }
        guard case .mapping(let mapping) = node else {
            throw IEError.usage("expected a mapping of parameter names to values", file: path, line: node.mark?.line)
        }
        var seen = Set<String>()
        for (keyNode, valueNode) in mapping {
            let key = keyNode.string ?? ""
            let line = keyNode.mark?.line
            if seen.contains(key) { throw IEError.usage("key '\(key)' appears twice, expected each key once", file: path, line: line) }
            seen.insert(key)
            if key == "base" {
                guard case .scalar(let s) = valueNode, !s.string.isEmpty else {
                    throw IEError.usage("base must name another model config", file: path, line: line)
                }
                result.base = (s.string, line)
                continue
            }
            if key == "<<" {
                // YAML 1.1's merge key copies a mapping given by an alias, and aliases are refused (YAMLGuard).
                throw IEError.usage("YAML merge key '<<' is not supported, expected every parameter written out (or base: OtherConfig)",
                                    file: path, line: line)
            }
            guard let spec = ParameterSchema.byName[key] else {
                let hint = closestMatch(key, in: ParameterSchema.names + ParameterSchema.structuralKeys).map { " (closest known key: \($0))" } ?? ""
                throw IEError.usage("unknown key '\(key)'\(hint), expected a parameter of SPEC §1.4", file: path, line: line)
            }
            let value = try convert(valueNode, spec: spec, file: path, line: line)
            result.values.append((key, value))
            result.sources[key] = ValueSource(file: path, line: line, flag: nil)
        }
        return result
    }

    static let nullWords: Set<String> = ["null", "Null", "NULL", "~", "None", ""]

    static func convert(_ node: Node, spec: ParameterSpec, file: String, line: Int?) throws -> ConfigValue {
        func fail(_ got: String) -> IEError {
            IEError.usage("\(spec.name): cannot use '\(got)', expected \(spec.type.expectation)", file: file, line: line)
        }
        if spec.type == .transforms {
            // The whole list of mappings, re-serialised so that the parser sees YAML flow text.
            guard case .sequence = node, let yaml = try? Yams.serialize(node: node),
                  let value = spec.type.parse(yaml) else { throw fail(node.string ?? "a value that is not a list of mappings") }
            return value
        }
        let text: String
        switch node {
        case .scalar(let s):
            text = s.string
            if case .choice(let c) = spec.type, c.contains(text) { return .string(text) }
            if s.style == .plain || s.string.isEmpty, nullWords.contains(text) {
                guard spec.defaultValue.isNone else { throw fail(text) }
                return .none
            }
        case .sequence(let seq):
            var parts: [String] = []
            for element in seq {
                switch element {
                case .scalar(let s): parts.append(s.string)
                // Nested lists, e.g. mixture_loss_components [[0.5, Focal, 0.2], ...], become weight:type:power.
                // Only lists of entries take them: elsewhere [[a, b], c] would silently become the name "a:b".
                case .sequence(let inner):
                    guard ParameterSchema.takesNestedLists(spec) else { throw fail("a nested list") }
                    var fields: [String] = []
                    for field in inner {
                        guard case .scalar(let f) = field else { throw fail("a list nested more than two deep") }
                        fields.append(f.string)
                    }
                    parts.append(fields.joined(separator: ":"))
                case .mapping(let m) where spec.type == .namedEntries:
                    for (k, v) in m { parts.append("\(k.string ?? "")=\(v.string ?? "")") }
                case .mapping(let m):
                    // A record written with its field names, e.g. {higher_class: a, lower_class: b, higher_dominates: false}.
                    guard case .records(let fields) = spec.type else { throw fail("a nested mapping") }
                    var byField: [String: String] = [:]
                    for (k, v) in m { byField[k.string ?? ""] = v.string ?? "" }
                    guard Set(byField.keys) == Set(fields) else {
                        throw IEError.usage("\(spec.name): entry with keys \(byField.keys.sorted().joined(separator: ", ")), expected exactly \(fields.joined(separator: ", "))", file: file, line: line)
                    }
                    parts.append(fields.map { byField[$0] ?? "" }.joined(separator: ":"))
                default: throw fail("a nested mapping")
                }
            }
            if spec.type == .namedEntries || spec.type == .names || spec.type == .fileNames || spec.type.isRecords {
                guard parts.allSatisfy({ !$0.contains(",") }) else { throw fail(parts.joined(separator: ",")) }
            }
            text = parts.joined(separator: ",")
            if parts.isEmpty {
                switch spec.type {
                case .names, .fileNames, .ints, .floats, .namedEntries, .records: break
                default: throw fail("[]")
                }
            }
        case .mapping(let m):
            guard spec.type == .namedEntries else { throw fail("a mapping") }
            text = m.map { "\($0.key.string ?? "")=\($0.value.string ?? "")" }.joined(separator: ",")
        }
        guard let value = spec.parse(text) else { throw fail(text) }
        return value
    }

    // MARK: Overrides

    public mutating func apply(_ overrides: [ConfigOverride]) throws {
        for o in overrides {
            explicitValues[o.name] = o.value
            sources[o.name] = .flag(o.flag)
        }
    }

    // MARK: Values

    /// The effective value: explicit, else derived default (test_crop_size, inference_stride_size,
    /// epochs_to_test, ground_truth_ids_display_names, and the `structure_defaults` rules), else the schema default.
    public func value(_ name: String) -> ConfigValue {
        if let v = explicitValues[name], !v.isNone { return v }
        if let derived = structureDefault(name) { return derived }
        switch name {
        case "test_crop_size": return value("crop_size")
        case "inference_stride_size": return value("test_crop_size")
        case "epochs_to_test":
            if case .int(let n) = value("num_epochs") { return .ints([n]) }
        case "ground_truth_ids_display_names": return value("ground_truth_ids")
        case "loss_type": return .string(category.defaultLossType)
        default: break
        }
        if let v = explicitValues[name] { return v }
        return ParameterSchema.byName[name]?.defaultValue ?? .none
    }

    public func isSet(_ name: String) -> Bool { !(explicitValues[name]?.isNone ?? true) }

    /// InnerEye's ProstateBase and HeadAndNeckBase derive every per-structure list a config leaves unset from
    /// ground_truth_ids (so `base: ProstateBase` with another structure list just works, as in the seed's
    /// Building Models page): display names `zz_<id>`, the largest-component list = all structures, class weights
    /// `equally_weighted_classes(ids, background_weight)` (0.02; HeadAndNeckBase 0.25 for a single structure),
    /// and HeadAndNeckBase's feature channels (32, or 26 above 20 structures); HeadAndNeckPaper adds its
    /// summed_probability_rules and slice_exclusion_rules for the pairs present. fill_holes, colours and
    /// roi_interpreted_types only feed InnerEye's model export and have no equivalent here.
    func structureDefault(_ name: String) -> ConfigValue? {
        guard case .string(let rule) = explicitValues["structure_defaults"] ?? .none, rule != "None",
              case .strings(let ids) = explicitValues["ground_truth_ids"] ?? .none, !ids.isEmpty else { return nil }
        let headAndNeck = rule == "HeadAndNeckBase" || rule == "HeadAndNeckPaper"
        switch name {
        case "ground_truth_ids_display_names": return .strings(ids.map { "zz_" + $0 })
        case "largest_connected_component_foreground_classes": return .strings(ids)
        case "class_weights":
            let background = headAndNeck && ids.count == 1 ? 0.25 : 0.02
            return .floats([background] + Array(repeating: (1 - background) / Double(ids.count), count: ids.count))
        case "feature_channels" where headAndNeck: return .ints([ids.count <= 20 ? 32 : 26])
        case "summed_probability_rules" where rule == "HeadAndNeckPaper":
            return .strings(ModelConfig.headAndNeckPaperRules(ids).summedProbability)
        case "slice_exclusion_rules" where rule == "HeadAndNeckPaper":
            return .strings(ModelConfig.headAndNeckPaperRules(ids).sliceExclusion)
        default: return nil
        }
    }

    /// Every parameter in schema order with its effective value, for args.txt.
    public var orderedArguments: [(name: String, value: String)] {
        ParameterSchema.parameters.map { ($0.name, value($0.name).description) }
    }

    // MARK: Validation

    /// The keys a runnable config must set.
    public var missingRequiredKeys: [String] {
        var missing: [String] = []
        if !isSet("dataset_id") && !isSet("local_dataset") { missing.append("dataset_id or local_dataset") }
        let required = category == .segmentation ? ["image_channels", "ground_truth_ids", "feature_channels", "crop_size"]
                                                  : ["image_channels", "feature_channels"]
        for key in required where value(key).isNone {
            missing.append(key)
        }
        return missing
    }

    public func checkRunnable() throws {
        let missing = missingRequiredKeys
        if isPartial {
            let what = missing.isEmpty ? "it only serves as the base: of other configs" : "it lacks " + missing.joined(separator: ", ")
            throw IEError.usage("\(name) is partial: \(what), expected a config with base: \(name) that sets the rest", file: file)
        }
        if !missing.isEmpty {
            throw IEError.usage("\(name) lacks \(missing.joined(separator: ", ")), expected every required key to be set (here, in a base config, or as --key=value)", file: file)
        }
    }

    func fail(_ key: String, _ message: String) -> IEError {
        if let s = sources[key] {
            if let flag = s.flag { return IEError.usage("\(flag): \(message)") }
            return IEError.usage("\(key): \(message)", file: s.file, line: s.line)
        }
        return IEError.usage("\(key): \(message)", file: file)
    }

    /// The largest crop_size, test_crop_size or inference_stride_size per axis: NIfTI-1 stores sizes as int16.
    public static let maxPatchAxis = 32767
    /// The most voxels in one crop_size or test_crop_size patch (512^3).
    public static let maxPatchVoxels = 512 * 512 * 512
    /// The most voxels in one batch of patches (2^31: 16 patches of 512^3, 8 GiB of float input alone).
    public static let maxBatchVoxels = 1 << 31

    /// Cross-parameter checks (InnerEye's validate plus our UNet3D size rule). Errors name the file:line or flag
    /// that set the offending value.
    public func validate() throws {
        func positive(_ key: String) throws {
            if case .int(let v) = value(key), v < 1 { throw fail(key, "got \(v), expected a positive integer") }
        }
        for key in ["kernel_size", "num_downsampling_paths", "inference_batch_size", "num_epochs", "train_batch_size", "num_nodes"] {
            try positive(key)
        }
        if kernelSize % 2 == 0 { throw fail("kernel_size", "got \(kernelSize), expected an odd number") }
        // A width of 0 maps every intensity through (level, level): a division by zero, NaN images and an
        // all-background segmentation.
        if window <= 0 { throw fail("window", "got \(window), expected a width > 0") }
        let range = outputRange
        // An empty range makes every normalised image constant; a reversed one is a valid inverted mapping.
        if range.0 == range.1 {
            throw fail("output_range", "got \(ConfigValue.format(range.0)),\(ConfigValue.format(range.1)), expected two different values")
        }
        let trim = trimPercentiles
        // Percentiles outside 0...100 index outside the sorted voxels; lower >= upper keeps no voxel.
        if !(trim.0 >= 0 && trim.0 < trim.1 && trim.1 <= 100) {
            throw fail("trim_percentiles", "got \(ConfigValue.format(trim.0)),\(ConfigValue.format(trim.1)), expected 0 <= lower < upper <= 100")
        }
        let betas = adamBetas
        // PyTorch's Adam refuses these too ("Invalid beta parameter"); beta = 1 never updates its averages.
        if !(betas.0 >= 0 && betas.0 < 1 && betas.1 >= 0 && betas.1 < 1) {
            throw fail("adam_betas", "got \(ConfigValue.format(betas.0)),\(ConfigValue.format(betas.1)), expected each beta in [0, 1)")
        }
        if weightDecay < 0 { throw fail("weight_decay", "got \(weightDecay), expected a decay >= 0 (PyTorch's rule)") }
        // A sigma of 1e30 mm would size the smoothing kernel beyond any integer; no image is a metre across.
        if let sigma = posteriorSmoothingMM, let bad = sigma.first(where: { !($0 >= 0 && $0 <= 1000) }) {
            throw fail("posterior_smoothing_mm", "got \(bad), expected sigmas between 0 and 1000 mm")
        }
        for key in ["feature_channels"] {
            if case .ints(let l) = value(key), l.isEmpty || l.contains(where: { $0 < 1 }) {
                throw fail(key, "got \(l.map(String.init).joined(separator: ",")), expected positive channel counts")
            }
        }
        let unitSize = 1 << min(numDownsamplingPaths, 20)
        for key in ["crop_size", "test_crop_size", "inference_stride_size"] {
            guard case .ints(let l) = value(key) else { continue }
            if l.contains(where: { $0 < 1 }) { throw fail(key, "got \(l.map(String.init).joined(separator: ",")), expected positive sizes") }
            if architecture == "UNet3D" && key != "inference_stride_size" && l.contains(where: { $0 % unitSize != 0 }) {
                throw fail(key, "got \(l.map(String.init).joined(separator: ",")), expected multiples of \(unitSize) per axis for UNet3D")
            }
            // Upper bounds, so that a typo (100000) is a config error and not an allocation that aborts a run
            // half-way (left "running"): NIfTI's own limit per axis, and 512^3 voxels per patch, far above the
            // largest shipped patch (test_crop_size 144,512,512: 38M voxels).
            if let big = l.first(where: { $0 > ModelConfig.maxPatchAxis }) {
                throw fail(key, "got \(big) on an axis, expected at most \(ModelConfig.maxPatchAxis) (NIfTI's limit)")
            }
            if key != "inference_stride_size", l.reduce(1, *) > ModelConfig.maxPatchVoxels {
                throw fail(key, "got \(l.map(String.init).joined(separator: ",")) = \(l.reduce(1, *)) voxels per patch, expected at most \(ModelConfig.maxPatchVoxels) (512^3)")
            }
        }
        if !(inferenceOverlap >= 0 && inferenceOverlap < 1) {
            throw fail("inference_overlap", "got \(inferenceOverlap), expected 0 <= overlap < 1 (MONAI's rule)")
        }
        if let stride = inferenceStrideSize, let patch = testCropSize, zip(stride, patch).contains(where: { $0 > $1 }) {
            throw fail("inference_stride_size", "got \(stride.map(String.init).joined(separator: ",")), expected at most test_crop_size \(patch.map(String.init).joined(separator: ",")) per axis")
        }
        let channels = imageChannels, structures = groundTruthIds
        if let both = channels.first(where: { structures.contains($0) }) {
            throw fail("ground_truth_ids", "'\(both)' is also an image channel, expected distinct channel names")
        }
        if let m = maskId, channels.contains(m) || structures.contains(m) {
            throw fail("mask_id", "'\(m)' is also an image or ground-truth channel, expected a separate mask channel")
        }
        if Set(structures).count != structures.count { throw fail("ground_truth_ids", "expected distinct names") }
        // Inference writes <name>.nii.gz and posterior_<name>.nii.gz per class (background first) beside
        // segmentation.nii.gz and uncertainty.nii.gz: structures named segmentation, uncertainty, background or
        // posterior_<other structure> would overwrite another output of the same subject.
        if !structures.isEmpty, let twice = SubjectOutputNames.collision(classNames: [SubjectOutputNames.backgroundClass] + structures) {
            throw fail("ground_truth_ids", "\(structures.joined(separator: ",")) would write \(twice) twice per subject, expected names other than \(SubjectOutputNames.backgroundClass), segmentation, uncertainty and posterior_<another structure>")
        }
        if Set(channels).count != channels.count { throw fail("image_channels", "expected distinct names") }
        if let w = classWeights {
            if !structures.isEmpty && w.count != structures.count + 1 {
                throw fail("class_weights", "got \(w.count) weights, expected \(structures.count + 1) (background first, then each of ground_truth_ids)")
            }
            if w.contains(where: { $0 < 0 }) || abs(w.reduce(0, +) - 1) > 1e-6 {
                throw fail("class_weights", "weights sum to \(w.reduce(0, +)), expected non-negative weights summing to 1")
            }
        }
        if isSet("ground_truth_ids_display_names") && !structures.isEmpty && groundTruthDisplayNames.count != structures.count {
            throw fail("ground_truth_ids_display_names", "got \(groundTruthDisplayNames.count) names, expected one per ground_truth_ids entry (\(structures.count))")
        }
        if let lcc = largestConnectedComponentClasses, !structures.isEmpty, let bad = lcc.first(where: { !structures.contains($0) }) {
            throw fail("largest_connected_component_foreground_classes", "'\(bad)' is not in ground_truth_ids, expected some of \(structures.joined(separator: ", "))")
        }
        try validatePostProcessingRules()
        try validateCategory()
        // A batch holds batch_size patches at once: a bound on their voxels too, so that a typo such as
        // train_batch_size=100000 is a config error and not an allocation that aborts the run half-way
        // (InnerEye's default inference_batch_size 8 of its largest test crops stays well inside).
        for (batchKey, patchKey) in [("train_batch_size", "crop_size"), ("inference_batch_size", "test_crop_size"),
                                     ("train_batch_size", "image_size")] {
            guard case .int(let batch) = value(batchKey), batch > 0, case .ints(let patch) = value(patchKey) else { continue }
            let (voxels, overflow) = patch.reduce(1, *).multipliedReportingOverflow(by: batch)
            if overflow || voxels > ModelConfig.maxBatchVoxels {
                throw fail(batchKey, "got \(batch) patches of \(patchKey) \(patch.map(String.init).joined(separator: ",")), expected at most "
                                     + "\(ModelConfig.maxBatchVoxels) (2^31) voxels per batch")
            }
        }
        if lossType == "Mixture" && !isSet("mixture_loss_components") {
            throw fail("loss_type", "Mixture needs mixture_loss_components, expected e.g. 0.5:Focal:0.2,0.5:SoftDice:0.1")
        }
        _ = try mixtureLossComponents()
        let n = numberOfCrossValidationSplits, k = crossValidationSplitIndex
        if n < 0 || n == 1 { throw fail("number_of_cross_validation_splits", "got \(n), expected 0 (no cross-validation) or at least 2") }
        if k < -1 { throw fail("cross_validation_split_index", "got \(k), expected -1 or a fold index") }
        if n > 0 && k >= n { throw fail("cross_validation_split_index", "got \(k), expected an index below number_of_cross_validation_splits=\(n)") }
        if n == 0 && k != -1 { throw fail("cross_validation_split_index", "got \(k), expected -1 when number_of_cross_validation_splits is 0") }
        if lRate < 0 { throw fail("l_rate", "got \(lRate), expected a learning rate >= 0") }
        if minLRate < 0 || minLRate > lRate { throw fail("min_l_rate", "got \(minLRate), expected 0 <= min_l_rate <= l_rate (\(lRate))") }
        if lRateScheduler == "MultiStep" {
            guard let m = lRateMultiStepMilestones, !m.isEmpty else {
                throw fail("l_rate_scheduler", "MultiStep needs l_rate_multi_step_milestones, expected e.g. --l_rate_multi_step_milestones=50,100")
            }
            if m[0] <= 0 || zip(m, m.dropFirst()).contains(where: { $0 >= $1 }) {
                throw fail("l_rate_multi_step_milestones", "expected strictly increasing positive epochs")
            }
        }
        if saveStepEpochs < 1 { throw fail("save_step_epochs", "got \(saveStepEpochs), expected a positive integer") }
        if startEpoch < 0 { throw fail("start_epoch", "got \(startEpoch), expected an epoch >= 0") }
        try validateTraining()
        if let e = epochsToTest.first(where: { $0 < 1 || $0 > numEpochs }) {
            throw fail("epochs_to_test", "got \(e), expected epochs between 1 and num_epochs (\(numEpochs))")
        }
        for p in ["proportion_train", "proportion_val", "proportion_test"] {
            if case .float(let v) = value(p), v < 0 || v > 1 { throw fail(p, "got \(v), expected a fraction between 0 and 1") }
        }
        _ = try comparisonRuns()
    }
}

extension ModelConfig {
    /// InnerEye's bounds of the training keys (deep_learning_config.py) and what a run starts from: checked when
    /// the config loads, so every tool refuses them alike and names where the value was set.
    func validateTraining() throws {
        let eps = labelSmoothingEps
        if !(0...1).contains(eps) { throw fail("label_smoothing_eps", "got \(eps), expected a value between 0 and 1 (InnerEye's bounds)") }
        let components = try mixtureLossComponents()
        let focal = lossType == "Focal" || (lossType == "Mixture" && components.contains { $0.lossType == "Focal" })
        if eps != 0 && !category.isScalar && focal {
            throw fail("label_smoothing_eps", "got \(eps) with a Focal loss, expected 0 (InnerEye's focal loss needs one-hot targets)")
        }
        if lRateWarmupEpochs < 0 { throw fail("l_rate_warmup_epochs", "got \(lRateWarmupEpochs), expected an epoch count >= 0 (InnerEye's bounds)") }
        if startEpoch > 0 && runRecoveryId == nil {
            throw fail("start_epoch", "got \(startEpoch) without run_recovery_id, expected --run_recovery_id=EXPERIMENT:RUN_ID "
                                      + "with it (the run whose epoch-\(startEpoch) checkpoint training continues from)")
        }
        if !localWeightsPath.isEmpty, let id = modelId {
            throw fail("model_id", "model_id \(id) and local_weights_path (\(sourceDescription("local_weights_path") ?? "set")) are both set, "
                                   + "expected only one of them (InnerEye: cannot specify more than one of local_weights_path, weights_url or model_id)")
        }
        if train && localWeightsPath.count > 1 {
            throw fail("local_weights_path", "\(localWeightsPath.count) checkpoints with train true, expected one: training starts from one "
                                             + "checkpoint (several are for --no-train)")
        }
    }
}

/// One `--name=value` override from a command line, already type checked.
public struct ConfigOverride: Sendable, Equatable {
    public var name: String
    public var value: ConfigValue
    /// The argument as given, for error messages.
    public var flag: String
}

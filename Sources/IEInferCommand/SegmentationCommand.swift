import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IENet
import IERun
import IETrain

/// What ie-infer and ie-ensemble share: segment a run's split (`--run` with `--mode`, into
/// outputs/epoch_NNN/<Mode>/) or one image (`--image_file` with `--output_folder`) with one model or the
/// average of several (SPEC §5, §6).
public struct SegmentationOptions: ParsableArguments {
    @Option(name: .customLong("run"), help: "Run folder whose split (--mode) is segmented into outputs/epoch_NNN/<Mode>/.")
    public var runFolder: String?
    @Option(help: "Epoch folder to write (default: the run's epochs_to_test).", transform: epochNumber) public var epoch: Int?
    @Option(help: "The run's split: Train, Val or Test.") public var mode: Mode = .test
    @Option(help: "Model config name (with --checkpoint and --image_file).") public var model: String?
    @Option(help: "Checkpoint file: ours, or PyTorch's (torch.save/Lightning .ckpt, safetensors); repeat for an ensemble.")
    public var checkpoint: [String] = []
    @Option(name: .customLong("model_id"), help: "Registered model Name:version; repeat for an ensemble.")
    public var modelID: [String] = []
    @Option(name: .customLong("image_file"), help: "Image file, one per image channel in image_channels order.")
    public var imageFile: [String] = []
    @Option(name: .customLong("mask_file"), help: "Mask of the single image (0/1 on its grid), for a model with a mask_id.")
    public var maskFile: String?
    @Option(name: .customLong("output_folder"), help: "Where the single-image results go.") public var outputFolder: String?
    @Flag(help: "Gaussian weighting of overlapping patches (sigma = patch/8).") public var gaussian = false
    @Flag(help: "Test-time augmentation: average over the 8 mirrorings.") public var tta = false
    @OptionGroup public var settings: SettingsOption
    @OptionGroup public var threads: ThreadsOption
    @OptionGroup public var precision: PrecisionOption
    @OptionGroup public var log: LogOptions
    @OptionGroup public var parameters: ModelParameters

    public init() {}

    public var hasMembers: Bool { !checkpoint.isEmpty || !modelID.isEmpty }

    public func validate() throws {
        guard runFolder == nil else {
            if maskFile != nil { throw ValidationError("--mask_file is for --image_file; a run's subjects have their mask channel") }
            return
        }
        guard !imageFile.isEmpty, outputFolder != nil else {
            throw ValidationError("give --run=RUN, or --image_file=... with --output_folder=DIR and --model_id or --checkpoint")
        }
        guard hasMembers else { throw ValidationError("single-image mode needs --model_id or --checkpoint") }
        if modelID.isEmpty && model == nil { throw ValidationError("--checkpoint needs --model=NAME for its config") }
    }

    /// Segments with the given members (nil: a run's own checkpoint of each epoch). `extra` are overrides
    /// beyond the command line's (ie-ensemble's --aggregation).
    public func perform(tool: String, extra: [String] = []) throws {
        log.apply(tool: tool)
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        EngineOptions.fromCommandLine(threads: threads.threads, precision: precision.precision)
        let flags = try parameters.flags() + extra
        func members(_ config: ModelConfig) throws -> [UNet3D] {
            let models = try RunPipeline.loadModels(checkpoints: checkpoint, modelIDs: modelID, settings: settingsValue,
                                                    config: config)
            if models.count > 1 { Log.info("ensemble of \(models.count) members") }
            return models
        }
        if let runFolder {
            let run = try RunDirectory.open(path: runFolder)
            let config = try run.modelConfig(settings: settingsValue, extra: flags)
            if config.category.isScalar {
                // A classification/regression run: its model outputs and metrics (several models: their average).
                let classifiers = hasMembers ? try RunPipeline.checkpointPaths(checkpoints: checkpoint, modelIDs: modelID, settings: settingsValue)
                    .map { try RunPipeline.readCheckpoint($0).makeClassifier(source: $0, options: .fromEnvironment()) } : nil
                try run.performEvaluation(tool: tool) {
                    for e in epoch.map({ [$0] }) ?? config.epochsToTest {
                        try ScalarRun.evaluate(run: run, config: config, settings: settingsValue, epoch: e, mode: mode.rawValue, models: classifiers)
                    }
                }
                return
            }
            let models = hasMembers ? try members(config) : nil
            try run.performEvaluation(tool: tool) {
                for e in epoch.map({ [$0] }) ?? config.epochsToTest {
                    try RunPipeline.infer(run: run, config: config, settings: settingsValue, epoch: e, mode: mode.rawValue,
                                          models: models, gaussian: gaussian, tta: tta)
                }
            }
            return
        }
        guard let outputFolder else { throw IEError.usage("--image_file needs --output_folder=DIR") }
        // --model names the config; else the first registered model's own (what it was trained with, SPEC §6).
        let config: ModelConfig
        if let model {
            config = try ModelConfig.load(name: model, settings: settingsValue, overrides: ConfigOverrides.parse(flags))
        } else if let id = modelID.first {
            config = try ModelRegistry(settings: settingsValue).resolve(id).modelConfig(settings: settingsValue,
                                                                                      overrides: ConfigOverrides.parse(flags))
        } else {
            throw IEError.usage("--checkpoint needs --model=NAME for its config")
        }
        if config.category.isScalar {
            guard maskFile == nil else { throw IEError.usage("--mask_file is for segmentation models, expected none for \(config.name)") }
            // A classifier or regressor: its outputs on stdout (target and value) and in model_outputs.csv.
            let paths = try RunPipeline.checkpointPaths(checkpoints: checkpoint, modelIDs: modelID, settings: settingsValue)
            let outputs = try ScalarRun.inferImage(files: imageFile, config: config, checkpoints: paths, outputFolder: outputFolder)
            try StandardStream.write(outputs.map { "\($0.target)\t" + String(format: "%.6f", $0.output) + "\n" }.joined())
            return
        }
        try RunPipeline.inferImage(files: imageFile, maskFile: maskFile, config: config, models: try members(config),
                                   outputFolder: outputFolder, gaussian: gaussian, tta: tta)
        Log.info("wrote \(outputFolder)")
    }
}

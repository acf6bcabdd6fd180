import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IENet
import IERun
import IETrain

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-infer",
        abstract: "Segment images with a trained model: a run's Val/Test split, or a single image.",
        discussion: """
        Sliding-window inference (patch test_crop_size, stride inference_stride_size),
        overlaps averaged (inference_tiling: Average; Gaussian weights with
        --gaussian; InnerEye's zero padding and centre stitching with
        --inference_tiling=InnerEye, for InnerEye's exact segmentation); then the mask, optional posterior smoothing, argmax and
        largest connected components. Per subject it writes segmentation.nii.gz,
        posterior_<class>.nii.gz, <class>.nii.gz and uncertainty.nii.gz with the
        geometry of the first image channel.

        Examples:
          ie-infer --run=$RUN --mode=Val                     # epochs_to_test of the run, its val subjects
          ie-infer --run=$RUN --epoch=20 --mode=Test --gaussian --tta
          ie-infer --run=$RUN --mode=Test --inference_tiling=InnerEye
          ie-infer --model_id=HelloWorld:1 --image_file=ct.nii.gz --output_folder=out/
          ie-infer --model=HelloWorld --checkpoint=runs/main/RUN/outputs/checkpoints/epoch_010.ckpt \\
                   --image_file=ct.nii.gz --output_folder=out/
          ie-infer --model=HelloWorld --feature_channels=2 --checkpoint=innereye/epoch=9.ckpt \\
                   --image_file=ct.nii.gz --output_folder=out/   # PyTorch/InnerEye weights, architecture from the config
        """)

    @Option(name: .customLong("run"), help: "Run folder; infer its split given by --mode.") var runFolder: String?
    @Option(help: "Epoch whose checkpoint to use (default: the run's epochs_to_test).") var epoch: Int?
    @Option(help: "Val or Test.") var mode: String = "Test"
    @Option(help: "Model config name (single-image mode with --checkpoint).") var model: String?
    @Option(help: "Checkpoint file(s): ours, or PyTorch's (torch.save/Lightning .ckpt, safetensors); several = an ensemble.") var checkpoint: [String] = []
    @Option(name: .customLong("model_id"), help: "Registered model Name:version (several = an ensemble).") var modelID: [String] = []
    @Option(name: .customLong("image_file"), help: "Image file, one per image channel in image_channels order.") var imageFile: [String] = []
    @Option(name: .customLong("output_folder"), help: "Where the single-image results go.") var outputFolder: String?
    @Flag(help: "Gaussian weighting of overlapping patches (sigma = patch/8).") var gaussian = false
    @Flag(help: "Test-time augmentation: average over the 8 mirrorings.") var tta = false
    @Option(help: "settings.yml path.") var settings: String?
    @Option(help: "Threads for the GEMMs.") var threads: Int?
    @Flag(help: "Only errors.") var quiet = false

    static var overrides: [String] = []

    func validate() throws {
        guard ["Val", "Test", "Train"].contains(mode) else { throw ValidationError("--mode=\(mode), expected Val or Test") }
        if runFolder == nil {
            guard !imageFile.isEmpty, outputFolder != nil else {
                throw ValidationError("give --run=RUN, or --image_file=... with --output_folder=DIR and --model_id or --checkpoint")
            }
            guard !checkpoint.isEmpty || !modelID.isEmpty else { throw ValidationError("single-image mode needs --model_id or --checkpoint") }
            if modelID.isEmpty && model == nil { throw ValidationError("--checkpoint needs --model=NAME for its config") }
        }
    }

    func run() throws {
        Log.tool = "ie-infer"
        if quiet { Log.level = .quiet }
        let settingsValue = try Settings.locate(explicitPath: settings)
        EngineOptions.fromCommandLine(threads: threads)
        let overrides = try ConfigOverrides.parse(Infer.overrides)
        if let runFolder {
            let run = try RunDirectory.open(path: runFolder)
            let config = try run.modelConfig(settings: settingsValue, extra: Infer.overrides)
            let models = checkpoint.isEmpty && modelID.isEmpty ? nil
                : try RunPipeline.loadModels(checkpoints: checkpoint, modelIDs: modelID, settings: settingsValue,
                                             architecture: .configured(config))
            try run.performEvaluation(tool: "ie-infer") {
                for e in epoch.map({ [$0] }) ?? config.epochsToTest {
                    try RunPipeline.infer(run: run, config: config, settings: settingsValue, epoch: e, mode: mode,
                                          models: models, gaussian: gaussian, tta: tta)
                }
            }
        } else {
            let registry = ModelRegistry(settings: settingsValue)
            let name = try model ?? registry.resolve(modelID[0]).name
            let config = try ModelConfig.load(name: name, settings: settingsValue, overrides: overrides)
            let models = try RunPipeline.loadModels(checkpoints: checkpoint, modelIDs: modelID, settings: settingsValue,
                                                    architecture: .configured(config))
            try RunPipeline.inferImage(files: imageFile, config: config, models: models, outputFolder: outputFolder!,
                                       gaussian: gaussian, tta: tta)
            Log.info("wrote \(outputFolder!)")
        }
    }
}

runCommand(Infer.self, tool: "ie-infer", ownOptions: ["model_id"]) { Infer.overrides = $0 }

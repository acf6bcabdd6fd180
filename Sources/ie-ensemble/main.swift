import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IENet
import IERun
import IETrain

struct Ensemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-ensemble",
        abstract: "Segment with an ensemble: the mean of several models' softmax posteriors, post-processed once.",
        discussion: """
        Members are checkpoint files or registered model ids (a registered
        cross-validation ensemble brings all its folds). --aggregation=MajorityVote
        takes the most frequent label instead (posterior files stay the mean). Output
        layout as ie-infer: a run's epoch_NNN/<Mode>/<subject>/ or, for one image,
        --output_folder.

        Examples:
          ie-ensemble --run=$PARENT --epoch=10 --mode=Test \\
                      --checkpoint=$RUN_0/outputs/checkpoints/epoch_010.ckpt \\
                      --checkpoint=$RUN_1/outputs/checkpoints/epoch_010.ckpt
          ie-ensemble --model_id=HelloWorld:1 --model_id=HelloWorld:2 --image_file=ct.nii.gz --output_folder=out/
        """)

    @Option(name: .customLong("run"), help: "Run folder whose split (--mode) is segmented.") var runFolder: String?
    @Option(help: "Epoch folder to write (default: the run's epochs_to_test).") var epoch: Int?
    @Option(help: "Val or Test.") var mode: String = "Test"
    @Option(help: "Model config name (with --checkpoint and --image_file).") var model: String?
    @Option(help: "A member checkpoint (repeat).") var checkpoint: [String] = []
    @Option(name: .customLong("model_id"), help: "A member registered model Name:version (repeat).") var modelID: [String] = []
    @Option(name: .customLong("image_file"), help: "Image file, one per image channel.") var imageFile: [String] = []
    @Option(name: .customLong("output_folder"), help: "Single-image output folder.") var outputFolder: String?
    @Option(help: "Average or MajorityVote (default: the config's ensemble_aggregation_type).") var aggregation: String?
    @Flag(help: "Gaussian weighting of overlapping patches.") var gaussian = false
    @Flag(help: "Test-time mirroring.") var tta = false
    @Option(help: "settings.yml path.") var settings: String?
    @Option(help: "Threads for the GEMMs.") var threads: Int?

    static var overrides: [String] = []

    func validate() throws {
        guard checkpoint.count + modelID.count >= 1 else { throw ValidationError("give the members with --checkpoint or --model_id") }
        if let aggregation, !["Average", "MajorityVote"].contains(aggregation) {
            throw ValidationError("--aggregation=\(aggregation), expected Average or MajorityVote")
        }
        guard ["Val", "Test", "Train"].contains(mode) else { throw ValidationError("--mode=\(mode), expected Val or Test") }
        if runFolder == nil {
            guard !imageFile.isEmpty, outputFolder != nil else {
                throw ValidationError("give --run=RUN, or --image_file=... with --output_folder=DIR")
            }
            if modelID.isEmpty && model == nil { throw ValidationError("--checkpoint needs --model=NAME for its config") }
        }
    }

    func run() throws {
        Log.tool = "ie-ensemble"
        let settingsValue = try Settings.locate(explicitPath: settings)
        EngineOptions.fromCommandLine(threads: threads)
        var extra = Ensemble.overrides
        if let aggregation { extra.append("--ensemble_aggregation_type=\(aggregation)") }
        func members(_ config: ModelConfig) throws -> [UNet3D] {
            let models = try RunPipeline.loadModels(checkpoints: checkpoint, modelIDs: modelID, settings: settingsValue,
                                                    architecture: .configured(config))
            Log.info("ensemble of \(models.count) members")
            return models
        }
        if let runFolder {
            let run = try RunDirectory.open(path: runFolder)
            let config = try run.modelConfig(settings: settingsValue, extra: extra)
            let models = try members(config)
            try run.performEvaluation(tool: "ie-ensemble") {
                for e in epoch.map({ [$0] }) ?? config.epochsToTest {
                    try RunPipeline.infer(run: run, config: config, settings: settingsValue, epoch: e, mode: mode,
                                          models: models, gaussian: gaussian, tta: tta)
                }
            }
        } else {
            let name = try model ?? ModelRegistry(settings: settingsValue).resolve(modelID[0]).name
            let config = try ModelConfig.load(name: name, settings: settingsValue, overrides: ConfigOverrides.parse(extra))
            try RunPipeline.inferImage(files: imageFile, config: config, models: try members(config), outputFolder: outputFolder!,
                                       gaussian: gaussian, tta: tta)
        }
    }
}

runCommand(Ensemble.self, tool: "ie-ensemble", ownOptions: ["model_id"]) { Ensemble.overrides = $0 }

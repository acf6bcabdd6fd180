import Foundation
import IECore
import IEConfig
import IEDistributed
import IEEval
import IENet
import IERun

/// The run-folder steps of a classification or regression model (SPEC §13): training, and inference with
/// metrics on Val and Test. Segmentation runs go through RunPipeline; RunPipeline.train and the evaluation
/// pipeline hand scalar runs to these functions.
public enum ScalarRun {
    static func inputs(run: RunDirectory, config: ModelConfig, settings: Settings) throws -> ScalarInputs {
        try ScalarInputs(csvPath: run.datasetCSVPath(config: config, settings: settings), config: config)
    }

    /// Trains the run; false when a stop signal ended training early (resume with `resume`).
    @discardableResult
    public static func train(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool,
                             options: EngineOptions = .fromEnvironment(), beforeTraining: () throws -> Void = {}) throws -> Bool {
        try config.checkRunnable()
        // Data-parallel training (several MPI ranks) is the UNet's; ranks of a scalar model would write the same files.
        guard Distributed.launchedRanks() == 1 else {
            throw IEError.usage("\(config.name) is a \(config.category.rawValue.lowercased()) model, expected one process: "
                                + "data-parallel training over MPI ranks (num_nodes > 1) is for segmentation models only")
        }
        let inputs = try inputs(run: run, config: config, settings: settings)
        var setup = try ScalarTrainingSetup(config: config, nonImageFeatures: inputs.featureCount)
        setup.engine = options
        try run.writeArguments(config)
        try run.writeBuildInformation(blas: "OpenBLAS; convolutions: \(options.summary)")
        let start = try RunPipeline.startingPoint(run: run, config: config, settings: settings, resume: resume)
        let train = try inputs.loadAll(run.splitSubjects("train"), label: "train")
        let validation = try inputs.loadAll(run.splitSubjects("val"), label: "val")
        let trainer = try ScalarTrainer(setup: setup, outputs: run.outputs, train: train, validation: validation, start: start)
        Log.info("\(config.name): \(config.category.rawValue.lowercased()) \(trainer.model.architecture), \(trainer.model.parameterCount) parameters, "
                 + "\(train.count) train / \(validation.count) val subjects, batch \(setup.optimisation.batchSize), "
                 + "epochs \(trainer.lastCompletedEpoch + 1)...\(setup.optimisation.numEpochs), threads \(options.threads)")
        try beforeTraining()
        let finished = try trainer.run()
        if finished { try RunPipeline.registerFinalModel(run: run, config: config, settings: settings) }
        return finished
    }

    /// The classifier(s) of the run's `epoch`: its checkpoint, or the members of an adopted ensemble.
    public static func models(run: RunDirectory, epoch: Int, options: EngineOptions = .fromEnvironment()) throws -> [ImageClassifier] {
        let folder = run.layout.ensembleFolder(epoch: epoch)
        var paths: [String]
        if let members = try? FileManager.default.contentsOfDirectory(atPath: folder), !members.isEmpty {
            paths = members.filter { $0.hasSuffix(".ckpt") }.sorted().map { folder + "/" + $0 }
        } else {
            paths = [try RunPipeline.savedCheckpoint(run: run, epoch: epoch)]
        }
        return try paths.map { try RunPipeline.readCheckpoint($0).makeClassifier(source: $0, options: options) }
    }

    /// Inference of `epoch` on one split (Val or Test) and its metrics: `outputs/epoch_NNN/<Mode>/model_outputs.csv`
    /// (InnerEye's columns; an ensemble averages its members' outputs) and `metrics.csv` (one row per prediction
    /// target). `models` replaces the run's own checkpoint (cross-validation ensembles).
    public static func evaluate(run: RunDirectory, config: ModelConfig, settings: Settings, epoch: Int, mode: String,
                                models given: [ImageClassifier]? = nil, options: EngineOptions = .fromEnvironment()) throws {
        let inputs = try inputs(run: run, config: config, settings: settings)
        let setup = try ScalarTrainingSetup(config: config, nonImageFeatures: inputs.featureCount)
        let subjects = try run.splitSubjects(mode.lowercased())
        let samples = try inputs.loadAll(subjects, label: mode)
        let models = try given ?? models(run: run, epoch: epoch, options: options)
        var passes: [ScalarPass] = []
        for model in models { passes.append(try ScalarTrainer.evaluate(model: model, samples: samples, setup: setup, mode: mode.lowercased())) }
        guard var pass = passes.first else { throw IEError.failure("no model to evaluate for epoch \(epoch)") }
        if passes.count > 1 {
            // Ensembles average their members' outputs (probabilities for a classifier), InnerEye's "Average".
            for i in pass.outputs.indices {
                for t in pass.outputs[i].indices {
                    pass.outputs[i][t] = passes.map { $0.outputs[i][t] }.reduce(0, +) / Float(passes.count)
                }
            }
        }
        let layout = run.layout
        var outputRows: [[String]] = []
        var metricRows: [[String]] = []
        var metricNames: [String] = []
        for (t, target) in setup.predictionTargets.enumerated() {
            for (i, subject) in pass.subjects.enumerated() {
                outputRows.append([target, String(epoch), subject, String(format: "%.6f", pass.outputs[i][t]),
                                   String(format: "%.6f", pass.labels[i][t]), String(setup.crossValidationSplitIndex), mode])
            }
            let metrics = pass.metrics(target: t, regression: setup.category == .regression)
            metricNames = metrics.map(\.name)
            metricRows.append([target] + metrics.map { String(format: "%.6f", $0.value) })
        }
        try AtomicFile.write(CSVTable(header: ScalarEpochLog.outputColumns, rows: outputRows).serialized(), to: layout.modelOutputs(epoch: epoch, mode: mode))
        try AtomicFile.write(CSVTable(header: ["prediction_target"] + metricNames, rows: metricRows).serialized(), to: layout.metrics(epoch: epoch, mode: mode))
        Log.info("\(mode) epoch \(epoch): \(pass.subjects.count) subjects, " + zip(metricNames.prefix(2), metricRows[0].dropFirst().prefix(2))
            .map { "\($0) \($1)" }.joined(separator: ", ") + " -> \(layout.metrics(epoch: epoch, mode: mode))")
    }

    /// One subject given as image files (one per image channel): the model outputs of the classifier(s) averaged,
    /// through the val/test transforms, written to `<outputFolder>/model_outputs.csv` (prediction_target,
    /// model_output) and returned. Models with non-image features need a dataset row: not supported here.
    @discardableResult
    public static func inferImage(files: [String], config: ModelConfig, checkpoints: [String], outputFolder: String,
                                  options: EngineOptions = .fromEnvironment()) throws -> [(target: String, output: Float)] {
        guard files.count == config.imageChannels.count else {
            throw IEError.usage("\(files.count) --image_file given, expected one per image channel (\(config.imageChannels.joined(separator: ", ")))")
        }
        let models = try checkpoints.map { try RunPipeline.readCheckpoint($0).makeClassifier(source: $0, options: options) }
        if let needing = models.first(where: { $0.architecture.nonImageFeatures > 0 }) {
            throw IEError.usage("the model takes \(needing.architecture.nonImageFeatures) non-image features, expected a model without them for single-image inference (evaluate it on a run instead)")
        }
        let image = try ScalarInputs.readStacked(files)
        var setup = try ScalarTrainingSetup(config: config, nonImageFeatures: 0)
        setup.engine = options
        let sample = ScalarSample(id: "image", file: files[0], image: image, features: [], label: [Float](repeating: 0, count: setup.predictionTargets.count))
        var outputs = [Float](repeating: 0, count: setup.predictionTargets.count)
        for model in models {
            let pass = try ScalarTrainer.evaluate(model: model, samples: [sample], setup: setup, mode: "test")
            for t in outputs.indices { outputs[t] += pass.outputs[0][t] / Float(models.count) }
        }
        let rows = zip(setup.predictionTargets, outputs).map { [$0, String(format: "%.6f", $1)] }
        try AtomicFile.write(CSVTable(header: ["prediction_target", "model_output"], rows: rows).serialized(),
                             to: outputFolder + "/" + RunLayout.modelOutputsFileName)
        return Array(zip(setup.predictionTargets, outputs))
    }
}

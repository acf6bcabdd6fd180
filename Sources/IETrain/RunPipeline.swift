import Foundation
import IECore
import IEConfig
import IEData
import IEEval
import IEImage
import IEDistributed
import IENet
import IERun

/// The run-folder steps of SPEC §9 that involve the network: training and inference of a run's splits.
/// Each reads only files of the run (and the dataset it names) so it can be rerun alone.
public enum RunPipeline {
    public static func dataset(run: RunDirectory, config: ModelConfig, settings: Settings) throws -> Dataset {
        try Dataset.load(path: run.datasetCSVPath(config: config, settings: settings))
    }

    public static func checkpointPath(run: RunDirectory, epoch: Int) -> String {
        run.layout.checkpoint(epoch: epoch)
    }

    /// The epoch checkpoints (`epoch_NNN.ckpt`) in a checkpoints folder, in name order: what error messages offer.
    public static func savedEpochCheckpoints(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
            .filter { $0.hasPrefix("epoch_") && $0.hasSuffix(".ckpt") }.sorted()
    }

    /// The run's own checkpoint of `epoch` for inference: an epoch the run never saved is a wrong `--epoch` (exit 2,
    /// as ie-metrics and ie-report answer it), naming the epochs there are; the run itself is not at fault.
    public static func savedCheckpoint(run: RunDirectory, epoch: Int) throws -> String {
        let path = checkpointPath(run: run, epoch: epoch)
        guard !FileManager.default.fileExists(atPath: path) else { return path }
        let saved = savedEpochCheckpoints(in: run.layout.checkpoints)
        if saved.isEmpty {
            throw IEError.usage("the run has no checkpoint (not trained yet), expected ie-train --run=\(run.path) first", file: path)
        }
        throw IEError.usage("epoch \(epoch) has no checkpoint in the run (saved: \(saved.joined(separator: ", "))), "
                            + "expected --epoch of a saved epoch", file: path)
    }

    /// A checkpoint file that is not there is bad input (exit 3) naming the epochs saved beside it.
    static func requireCheckpointFile(_ path: String) throws {
        guard !FileManager.default.fileExists(atPath: path) else { return }
        // Name what there is: a run's checkpoints folder lists the epochs that can be asked for.
        let saved = savedEpochCheckpoints(in: (path as NSString).deletingLastPathComponent)
        let hint = saved.isEmpty ? "" : " (saved: \(saved.joined(separator: ", ")))"
        throw IEError.badInput("checkpoint not found\(hint), expected an epoch that was saved", file: path)
    }

    public static func readCheckpoint(_ path: String) throws -> Checkpoint {
        try requireCheckpointFile(path)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IEError.badInput("cannot read checkpoint, expected a file written by ie-train or PyTorch", file: path)
        }
        return try Checkpoint.load(data, source: path)
    }

    /// Trains a run created by ie-split. `resume` continues from the run's autosave when there is one.
    /// Returns false when a stop signal ended training early.
    @discardableResult
    /// `beforeTraining` runs once everything is loaded and checked, just before the first epoch (ie-train records
    /// its overrides there).
    public static func train(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool,
                             options: EngineOptions = .fromEnvironment(), beforeTraining: () throws -> Void = {}) throws -> Bool {
        if config.category.isScalar {
            return try ScalarRun.train(run: run, config: config, settings: settings, resume: resume, options: options,
                                       beforeTraining: beforeTraining)
        }
        try config.checkRunnable()
        var setup = try TrainingSetup(config: config)
        setup.engine = options
        let dataset = try dataset(run: run, config: config, settings: settings)
        let preparation = try SubjectPreparation(dataset: dataset, config: config)
        try run.writeArguments(config)
        try run.writeBuildInformation(blas: "OpenBLAS; convolutions: \(options.summary)")
        let start = try startingPoint(run: run, config: config, settings: settings, resume: resume)
        let trainSubjects = try preparation.loadAll(run.splitSubjects("train"), label: "train")
        let valSubjects = try preparation.loadAll(run.splitSubjects("val"), label: "val")
        // Data parallel when launched as several MPI ranks (mpirun / srun --mpi=pmix); IE_EMULATE_RANKS=K computes
        // in one process exactly what K ranks compute (the shards run one after another), for checking and debugging.
        let reducer = try Distributed.reducer()
        var shardedSetup = setup
        shardedSetup.shards = ProcessInfo.processInfo.environment["IE_EMULATE_RANKS"].flatMap(Int.init) ?? 1
        let trainer = try Trainer(setup: shardedSetup, outputs: run.outputs, train: trainSubjects, validation: valSubjects,
                                  start: start, reducer: reducer)
        if reducer.size > 1 || shardedSetup.shards > 1 {
            let node = ProcessInfo.processInfo.environment["SLURMD_NODENAME"].map { " on node \($0)" } ?? ""
            Log.info("data parallel: rank \(reducer.rank) of \(reducer.size)\(node), \(max(reducer.size, shardedSetup.shards)) shards per batch")
        }
        Log.info("\(config.name): UNet3D f=\(setup.featureChannels), \(trainer.model.parameterCount) parameters, " +
                 "\(trainSubjects.count) train / \(valSubjects.count) val subjects, crop \(setup.cropSize), " +
                 "batch \(setup.batchSize), epochs \(trainer.lastCompletedEpoch + 1)...\(setup.numEpochs), threads \(options.threads), " +
                 "convolutions \(options.summary)")
        try beforeTraining()
        let finished = try trainer.run()
        if finished && reducer.rank == 0 { try registerFinalModel(run: run, config: config, settings: settings) }
        return finished
    }

    /// A finished run's last checkpoint (epoch num_epochs) goes into the model registry, its id into run.json.
    static func registerFinalModel(run: RunDirectory, config: ModelConfig, settings: Settings) throws {
        let last = checkpointPath(run: run, epoch: config.numEpochs)
        guard FileManager.default.fileExists(atPath: last) else { return }
        let registry = ModelRegistry(settings: settings)
        if let existing = registry.registered(try run.readInfo().registeredModel, holding: [last]) {
            return Log.info("already registered as model \(existing.id)")
        }
        let model = try registry.register(name: config.name, config: config, checkpoints: [last],
                                                                  sourceRunIds: [run.recoveryID.description])
        try run.update { $0.registeredModel = model.id }
        Log.info("registered model \(model.id) in \(model.folder)")
    }

    /// `train: false` (InnerEye's "testing an existing model"): the given weights (local_weights_path,
    /// model_id, or run_recovery_id + start_epoch) become this run's checkpoint of their epoch, and that epoch is
    /// recorded as epochs_to_test, so ie-infer and ie-metrics evaluate them on Val and Test. Returns the epoch.
    @discardableResult
    public static func adoptWeights(run: RunDirectory, config: ModelConfig, settings: Settings) throws -> Int {
        var source: String?
        var epoch = 0
        if config.runRecoveryId != nil {
            source = try recoveryCheckpoint(config: config, settings: settings)
            epoch = config.startEpoch
        } else if config.localWeightsPath.count > 1 {
            // InnerEye: several local_weights_path checkpoints are evaluated as their ensemble.
            return try adoptEnsemble(run: run, members: config.localWeightsPath, config: config, settings: settings,
                                     described: "the \(config.localWeightsPath.count) checkpoints of --local_weights_path")
        } else if let weights = config.localWeightsPath.first {
            source = weights
        } else if let id = config.modelId {
            let model = try ModelRegistry(settings: settings).resolve(id)
            try model.verify()
            if model.isEnsemble {
                return try adoptEnsemble(run: run, members: model.checkpointPaths, config: config, settings: settings,
                                         described: "the \(model.checkpoints.count) members of ensemble \(model.id)")
            }
            source = model.checkpointPaths.first
        }
        guard let source else { throw noWeightsToEvaluate }
        let checkpoint = try readCheckpoint(source)
        // Every tensor checked now (against the config's architecture for a PyTorch state_dict), not at ie-infer.
        if config.category.isScalar {
            _ = try checkpoint.makeClassifier(source: source)
        } else {
            let model = try checkpoint.makeModel(source: source, configured: .configured(config))
            try ModelLoading.requireMatch(model.architecture, checkpoint: source, config: config)
            try checkpoint.restore(model: model, source: source)
        }
        // Weights that record no epoch (written by PyTorch) count as the finished model: epoch num_epochs.
        if epoch == 0 { epoch = checkpoint.epoch ?? config.numEpochs }
        let target = checkpointPath(run: run, epoch: epoch)
        try FileManager.default.createDirectory(atPath: run.layout.checkpoints, withIntermediateDirectories: true)
        try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: source)), to: target)
        _ = try run.modelConfig(settings: settings, extra: ["--epochs_to_test=\(epoch)"], record: true)
        try run.writeArguments(config)
        try run.writeBuildInformation()
        Log.info("no training: \(source) is the run's epoch \(epoch) checkpoint, evaluated by ie-infer/ie-metrics")
        return epoch
    }

    /// The folder of the members of a registered ensemble adopted by a `--no-train` run for `epoch`; the run's
    /// model of that epoch is their ensemble (RunPipeline.infer uses it wherever the run's own checkpoint would be).
    public static func ensembleFolder(run: RunDirectory, epoch: Int) -> String {
        run.layout.ensembleFolder(epoch: epoch)
    }

    /// `--no-train --model_id=<a registered ensemble>` or `--no-train --local_weights_path=A,B,...`: the members
    /// are copied into the run's checkpoints/ensemble_epoch_NNN/ (NNN the latest member's epoch; weights that
    /// record none count as num_epochs) and the run's epoch NNN is evaluated as their ensemble, exactly as
    /// ie-ensemble evaluates it (the same members, loaded by loadModels, through infer).
    static func adoptEnsemble(run: RunDirectory, members: [String], config: ModelConfig, settings: Settings,
                              described: String) throws -> Int {
        let epochs = try members.map { path -> Int in
            let checkpoint = try readCheckpoint(path)
            if config.category.isScalar { _ = try checkpoint.makeClassifier(source: path) } else {
                let model = try checkpoint.makeModel(source: path, configured: .configured(config))
                try ModelLoading.requireMatch(model.architecture, checkpoint: path, config: config)
            }
            return checkpoint.epoch ?? config.numEpochs
        }
        let epoch = epochs.max() ?? config.numEpochs
        let folder = ensembleFolder(run: run, epoch: epoch)
        // Members of an earlier adoption of this epoch would join the ensemble.
        if FileManager.default.fileExists(atPath: folder) { try FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (k, path) in members.enumerated() {
            try AtomicFile.write(try Data(contentsOf: URL(fileURLWithPath: path)), to: folder + String(format: "/member_%02d.ckpt", k))
        }
        _ = try run.modelConfig(settings: settings, extra: ["--epochs_to_test=\(epoch)"], record: true)
        try run.writeArguments(config)
        try run.writeBuildInformation()
        Log.info("no training: \(described) are the run's epoch \(epoch) model "
                 + "(\(folder)), evaluated as their ensemble by ie-infer/ie-metrics")
        return epoch
    }

    /// The run's model of `epoch`: the members of an adopted ensemble when the run has them, else its checkpoint,
    /// each matching the run's `config` (ModelLoading.load).
    public static func runModels(run: RunDirectory, epoch: Int, config: ModelConfig,
                                 options: EngineOptions = .fromEnvironment()) throws -> [UNet3D] {
        let folder = ensembleFolder(run: run, epoch: epoch)
        let members = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".ckpt") }.sorted()
        guard !members.isEmpty else {
            return [try ModelLoading.load(checkpointPath: savedCheckpoint(run: run, epoch: epoch), config: config, options: options)]
        }
        return try loadModels(checkpoints: members.map { folder + "/" + $0 }, modelIDs: [], settings: nil,
                              config: config, options: options)
    }

    static func startingPoint(run: RunDirectory, config: ModelConfig, settings: Settings, resume: Bool) throws -> TrainingStart {
        let autosave = run.layout.autosave
        if resume, FileManager.default.fileExists(atPath: autosave) {
            Log.info("resuming from \(autosave)")
            return .state(try readCheckpoint(autosave), source: autosave)
        }
        if config.runRecoveryId != nil {
            let path = try recoveryCheckpoint(config: config, settings: settings)
            Log.info("recovering from \(path)")
            return .state(try readCheckpoint(path), source: path)
        }
        if let weights = config.localWeightsPath.first {
            return .weights(try readCheckpoint(weights), source: weights)
        }
        if let id = config.modelId {
            let model = try modelToTrainFrom(id: id, settings: settings)
            try model.verify()
            guard let path = model.checkpointPaths.first else { throw IEError.badInput("model \(id) has no checkpoint", file: model.folder) }
            return .weights(try readCheckpoint(path), source: path)
        }
        return .fresh
    }

    /// The run_recovery_id run's checkpoint of start_epoch (not read): what recovery starts from, or with
    /// `--no-train` evaluates.
    static func recoveryCheckpoint(config: ModelConfig, settings: Settings) throws -> String {
        guard let recovery = config.runRecoveryId else { throw IEError.failure("no run_recovery_id to recover from") }
        let from = try RunDirectory.open(runsDir: settings.runsDir, recoveryID: RunRecoveryID(parsing: recovery))
        guard config.startEpoch > 0 else {
            throw IEError.usage("--run_recovery_id=\(recovery) needs --start_epoch=N, expected the epoch to "
                                + (config.train ? "continue from" : "evaluate") + " (SPEC §4.4)")
        }
        return checkpointPath(run: from, epoch: config.startEpoch)
    }

    static let noWeightsToEvaluate = IEError.usage("--no-train needs weights to evaluate, expected --local_weights_path, --model_id or "
                                                   + "--run_recovery_id with --start_epoch")

    /// The registered model `model_id` names, for training to start from: one model, not an ensemble.
    static func modelToTrainFrom(id: String, settings: Settings) throws -> RegisteredModel {
        let model = try ModelRegistry(settings: settings).resolve(id)
        guard !model.isEnsemble else {
            throw IEError.usage("--model_id=\(id) is an ensemble of \(model.checkpoints.count) models and training starts from one, "
                                + "expected one model's id (a fold's), or --no-train to evaluate the ensemble", file: model.folder)
        }
        return model
    }

    /// What a run trains from or, with train false, adopts, checked before anything is recorded or written
    /// (ie-train): the run_recovery_id run and its start_epoch checkpoint, the local_weights_path files, the
    /// registered model_id (one model when training); with `--no-train`, that one of them is given. A resumed
    /// run's autosave wins over all of them. The errors are those of reading them later (exit 2 or 3).
    public static func checkWeightSources(config: ModelConfig, run: RunDirectory, settings: Settings, resume: Bool) throws {
        if config.train && resume && FileManager.default.fileExists(atPath: run.layout.autosave) { return }
        if config.runRecoveryId != nil {
            try requireCheckpointFile(recoveryCheckpoint(config: config, settings: settings))
        } else if !config.localWeightsPath.isEmpty {
            for path in config.localWeightsPath { try requireCheckpointFile(path) }
        } else if let id = config.modelId {
            if config.train { _ = try modelToTrainFrom(id: id, settings: settings) } else { _ = try ModelRegistry(settings: settings).resolve(id) }
        } else if !config.train {
            throw noWeightsToEvaluate
        }
    }

    /// The model instances of `--checkpoint` paths or `--model_id=Name:version` ids (ensembles give several) to
    /// segment with `config`: its architecture applies to checkpoints written by PyTorch, which do not record one,
    /// and every member must have its image channels and classes (ModelLoading.load).
    public static func loadModels(checkpoints: [String], modelIDs: [String], settings: Settings?, config: ModelConfig,
                                  options: EngineOptions = .fromEnvironment()) throws -> [UNet3D] {
        try checkpointPaths(checkpoints: checkpoints, modelIDs: modelIDs, settings: settings)
            .map { try ModelLoading.load(checkpointPath: $0, config: config, options: options) }
    }

    /// The checkpoint files of `--checkpoint` paths and `--model_id` ids (each registered model verified first).
    public static func checkpointPaths(checkpoints: [String], modelIDs: [String], settings: Settings?) throws -> [String] {
        var paths = checkpoints
        for id in modelIDs {
            guard let settings else { throw IEError.failure("--model_id=\(id) needs the settings of its model registry") }
            let model = try ModelRegistry(settings: settings).resolve(id)
            try model.verify()
            paths += model.checkpointPaths
        }
        return paths
    }

    /// Segments one image given as one file per channel, writing the SPEC §5 files into `outputFolder`. A model
    /// with a mask_id normalises and segments inside `maskFile` (a 0/1 volume on the image's grid) as the run's
    /// inference does with the subject's mask; without one it takes the whole image, with a warning.
    public static func inferImage(files: [String], maskFile: String? = nil, config: ModelConfig, models: [UNet3D],
                                  outputFolder: String, gaussian: Bool, tta: Bool) throws {
        guard files.count == config.imageChannels.count else {
            throw IEError.usage("\(files.count) --image_file given, expected one per image channel (\(config.imageChannels.joined(separator: ", ")))")
        }
        let volumes = try files.map { file in
            let volume = try NIfTI.read(file)
            try volume.requireFiniteVoxels(what: "image", file: file)
            return volume
        }
        for (i, v) in volumes.enumerated().dropFirst() where !v.sameShape(as: volumes[0]) {
            throw IEError.badInput("image shape \(v.shape) differs from the first channel's \(volumes[0].shape), expected one grid", file: files[i])
        }
        let shape = Shape3D(volumes[0].shape.z, volumes[0].shape.y, volumes[0].shape.x)
        let mask = try imageMask(maskFile, config: config, image: volumes[0], imageFile: files[0])
        let normalisation = try PhotometricNormalisation(config: config)
        let image = try normalisation.apply(image: volumes.flatMap(\.data), channels: volumes.count, mask: mask)
        let segmenter = try Segmenter(models: models, settings: InferenceSettings(config: config, gaussian: gaussian, tta: tta))
        segmenter.progressLabel = "segmenting patches"
        let result = try segmenter.segment(image: image, channels: volumes.count, shape: shape, mask: mask, spacing: volumes[0].spacing)
        try SubjectOutputs.write(directory: outputFolder, posteriors: result.posteriors, labels: result.labels,
                                 classNames: [SubjectOutputNames.backgroundClass] + config.groundTruthIds, reference: volumes[0],
                                 threads: models.first?.engine.threads ?? 1)
    }

    /// The mask of a single image: `maskFile` read as the dataset's mask channel is (0 and 1 only, on the image's
    /// grid); nil, with a warning, for a model with a mask_id when none is given.
    static func imageMask(_ maskFile: String?, config: ModelConfig, image: Volume<Float>, imageFile: String) throws -> [UInt8]? {
        guard let maskFile else {
            if let maskId = config.maskId {
                Log.warning("the model normalises and segments inside its mask (mask_id \(maskId)) and no --mask_file was given: "
                            + "the whole image is used, so results differ from a run's inference of the same subject")
            }
            return nil
        }
        guard config.maskId != nil else {
            throw IEError.usage("--mask_file given but model \(config.name) has no mask_id, expected no mask (it would not be used)")
        }
        let volume = try NIfTI.read(maskFile)
        if let mismatch = volume.gridMismatch(with: image) {
            throw IEError.badInput("\(mismatch) of \(imageFile), expected the mask on the image's grid", file: maskFile)
        }
        return try MetricsEvaluation.binaryMask(volume, path: maskFile).map { $0 ? 1 : 0 }
    }

    /// Before a mode folder's segmentations are (re)written: its metrics, aggregates, outliers and thumbnails would
    /// describe the old ones, and would look complete beside a half-rewritten folder if this inference were killed,
    /// so they go first (ie-metrics writes them again); temporary files of a killed writer go too (the run's lock
    /// is held, so no other writer owns them).
    static func clearEvaluation(folder: String, mode: String) throws {
        let fileManager = FileManager.default
        guard let entries = try? fileManager.contentsOfDirectory(atPath: folder) else { return }
        var stale = RunLayout.evaluationFileNames(mode: mode).filter(entries.contains)
        stale += entries.filter { $0.hasPrefix(".tmp.") }
        for subject in entries where !stale.contains(subject) {
            let inner = folder + "/" + subject
            stale += ((try? fileManager.contentsOfDirectory(atPath: inner)) ?? []).filter { $0.hasPrefix(".tmp.") }.map { subject + "/" + $0 }
        }
        for name in stale {
            do { try fileManager.removeItem(atPath: folder + "/" + name) } catch {
                throw IEError.failure("cannot remove the stale \(name) before inference: \(error.localizedDescription)", file: folder)
            }
        }
    }

    /// Inference of the run's epoch-`epoch` checkpoint (or the given models) on one split (`Val`, `Test`).
    public static func infer(run: RunDirectory, config: ModelConfig, settings: Settings, epoch: Int, mode: String,
                             models: [UNet3D]? = nil, gaussian: Bool = false, tta: Bool = false) throws {
        if config.category.isScalar { return try ScalarRun.evaluate(run: run, config: config, settings: settings, epoch: epoch, mode: mode) }
        let split = mode.lowercased()
        let subjects = try run.splitSubjects(split)
        let dataset = try dataset(run: run, config: config, settings: settings)
        let preparation = try SubjectPreparation(dataset: dataset, config: config)
        let members = try models ?? runModels(run: run, epoch: epoch, config: config)
        let segmenter = try Segmenter(models: members, settings: InferenceSettings(config: config, gaussian: gaussian, tta: tta))
        let folder = run.epochFolder(epoch: epoch, mode: mode)
        try clearEvaluation(folder: folder, mode: mode)
        let classNames = [SubjectOutputNames.backgroundClass] + config.groundTruthIds
        let progress = Progress("inference \(mode)", total: subjects.count)
        for subject in subjects {
            let (prepared, raw) = try preparation.load(subject)
            let result = try segmenter.segment(image: prepared.image, channels: prepared.channels, shape: prepared.shape,
                                               mask: prepared.mask, spacing: raw.channels[0].spacing)
            try SubjectOutputs.write(directory: SafeName.path(in: folder, RunLayout.subjectFolderName(subject)), posteriors: result.posteriors,
                                     labels: result.labels, classNames: classNames, reference: raw.channels[0],
                                     threads: members.first?.engine.threads ?? 1)
            progress.step(subject)
        }
        try AtomicFile.write(config.datasetId ?? config.localDataset ?? "", to: folder + "/dataset_id.txt")
        try AtomicFile.write(config.groundTruthIds.joined(separator: "\n") + "\n", to: folder + "/ground_truth_ids.txt")
        try AtomicFile.write(config.imageChannels.joined(separator: "\n") + "\n", to: folder + "/image_channel_ids.txt")
    }
}

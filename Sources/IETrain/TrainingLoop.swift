import Foundation
import IECore
import IEDistributed
import IENet

/// Everything the training loop needs, as plain values (the config mapping lives in TrainingSetup+Config).
public struct TrainingSetup {
    public var modelName: String
    public var structureNames: [String]          // ground_truth_ids, background excluded
    public var imageChannels: Int
    public var featureChannels: Int
    public var downsamplingPaths: Int = 4
    public var kernelSize: Int = 3
    public var cropSize: Shape3D
    public var classWeights: [Double]?
    public var paddingMode: PaddingMode = .edge
    public var batchSize: Int = 4
    public var numEpochs: Int = 100
    public var learningRate: Double = 1e-4
    public var minLearningRate: Double = 0
    public var schedule: LearningRateSchedule = .polynomial(gamma: 1e-4)
    public var warmupEpochs: Int = 0
    public var optimizer: OptimizerKind = .adam
    public var optimizerSettings = OptimizerSettings()
    public var loss: SegmentationLoss = .softDice()
    public var seed: Int = 42
    public var applyAugmentations = false
    public var outputRange: (low: Double, high: Double) = (-1, 1)
    public var saveStartEpoch: Int = 100
    public var saveStepEpochs: Int = 50
    public var crossValidationSplitIndex: Int = -1
    public var validationCropsPerSubject: Int = 1
    /// Data-parallel shards of each batch. Under MPI every rank draws the whole batch (same random stream) and
    /// trains on its contiguous shard, gradients averaged over the ranks (PyTorch DDP; BatchNorm statistics per
    /// shard). In one process with `shards` > 1 the shards run one after another with the same averaging, which
    /// is what a K-rank run computes, so the two can be compared.
    public var shards: Int = 1
    /// Threads and convolution backends of the model (EngineOptions.fromEnvironment in the tools).
    public var engine = EngineOptions()

    public init(modelName: String, structureNames: [String], imageChannels: Int, featureChannels: Int, cropSize: Shape3D) {
        self.modelName = modelName
        self.structureNames = structureNames
        self.imageChannels = imageChannels
        self.featureChannels = featureChannels
        self.cropSize = cropSize
    }

    public var classCount: Int { structureNames.count + 1 }

    public var architecture: UNet3DArchitecture {
        UNet3DArchitecture(imageChannels: imageChannels, classes: classCount, featureChannels: featureChannels,
                           downsamplingPaths: downsamplingPaths, kernelSize: kernelSize)
    }

    /// SPEC §1.4: kept at epochs >= save_start_epoch with epoch % save_step_epochs == 0, and the last.
    public func keepsCheckpoint(epoch: Int) -> Bool {
        epoch == numEpochs || (epoch >= saveStartEpoch && saveStepEpochs > 0 && epoch % saveStepEpochs == 0)
    }
}

/// Where a run starts from: nothing, given weights only, or a full training state (weights, optimizer, epoch).
public enum TrainingStart {
    case fresh
    case weights(Checkpoint, source: String)
    case state(Checkpoint, source: String)
}

/// Signals that ask training to stop (SIGTERM from Slurm, SIGUSR1 before a time limit). They set a flag that the
/// loop checks between batches, so that nothing is half-written.
///
/// No thread of the process may ever run a handler for them. oneDNN's JIT f32 GEMM kernels (2.6, Debian 12's,
/// up to 3.11: oneDNN issue 4845) point rsp into a heap workspace while they run; a signal delivered to a thread
/// inside one writes its frame there and corrupts the heap (NaN gradients, aborts, segfaults, seen on a USR1 that
/// arrived mid-step). So `install` blocks both signals in the calling thread before any compute thread exists
/// (threads inherit the mask: OpenMP, MPI's, the prefetch worker) and reads them through a signalfd (Dispatch's
/// signal source), which takes blocked pending signals without interrupting anyone.
public enum StopSignal {
    nonisolated(unsafe) private static var flag: sig_atomic_t = 0

    /// SIGINT (Ctrl-C) too: it stops at the next batch like SIGTERM, and a second Ctrl-C stops at once. SIGHUP
    /// (the terminal or ssh session closed) stops the same way, unless the process started ignoring it (`nohup`):
    /// SignalReader leaves a signal ignored at start alone.
    private static let signals = [SIGTERM, SIGUSR1, SIGINT, SIGHUP]

    public static var requested: Bool { flag != 0 }

    /// What a stopped training leaves to continue from (nothing yet when no epoch had completed).
    public static func resumeHint(lastCompletedEpoch: Int) -> String {
        lastCompletedEpoch > 0 ? "the autosave holds epoch \(lastCompletedEpoch), rerun with --resume"
                               : "no epoch had completed, so nothing was saved: rerun the same command"
    }

    /// Call first, on the main thread, before the engine, MPI or any worker starts threads.
    public static func install() {
        SignalReader.start(signals) { sig in
            if sig == SIGINT && flag != 0 { _exit(130) }
            flag = 1
        }
    }
}

/// Exit status after a stop signal: 128 + SIGTERM, what Slurm's requeue logic expects.
public let stoppedBySignalExitCode: Int32 = 143

/// The training loop of SPEC §4.2. One epoch = one random crop per training subject, in a seeded random order,
/// batched; then validation on crops that are the same every epoch. Each epoch's random stream is derived from
/// (seed, epoch), so a run resumed from the autosave of epoch e draws exactly what an uninterrupted run draws.
public final class Trainer {
    public let setup: TrainingSetup
    public let outputs: String
    public let model: UNet3D
    public let optimizer: Optimizer
    /// Gradient averaging over MPI ranks (LocalReducer in one process). Only rank 0 writes files.
    public let reducer: GradientReducer
    var gradientScratch: [Float] = []
    let train: [SegmentationSubject]
    let validation: [SegmentationSubject]
    let sampler: CropSampler
    let validationCrops: [Crop]
    public private(set) var lastCompletedEpoch = 0
    /// Training steps, their time and the part of it spent waiting for data (for benchmarks; not logged).
    public private(set) var dataTiming = DataTiming()

    /// The paths of the run whose outputs folder this trainer writes.
    var layout: RunLayout { RunLayout(outputs: outputs) }
    public var checkpointsFolder: String { layout.checkpoints }

    public init(setup: TrainingSetup, outputs: String, train: [SegmentationSubject], validation: [SegmentationSubject],
                start: TrainingStart, reducer: GradientReducer = LocalReducer()) throws {
        guard !train.isEmpty else { throw IEError.badInput("the training set is empty, expected at least one subject") }
        let shards = reducer.size > 1 ? reducer.size : setup.shards  // before `self` is complete
        guard shards >= 1, shards <= setup.batchSize else {
            throw IEError.usage("\(shards) data-parallel shards for train_batch_size \(setup.batchSize), expected at most one shard per batch element")
        }
        self.reducer = reducer
        self.setup = setup
        self.outputs = outputs
        self.train = train
        self.validation = validation
        model = try setup.architecture.makeModel(seed: UInt64(truncatingIfNeeded: setup.seed), source: setup.modelName,
                                               options: setup.engine)
        try model.validateInputShape([setup.batchSize, setup.imageChannels, setup.cropSize.z, setup.cropSize.y, setup.cropSize.x])
        optimizer = Optimizer(kind: setup.optimizer, parameters: model.parameters, settings: setup.optimizerSettings)
        sampler = try CropSampler(cropSize: setup.cropSize, classWeights: setup.classWeights, paddingMode: setup.paddingMode)
        validationCrops = try sampler.validationCrops(validation, seed: UInt64(truncatingIfNeeded: setup.seed) &+ 0x5eed,
                                                      cropsPerSubject: setup.validationCropsPerSubject)
        switch start {
        case .fresh:
            break
        case .weights(let checkpoint, let source):
            try checkpoint.restore(model: model, optimizer: nil, source: source)
        case .state(let checkpoint, let source):
            try checkpoint.restore(model: model, optimizer: optimizer, source: source)
            lastCompletedEpoch = checkpoint.epoch ?? 0
            for warning in Trainer.reproducibilityWarnings(saved: checkpoint.metadata, now: executionMetadata(), source: source) {
                Log.warning(warning)
            }
        }
    }

    /// Trains epochs lastCompletedEpoch+1 ... numEpochs. Returns false when a stop signal ended it early (the
    /// autosave then holds the last completed epoch).
    @discardableResult
    public func run(progress: Bool = true) throws -> Bool {
        let trainLog = layout.epochMetrics(mode: "Train")
        let valLog = layout.epochMetrics(mode: "Val")
        var trainRows = try EpochMetricsLog.rows(path: trainLog, before: lastCompletedEpoch + 1)
        var valRows = try EpochMetricsLog.rows(path: valLog, before: lastCompletedEpoch + 1)
        let header = EpochMetricsLog.header(structures: setup.structureNames)
        if lastCompletedEpoch >= setup.numEpochs {
            Log.info("\(setup.modelName): already trained to epoch \(lastCompletedEpoch) of \(setup.numEpochs)")
            return true
        }
        // The next epoch's first batch is prepared while this epoch validates and writes its checkpoint.
        var upcoming: EpochBatches<[CropBatch]>?
        defer { upcoming?.data.finish() }
        for epoch in (lastCompletedEpoch + 1)...setup.numEpochs {
            let started = Date()
            let lr = learningRate(epoch: epoch - 1, baseRate: setup.learningRate, minRate: setup.minLearningRate,
                                  numEpochs: setup.numEpochs, schedule: setup.schedule, warmupEpochs: setup.warmupEpochs)
            guard let trainStats = try trainEpoch(epoch: epoch, lr: lr, progress: progress, prepared: upcoming) else {
                Log.info("stopped by signal during epoch \(epoch); " + StopSignal.resumeHint(lastCompletedEpoch: lastCompletedEpoch))
                return false
            }
            let trainSeconds = Date().timeIntervalSince(started)
            upcoming = epoch < setup.numEpochs && setup.engine.prefetchBatches ? epochData(epoch: epoch + 1) : nil
            trainRows.append(EpochMetricsLog.row(epoch: epoch, stats: trainStats, lr: lr, seconds: trainSeconds,
                                                 split: setup.crossValidationSplitIndex))
            let valStarted = Date()
            if !validationCrops.isEmpty {
                let valStats = evaluate(validationCrops)
                valRows.append(EpochMetricsLog.row(epoch: epoch, stats: valStats, lr: lr,
                                                   seconds: Date().timeIntervalSince(valStarted),
                                                   split: setup.crossValidationSplitIndex))
                Log.info(String(format: "epoch %d/%d  train loss %.4f dice %.3f  val loss %.4f dice %.3f  lr %.2e  %.1fs",
                                epoch, setup.numEpochs, trainStats.loss, trainStats.meanDice, valStats.loss,
                                valStats.meanDice, lr, Date().timeIntervalSince(started)))
            } else {
                Log.info(String(format: "epoch %d/%d  train loss %.4f dice %.3f  lr %.2e  %.1fs", epoch, setup.numEpochs,
                                trainStats.loss, trainStats.meanDice, lr, trainSeconds))
            }
            lastCompletedEpoch = epoch
            if reducer.rank == 0 {
                try writeEpoch(epoch: epoch, header: header, trainLog: trainLog, trainRows: trainRows, valLog: valLog, valRows: valRows)
            }
            if try stopRequested() {
                Log.info("stopped by signal after epoch \(epoch); the autosave holds it, rerun with --resume")
                return false
            }
        }
        return true
    }

    /// Logs first, then checkpoints: a resumed run rewrites the logs up to its autosave's epoch.
    func writeEpoch(epoch: Int, header: String, trainLog: String, trainRows: [String], valLog: String, valRows: [String]) throws {
        try AtomicFile.write(header + trainRows.joined(), to: trainLog)
        if !validationCrops.isEmpty { try AtomicFile.write(header + valRows.joined(), to: valLog) }
        let data = Checkpoint.serialize(model: model, optimizer: optimizer, epoch: epoch, metadata: checkpointMetadata())
        if setup.keepsCheckpoint(epoch: epoch) {
            try AtomicFile.write(data, to: layout.checkpoint(epoch: epoch))
        }
        try AtomicFile.write(data, to: layout.autosave)
    }

    /// A stop signal, agreed by all ranks (one tiny allreduce) so that no rank waits in a collective for a rank
    /// that has stopped.
    func stopRequested() throws -> Bool {
        guard reducer.size > 1 else { return StopSignal.requested }
        var flag: [Float] = [StopSignal.requested ? 1 : 0]
        try flag.withUnsafeMutableBufferPointer { try reducer.average($0) }
        return flag[0] > 0
    }


    /// Shards of every batch: one per MPI rank, else IE_EMULATE_RANKS's count in this one process.
    var shardCount: Int { reducer.size > 1 ? reducer.size : setup.shards }

    /// What decides the last bits of the results besides the seed: the convolution backend, the precision
    /// actually used, the GEMM threads and the data-parallel shards (results differ in float rounding when they change).
    func executionMetadata() -> [String: String] {
        ["conv_backend": setup.engine.library.rawValue, "direct_conv": setup.engine.usesDirectKernel ? "on" : "off",
         "precision": model.engine.precision.rawValue, "threads": String(setup.engine.threads),
         "shards": String(shardCount)]
    }

    /// Warnings for a run continued from a checkpoint written under other execution settings: it trains on, but
    /// will not reproduce an uninterrupted run bit for bit. Checkpoints written before these keys existed say nothing.
    static func reproducibilityWarnings(saved: [String: String], now: [String: String], source: String) -> [String] {
        let keys = [("conv_backend", "convolution backend"), ("direct_conv", "direct few-channel conv kernel"),
                    ("precision", "convolution precision"), ("threads", "thread count"), ("shards", "data-parallel shards")]
        return keys.compactMap { key, label in
            guard let before = saved[key], let current = now[key], before != current else { return nil }
            return "\(source) was written with \(label) \(before), this run uses \(current): training continues, "
                + "but its results will differ in the last bits from a run that kept \(before)"
        }
    }

    func checkpointMetadata() -> [String: String] {
        executionMetadata().merging(["model_name": setup.modelName,
         "random_seed": String(setup.seed),
         "rng_state": "xoshiro256** seeded by (random_seed, \"train-epoch-<epoch>\"); the state at an epoch boundary is a function of the epoch",
         "structures": setup.structureNames.joined(separator: ","),
         "crop_size": setup.cropSize.array.map(String.init).joined(separator: ",")]) { _, new in new }
    }

    /// The training batches of one epoch: the order and every crop come from the epoch's generator
    /// xoshiro256**(seed, "train-epoch-<e>"), consumed batch by batch in order (shuffle, then per crop the
    /// sample and its augmentations); the batches are prepared one ahead on a worker (BatchPrefetcher) unless
    /// IENET_DATA_PREFETCH=0. Each item is the batch stacked per data-parallel shard this process trains.
    func epochData(epoch: Int) -> EpochBatches<[CropBatch]> {
        var rng = Xoshiro256(seed: UInt64(truncatingIfNeeded: setup.seed), stream: "train-epoch-\(epoch)")
        var order = Array(train.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(below: i + 1)) }
        let augmenter = setup.applyAugmentations ? Augmenter(outputRange: setup.outputRange) : nil
        let batches = stride(from: 0, to: order.count, by: setup.batchSize).map { Array(order[$0..<min($0 + setup.batchSize, order.count)]) }
        let (sampler, subjects, channels, classCount) = (self.sampler, train, setup.imageChannels, setup.classCount)
        let shards = shardCount
        let mine = reducer.size > 1 ? [reducer.rank] : Array(0..<shards)
        let data = BatchPrefetcher(count: batches.count, ahead: setup.engine.prefetchBatches, label: "train-epoch-\(epoch)") { k in
            var crops = [Crop]()
            for i in batches[k] {
                var crop = try sampler.sample(subjects[i], using: &rng)
                augmenter?.apply(&crop, channels: channels, classCount: classCount, using: &rng)
                crops.append(crop)
            }
            let bounds = (0...shards).map { $0 * crops.count / shards }
            // A short last batch can leave a shard empty (DDP semantics: it contributes a zero gradient).
            return mine.filter { bounds[$0] < bounds[$0 + 1] }.map {
                CropBatch(Array(crops[bounds[$0]..<bounds[$0 + 1]]), classCount: classCount)
            }
        }
        return EpochBatches(epoch: epoch, data: data)
    }

    /// One epoch of training; nil when a stop signal arrived (the epoch is then discarded). `prepared` is the
    /// epoch's data when its first batch was started ahead (during the previous epoch's validation).
    func trainEpoch(epoch: Int, lr: Double, progress: Bool, prepared: EpochBatches<[CropBatch]>? = nil) throws -> EpochStats? {
        let epochData = prepared.flatMap { $0.epoch == epoch ? $0 : nil } ?? self.epochData(epoch: epoch)
        defer { epochData.data.finish() }
        var stats = EpochStats(structures: setup.structureNames.count)
        let bar = progress ? Progress("epoch \(epoch) train", total: epochData.batches) : nil
        let shards = shardCount
        var batchNumber = 1
        while true {
            if try stopRequested() { return nil }
            let began = DispatchTime.now().uptimeNanoseconds
            let waitBefore = epochData.data.waitSeconds
            guard let shardBatches = try epochData.data.next() else { break }
            optimizer.zeroGrad()
            var lossSum = 0.0
            for batch in shardBatches {
                let (input, target) = tensors(batch)
                let logits = model.forward(input, training: true)
                let shardResult = setup.loss.evaluate(logits: logits, target: target, threads: setup.engine.threads)
                model.backward(shardResult.gradLogits)
                lossSum += shardResult.value
                stats.add(loss: shardResult.value, logits: logits, batch: batch)
            }
            if reducer.size > 1 {
                try reducer.averageGradients(model.parameters, scratch: &gradientScratch)
            } else if shards > 1 {
                let scale = 1 / Float(shards)
                for p in model.parameters { for i in 0..<p.count { p.grad[i] *= scale } }
            }
            try requireFinite(loss: lossSum, epoch: epoch, batch: batchNumber, lr: lr)
            optimizer.step(lr: lr)
            dataTiming.add(wait: epochData.data.waitSeconds - waitBefore, since: began)
            batchNumber += 1
            bar?.step(shardBatches.isEmpty ? "empty shard" : String(format: "loss %.4f", lossSum / Double(shardBatches.count)))
        }
        return stats
    }

    /// A diverged step (non-finite loss, or non-finite averaged gradients: the same on every MPI rank) stops the
    /// training before the optimizer spreads NaN into the weights: the run fails with this error and registers
    /// nothing, instead of completing with NaN weights whose inference traps.
    func requireFinite(loss: Double, epoch: Int, batch: Int, lr: Double) throws {
        let gradientsFinite = model.parameters.allSatisfy { p in p.grad.allSatisfy { $0.isFinite } }
        guard loss.isFinite && gradientsFinite else {
            let what = loss.isFinite ? "the gradients are not finite" : "the loss is \(loss)"
            throw IEError.failure("training diverged at epoch \(epoch), batch \(batch): \(what) (learning rate \(lr)), expected finite values; lower l_rate or check the data")
        }
    }

    /// Network input [B, C, Z, Y, X] and one-hot target [B, K, Z, Y, X] of a batch of crops.
    func tensors(_ batch: CropBatch) -> (input: Tensor, target: Tensor) {
        let spatial = [batch.size.z, batch.size.y, batch.size.x]
        return (Tensor(shape: [batch.count, setup.imageChannels] + spatial, data: batch.images),
                Tensor(shape: [batch.count, setup.classCount] + spatial, data: batch.labels))
    }

    /// Loss and crop Dice on fixed crops, network in inference mode (BatchNorm running statistics).
    func evaluate(_ crops: [Crop]) -> EpochStats {
        var stats = EpochStats(structures: setup.structureNames.count)
        for start in stride(from: 0, to: crops.count, by: setup.batchSize) {
            let batch = CropBatch(Array(crops[start..<min(start + setup.batchSize, crops.count)]), classCount: setup.classCount)
            let (input, target) = tensors(batch)
            let logits = model.forward(input, training: false)
            let result = setup.loss.evaluate(logits: logits, target: target, threads: setup.engine.threads)
            stats.add(loss: result.value, logits: logits, batch: batch)
        }
        return stats
    }
}

/// Running sums for one epoch: mean loss per batch, crop Dice per structure (2|A∩B|/(|A|+|B|+1e-6) per crop,
/// averaged over crops), mean ground-truth voxel count per crop.
struct EpochStats {
    var lossSum = 0.0
    var batches = 0
    var diceSum: [Double]
    var voxelSum: [Double]
    var crops = 0

    init(structures: Int) {
        diceSum = [Double](repeating: 0, count: structures)
        voxelSum = [Double](repeating: 0, count: structures)
    }

    var loss: Double { batches == 0 ? .nan : lossSum / Double(batches) }
    var dice: [Double] { diceSum.map { crops == 0 ? .nan : $0 / Double(crops) } }
    var voxelCounts: [Double] { voxelSum.map { crops == 0 ? .nan : $0 / Double(crops) } }
    var meanDice: Double { dice.isEmpty ? .nan : dice.reduce(0, +) / Double(dice.count) }

    mutating func add(loss: Double, logits: Tensor, batch: CropBatch) {
        lossSum += loss
        batches += 1
        let k = logits.shape[1]
        let n = batch.size.count
        for b in 0..<batch.count {
            var intersection = [Double](repeating: 0, count: k)
            var predicted = [Double](repeating: 0, count: k)
            var truth = [Double](repeating: 0, count: k)
            logits.data.withUnsafeBufferPointer { l in
                for v in 0..<n {
                    var best = 0
                    var bestValue = l[(b * k) * n + v]
                    for c in 1..<k where l[(b * k + c) * n + v] > bestValue { best = c; bestValue = l[(b * k + c) * n + v] }
                    let t = Int(batch.classIndices[b * n + v])
                    predicted[best] += 1
                    truth[t] += 1
                    if best == t { intersection[t] += 1 }
                }
            }
            for s in 0..<diceSum.count {
                diceSum[s] += 2 * intersection[s + 1] / (predicted[s + 1] + truth[s + 1] + 1e-6)
                voxelSum[s] += truth[s + 1]
            }
            crops += 1
        }
    }
}

/// `outputs/{Train,Val}/epoch_metrics.csv` (SPEC §4.2).
enum EpochMetricsLog {
    static func header(structures: [String]) -> String {
        (["epoch", "loss", "learning_rate", "Dice/AverageAcrossStructures"] + structures.map { "Dice/\($0)" }
            + structures.map { "VoxelCount/\($0)" } + ["seconds", "cross_validation_split_index"]).joined(separator: ",") + "\n"
    }

    static func row(epoch: Int, stats: EpochStats, lr: Double, seconds: Double, split: Int) -> String {
        var fields = [String(epoch), String(format: "%.6f", stats.loss), String(format: "%.6e", lr),
                      String(format: "%.6f", stats.meanDice)]
        fields += stats.dice.map { String(format: "%.6f", $0) }
        fields += stats.voxelCounts.map { String(format: "%.1f", $0) }
        fields += [String(format: "%.3f", seconds), String(split)]
        return fields.joined(separator: ",") + "\n"
    }

    /// The rows of an existing log for epochs before `epoch` (kept when a run resumes).
    static func rows(path: String, before epoch: Int) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let table = try CSVTable.read(path: path)
        return table.rows.filter { ($0.first.flatMap { Int($0) } ?? Int.max) < epoch }.map { CSVTable.line($0) }
    }
}

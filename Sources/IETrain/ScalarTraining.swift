import Foundation
import IECore
import IEConfig
import IEEval
import IENet

/// What a scalar (classification / regression) model trains with, from its config (SPEC §13).
public struct ScalarTrainingSetup {
    public var modelName: String
    public var category: ModelCategory
    public var architecture: ImageClassifierArchitecture
    public var optimisation: OptimisationSetup
    public var lossType: String
    public var seed: Int
    public var saveStartEpoch: Int
    public var saveStepEpochs: Int
    public var crossValidationSplitIndex: Int
    public var transforms: TransformPipelines
    public var imageSize: [Int]?
    /// One name per output: the class names of a multi-label model, else InnerEye's "Default".
    public var predictionTargets: [String]
    public var engine = EngineOptions()

    public init(config: ModelConfig, nonImageFeatures: Int) throws {
        modelName = config.name
        category = config.category
        guard !config.featureChannels.isEmpty else {
            throw IEError.usage("\(config.name): feature_channels is not set, expected the channels of each encoder stage, e.g. [16, 32, 64]", file: config.file)
        }
        architecture = ImageClassifierArchitecture(imageChannels: 1, featureChannels: config.featureChannels,
                                                   nonImageFeatures: nonImageFeatures, hiddenUnits: config.hiddenUnits,
                                                   outputs: config.scalarOutputs)
        optimisation = try OptimisationSetup(config: config)
        lossType = config.lossType
        seed = config.effectiveRandomSeed
        saveStartEpoch = config.saveStartEpoch
        saveStepEpochs = config.saveStepEpochs
        crossValidationSplitIndex = config.crossValidationSplitIndex
        transforms = TransformPipelines(
            train: try TransformPipeline(loaded: config.transformRecords("train_transforms"), label: "train_transforms",
                                         file: config.sourceDescription("train_transforms")),
            evaluation: try TransformPipeline(loaded: config.transformRecords("val_transforms"), label: "val_transforms",
                                              file: config.sourceDescription("val_transforms")))
        imageSize = config.imageSize
        predictionTargets = config.classNames.isEmpty ? ["Default"] : config.classNames
    }

    /// SPEC §1.4: kept at epochs >= save_start_epoch with epoch % save_step_epochs == 0, and the last.
    public func keepsCheckpoint(epoch: Int) -> Bool {
        epoch == optimisation.numEpochs || (epoch >= saveStartEpoch && saveStepEpochs > 0 && epoch % saveStepEpochs == 0)
    }
}

/// The outputs of one pass over a set of subjects: per subject the model outputs (probabilities for a
/// classifier, values for a regressor) and labels, one per prediction target.
public struct ScalarPass {
    public var subjects: [String] = []
    public var outputs: [[Float]] = []
    public var labels: [[Float]] = []
    public var lossSum = 0.0
    public var batches = 0
    public var loss: Double { batches == 0 ? .nan : lossSum / Double(batches) }
}

/// The training loop of a scalar model: one pass over the training subjects per epoch in a seeded random order,
/// their train transforms drawn per (seed, epoch, subject); then the validation subjects through the val/test
/// transforms (the same every epoch). Epoch logs, model outputs and checkpoints as SPEC §13 lists them; a run
/// resumed from the autosave of epoch e continues exactly as an uninterrupted one.
public final class ScalarTrainer {
    public let setup: ScalarTrainingSetup
    public let outputs: String
    public let model: ImageClassifier
    public let optimizer: Optimizer
    let train: [ScalarSample]
    let validation: [ScalarSample]
    public private(set) var lastCompletedEpoch = 0
    /// Training steps, their time and the part of it spent waiting for data (for benchmarks; not logged).
    public private(set) var dataTiming = DataTiming()

    public init(setup: ScalarTrainingSetup, outputs: String, train: [ScalarSample], validation: [ScalarSample],
                start: TrainingStart) throws {
        guard let first = train.first else { throw IEError.badInput("the training set is empty, expected at least one subject") }
        var architecture = setup.architecture
        architecture.imageChannels = first.image.channels
        try architecture.validate()
        var resolved = setup
        resolved.architecture = architecture
        self.setup = resolved
        self.outputs = outputs
        self.train = train
        self.validation = validation
        model = ImageClassifier(architecture, seed: UInt64(truncatingIfNeeded: setup.seed), options: setup.engine)
        optimizer = Optimizer(kind: setup.optimisation.optimizer, parameters: model.parameters, settings: setup.optimisation.optimizerSettings)
        switch start {
        case .fresh: break
        case .weights(let checkpoint, let source):
            try checkpoint.restore(model: model, optimizer: nil, source: source)
        case .state(let checkpoint, let source):
            try checkpoint.restore(model: model, optimizer: optimizer, source: source)
            lastCompletedEpoch = checkpoint.epoch ?? 0
        }
    }

    var seed: UInt64 { UInt64(truncatingIfNeeded: setup.seed) }

    /// Loss and d(loss)/d(logits) of a batch, and the outputs the metrics use (σ(logit) for a classifier).
    func loss(logits: Tensor, labels: [Float]) -> (value: Double, gradient: Tensor, outputs: [Float]) {
        switch setup.lossType {
        case "MSE":
            let (value, gradient) = ScalarLoss.meanSquaredError(logits, targets: labels)
            return (value, gradient, logits.data)
        case "WeightedCrossEntropy":
            let (value, gradient) = ScalarLoss.binaryCrossEntropyWithLogits(logits, targets: labels, positiveWeights: positiveWeights)
            return (value, gradient, logits.data.map(ScalarLoss.sigmoid))
        default:
            let (value, gradient) = ScalarLoss.binaryCrossEntropyWithLogits(logits, targets: labels)
            return (value, gradient, logits.data.map(ScalarLoss.sigmoid))
        }
    }

    /// WeightedCrossEntropy: each output's positive examples weighted by negatives / positives over the training
    /// set (1 where a class has no positive), so both classes weigh the same.
    lazy var positiveWeights: [Float] = {
        let k = setup.predictionTargets.count
        return (0..<k).map { c in
            let positives = train.filter { $0.label[c] > 0.5 }.count
            return positives == 0 ? 1 : Float(train.count - positives) / Float(positives)
        }
    }()

    /// Trains epochs lastCompletedEpoch+1 ... num_epochs; false when a stop signal ended it early.
    @discardableResult
    public func run(progress: Bool = true) throws -> Bool {
        let log = ScalarEpochLog(outputs: outputs, setup: setup)
        var state = try log.read(before: lastCompletedEpoch + 1)
        let epochs = setup.optimisation.numEpochs
        if lastCompletedEpoch >= epochs {
            Log.info("\(setup.modelName): already trained to epoch \(lastCompletedEpoch) of \(epochs)")
            return true
        }
        // The next epoch's first batch is prepared while this epoch validates and writes its checkpoint.
        var upcoming: EpochBatches<ScalarBatch>?
        defer { upcoming?.data.finish() }
        for epoch in (lastCompletedEpoch + 1)...epochs {
            let started = Date()
            let lr = setup.optimisation.learningRate(epoch: epoch - 1)
            guard let trainPass = try trainEpoch(epoch: epoch, lr: lr, progress: progress, prepared: upcoming) else {
                Log.info("stopped by signal during epoch \(epoch); " + StopSignal.resumeHint(lastCompletedEpoch: lastCompletedEpoch))
                return false
            }
            let trainSeconds = Date().timeIntervalSince(started)
            upcoming = epoch < epochs && setup.engine.prefetchBatches ? epochData(epoch: epoch + 1) : nil
            state.add(mode: "Train", epoch: epoch, pass: trainPass, lr: lr, seconds: trainSeconds)
            var message = String(format: "epoch %d/%d  train loss %.4f", epoch, epochs, trainPass.loss)
            if !validation.isEmpty {
                let valStarted = Date()
                let valPass = try evaluate(validation, mode: "val")
                state.add(mode: "Val", epoch: epoch, pass: valPass, lr: lr, seconds: Date().timeIntervalSince(valStarted))
                message += String(format: "  val loss %.4f", valPass.loss) + state.summary(mode: "Val")
            }
            Log.info(message + String(format: "  lr %.2e  %.1fs", lr, Date().timeIntervalSince(started)))
            lastCompletedEpoch = epoch
            try log.write(state)
            let data = Checkpoint.serialize(classifier: model, optimizer: optimizer, epoch: epoch, metadata: [
                "model_name": setup.modelName, "model_category": setup.category.rawValue, "random_seed": String(setup.seed),
                "prediction_targets": setup.predictionTargets.joined(separator: ",")])
            let layout = RunLayout(outputs: outputs)
            if setup.keepsCheckpoint(epoch: epoch) { try AtomicFile.write(data, to: layout.checkpoint(epoch: epoch)) }
            try AtomicFile.write(data, to: layout.autosave)
            if StopSignal.requested {
                Log.info("stopped by signal after epoch \(epoch); the autosave holds it, rerun with --resume")
                return false
            }
        }
        return true
    }

    /// The training batches of one epoch: the order from xoshiro256**(seed, "scalar-train-epoch-<e>"), each
    /// batch's images through the train transforms (their own per-subject generators) and stacked, prepared one
    /// ahead on a worker (BatchPrefetcher) unless IENET_DATA_PREFETCH=0.
    func epochData(epoch: Int) -> EpochBatches<ScalarBatch> {
        var rng = Xoshiro256(seed: seed, stream: "scalar-train-epoch-\(epoch)")
        var order = Array(train.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(below: i + 1)) }
        let size = setup.optimisation.batchSize
        let batches = stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min($0 + size, order.count)]) }
        let (subjects, pipeline, seed, imageSize, channels) = (train, setup.transforms.train, self.seed, setup.imageSize,
                                                               model.architecture.imageChannels)
        let data = BatchPrefetcher(count: batches.count, ahead: setup.engine.prefetchBatches, label: "scalar-train-epoch-\(epoch)") { k in
            let samples = batches[k].map { subjects[$0] }
            let batch = try ScalarInputs.batch(samples, pipeline: pipeline, seed: seed, epoch: epoch, mode: "train", imageSize: imageSize,
                                           channels: channels)
            return ScalarBatch(samples: samples, images: batch.images, features: batch.features, labels: batch.labels)
        }
        return EpochBatches(epoch: epoch, data: data)
    }

    /// One epoch of training; nil when a stop signal arrived (the epoch is then discarded). `prepared` is the
    /// epoch's data when its first batch was started ahead (during the previous epoch's validation).
    func trainEpoch(epoch: Int, lr: Double, progress: Bool, prepared: EpochBatches<ScalarBatch>? = nil) throws -> ScalarPass? {
        let epochData = prepared.flatMap { $0.epoch == epoch ? $0 : nil } ?? self.epochData(epoch: epoch)
        defer { epochData.data.finish() }
        let bar = progress ? Progress("epoch \(epoch) train", total: epochData.batches) : nil
        var pass = ScalarPass()
        var number = 1
        while true {
            if StopSignal.requested { return nil }
            let began = DispatchTime.now().uptimeNanoseconds
            let waitBefore = epochData.data.waitSeconds
            guard let batch = try epochData.data.next() else { break }
            optimizer.zeroGrad()
            let logits = model.forward(batch.images, features: batch.features, training: true)
            let result = loss(logits: logits, labels: batch.labels)
            model.backward(result.gradient)
            let finite = result.value.isFinite && model.parameters.allSatisfy { $0.grad.allSatisfy(\.isFinite) }
            guard finite else {
                throw IEError.failure("training diverged at epoch \(epoch), batch \(number): the loss is \(result.value) (learning rate \(lr)), expected finite values; lower l_rate or check the data")
            }
            optimizer.step(lr: lr)
            dataTiming.add(wait: epochData.data.waitSeconds - waitBefore, since: began)
            pass.record(samples: batch.samples, outputs: result.outputs, loss: result.value, targets: setup.predictionTargets.count)
            bar?.step(String(format: "loss %.4f", result.value))
            number += 1
        }
        return pass
    }

    /// Outputs on `samples` through the val/test transforms, network in inference mode.
    public func evaluate(_ samples: [ScalarSample], mode: String) throws -> ScalarPass {
        try ScalarTrainer.evaluate(model: model, samples: samples, setup: setup, mode: mode)
    }

    public static func evaluate(model: ImageClassifier, samples: [ScalarSample], setup: ScalarTrainingSetup, mode: String) throws -> ScalarPass {
        var pass = ScalarPass()
        let size = setup.optimisation.batchSize
        for start in stride(from: 0, to: samples.count, by: size) {
            let chunk = Array(samples[start..<min(start + size, samples.count)])
            let batch = try ScalarInputs.batch(chunk, pipeline: setup.transforms.evaluation, seed: UInt64(truncatingIfNeeded: setup.seed),
                                               epoch: 0, mode: mode, imageSize: setup.imageSize,
                                               channels: model.architecture.imageChannels)
            let logits = model.forward(batch.images, features: batch.features, training: false)
            let outputs = setup.category == .regression ? logits.data : logits.data.map(ScalarLoss.sigmoid)
            let value: Double
            if setup.category == .regression {
                value = ScalarLoss.meanSquaredError(logits, targets: batch.labels).loss
            } else {
                value = ScalarLoss.binaryCrossEntropyWithLogits(logits, targets: batch.labels).loss
            }
            pass.record(samples: chunk, outputs: outputs, loss: value, targets: setup.predictionTargets.count)
        }
        return pass
    }
}

extension ScalarPass {
    mutating func record(samples: [ScalarSample], outputs flat: [Float], loss: Double, targets: Int) {
        for (i, sample) in samples.enumerated() {
            subjects.append(sample.id)
            outputs.append(Array(flat[(i * targets)..<((i + 1) * targets)]))
            labels.append(sample.label)
        }
        lossSum += loss
        batches += 1
    }

    /// The metric columns of one prediction target (InnerEye's MetricType names, SPEC §13).
    public func metrics(target: Int, regression: Bool) -> [(name: String, value: Double)] {
        let scores = outputs.map { Double($0[target]) }
        if regression {
            let m = ScalarMetrics.regression(labels: labels.map { Double($0[target]) }, outputs: scores)
            return [("MeanAbsoluteError", m.meanAbsoluteError), ("MeanSquaredError", m.meanSquaredError),
                    ("R2Score", m.r2), ("ExplainedVariance", m.explainedVariance), ("SubjectCount", Double(m.subjectCount))]
        }
        let m = ScalarMetrics.classification(labels: labels.map { $0[target] > 0.5 }, scores: scores)
        return [("AreaUnderRocCurve", m.areaUnderROC), ("AreaUnderPRCurve", m.areaUnderPR),
                ("AccuracyAtOptimalThreshold", m.accuracyAtOptimalThreshold),
                ("FalsePositiveRateAtOptimalThreshold", m.falsePositiveRateAtOptimalThreshold),
                ("FalseNegativeRateAtOptimalThreshold", m.falseNegativeRateAtOptimalThreshold),
                ("OptimalThreshold", m.optimalThreshold), ("CrossEntropy", m.crossEntropy),
                ("AccuracyAtThreshold05", m.accuracyAtThreshold05), ("SubjectCount", Double(m.subjectCount))]
    }
}

/// `outputs/{Train,Val}/epoch_metrics.csv` (one row per epoch: loss, learning rate, the metrics of every
/// prediction target, seconds, fold) and `outputs/{Train,Val}/model_outputs.csv` (InnerEye's columns
/// prediction_target, epoch, subject, model_output, label, cross_validation_split_index, data_split; every epoch).
/// A resumed run keeps the rows of the epochs before its autosave's and rewrites the rest.
struct ScalarEpochLog {
    let outputs: String
    let setup: ScalarTrainingSetup
    static let outputColumns = ["prediction_target", "epoch", "subject", "model_output", "label", "cross_validation_split_index", "data_split"]

    struct State {
        var metricRows: [String: [[String]]] = [:]
        var outputRows: [String: [[String]]] = [:]
        var lastSummary: [String: String] = [:]
        let setup: ScalarTrainingSetup

        mutating func add(mode: String, epoch: Int, pass: ScalarPass, lr: Double, seconds: Double) {
            let regression = setup.category == .regression
            var row = [String(epoch), String(format: "%.6f", pass.loss), String(format: "%.6e", lr)]
            var summary = ""
            for (t, target) in setup.predictionTargets.enumerated() {
                let metrics = pass.metrics(target: t, regression: regression)
                row += metrics.map { String(format: "%.6f", $0.value) }
                if t == 0, let first = metrics.first { summary = String(format: "  %@ %.3f", first.name, first.value) }
                for (i, subject) in pass.subjects.enumerated() {
                    outputRows[mode, default: []].append([target, String(epoch), subject, String(format: "%.6f", pass.outputs[i][t]),
                                                          String(format: "%.6f", pass.labels[i][t]),
                                                          String(setup.crossValidationSplitIndex), mode])
                }
            }
            row += [String(format: "%.3f", seconds), String(setup.crossValidationSplitIndex)]
            metricRows[mode, default: []].append(row)
            lastSummary[mode] = summary
        }

        func summary(mode: String) -> String { lastSummary[mode] ?? "" }
    }

    var metricColumns: [String] {
        let names = ScalarPass().metrics(target: 0, regression: setup.category == .regression).map(\.name)
        let perTarget = setup.predictionTargets.count == 1 ? names
            : setup.predictionTargets.flatMap { target in names.map { "\(target)/\($0)" } }
        return ["epoch", "loss", "learning_rate"] + perTarget + ["seconds", "cross_validation_split_index"]
    }

    var layout: RunLayout { RunLayout(outputs: outputs) }

    /// The rows of existing logs for epochs before `epoch`.
    func read(before epoch: Int) throws -> State {
        var state = State(setup: setup)
        for mode in ["Train", "Val"] {
            for (file, epochColumn, isMetrics) in [(layout.epochMetrics(mode: mode), 0, true), (layout.modelOutputs(mode: mode), 1, false)] {
                guard FileManager.default.fileExists(atPath: file) else { continue }
                let rows = try CSVTable.read(path: file).rows.filter { row in
                    row.count > epochColumn && (Int(row[epochColumn]) ?? Int.max) < epoch
                }
                if isMetrics { state.metricRows[mode] = rows } else { state.outputRows[mode] = rows }
            }
        }
        return state
    }

    /// Logs first, then (by the caller) checkpoints: a resumed run rewrites the logs up to its autosave's epoch.
    func write(_ state: State) throws {
        for (mode, rows) in state.metricRows {
            try AtomicFile.write(CSVTable(header: metricColumns, rows: rows).serialized(), to: layout.epochMetrics(mode: mode))
        }
        for (mode, rows) in state.outputRows {
            try AtomicFile.write(CSVTable(header: ScalarEpochLog.outputColumns, rows: rows).serialized(), to: layout.modelOutputs(mode: mode))
        }
    }
}

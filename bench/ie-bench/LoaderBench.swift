// ie-bench --loader: does the training loop wait for its data? HelloWorld (as configured, and with
// apply_augmentations) and HelloClassification trained a few epochs on their demo data (written to a temporary
// folder), with IENET_DATA_PREFETCH off (each batch prepared just before its step) and on (prepared on a worker
// during the previous step). Prints per training step the wall time and the time the training thread waited for
// its batch; with prefetch off that wait is the whole preparation, with it on the part not hidden behind the step.
//   ie-bench --loader [--threads 1,2] [--repeats N] [--loader-epochs E] [--configs DIR]
// BENCH figure "training_data_wait": seconds = mean data wait per step (no peer: PyTorch's DataLoader workers are
// processes and its figure is not measured here).
import Foundation
import IECore
import IEConfig
import IEData
import IENet
import IETrain

struct LoaderMeasurement {
    var steps = 0
    var stepSeconds = Double.infinity
    var waitSeconds = Double.infinity
    var trainSeconds = Double.infinity
}

func runLoaderBenchmark(arguments: [String], threadCounts: [Int], repeats: Int) {
    func option(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    let epochs = Int(option("--loader-epochs") ?? "3") ?? 3
    let configs = option("--configs") ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("configs").path
    let folder = NSTemporaryDirectory() + "ie-loader-bench-\(UUID().uuidString.prefix(8))"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    do {
        var settings = Settings.defaults(relativeTo: folder)
        settings.modelConfigsDirs = [configs]
        Log.level = .quiet
        let segmentation = try SyntheticDataset.generate(into: folder + "/HelloWorld")
        let classification = try SyntheticClassificationDataset.generate(into: folder + "/HelloClassification")
        let world = try ModelConfig.load(name: "HelloWorld", settings: settings)
        let dataset = try Dataset.load(path: segmentation)
        let preparation = try SubjectPreparation(dataset: dataset, config: world)
        let ids = dataset.subjects
        let trainCount = Int((Double(ids.count) * 0.6).rounded(.up))
        let train = try ids.prefix(trainCount).map { try preparation.load($0).prepared }
        let validation = try ids.dropFirst(trainCount).prefix(ids.count / 5).map { try preparation.load($0).prepared }
        let hello = try ModelConfig.load(name: "HelloClassification", settings: settings)
        let inputs = try ScalarInputs(csvPath: classification, config: hello)
        let scalarIDs = inputs.dataset.subjects.map(\.id)
        let scalarTrainCount = scalarIDs.count * 6 / 10
        let scalarTrain = try inputs.loadAll(Array(scalarIDs.prefix(scalarTrainCount)), label: "train")
        let scalarValidation = try inputs.loadAll(Array(scalarIDs.dropFirst(scalarTrainCount).prefix(scalarIDs.count / 5)), label: "val")
        print("loader: \(epochs) epochs; HelloWorld \(train.count) train / \(validation.count) val subjects, "
              + "HelloClassification \(scalarTrain.count) / \(scalarValidation.count); best of \(repeats)")
        for threads in threadCounts {
            for (model, augment) in [("HelloWorld", false), ("HelloWorld", true), ("HelloClassification", false)] {
                var best = [Bool: LoaderMeasurement]()
                for run in 0..<repeats {
                    for prefetch in [false, true] {
                        var engine = EngineOptions.fromEnvironment(threads: threads)
                        engine.prefetchBatches = prefetch
                        let outputs = folder + "/out-\(model)-\(augment)-\(threads)-\(prefetch)-\(run)"
                        let started = now()
                        let timing: DataTiming
                        if model == "HelloWorld" {
                            var setup = try TrainingSetup(config: world)
                            setup.numEpochs = epochs
                            setup.applyAugmentations = augment
                            setup.saveStartEpoch = epochs + 1
                            setup.engine = engine
                            let trainer = try Trainer(setup: setup, outputs: outputs, train: train, validation: validation, start: .fresh)
                            try trainer.run(progress: false)
                            timing = trainer.dataTiming
                        } else {
                            var setup = try ScalarTrainingSetup(config: hello, nonImageFeatures: inputs.featureCount)
                            setup.optimisation.numEpochs = epochs
                            setup.saveStartEpoch = epochs + 1
                            setup.engine = engine
                            let trainer = try ScalarTrainer(setup: setup, outputs: outputs, train: scalarTrain,
                                                            validation: scalarValidation, start: .fresh)
                            try trainer.run(progress: false)
                            timing = trainer.dataTiming
                        }
                        let seconds = now() - started
                        var m = best[prefetch] ?? LoaderMeasurement()
                        m.steps = timing.steps
                        m.stepSeconds = min(m.stepSeconds, timing.stepSeconds / Double(max(1, timing.steps)))
                        m.waitSeconds = min(m.waitSeconds, timing.waitSeconds / Double(max(1, timing.steps)))
                        m.trainSeconds = min(m.trainSeconds, seconds)
                        best[prefetch] = m
                        try? FileManager.default.removeItem(atPath: outputs)
                    }
                }
                for prefetch in [false, true] {
                    guard let m = best[prefetch] else { continue }
                    let name = model + (augment ? "+augmentations" : "")
                    print(String(format: "  %@, %d thread(s), prefetch %@: %d steps, %.4f s per step, data wait %.4f s per step "
                                 + "(%.0f%% of the step), %.2f s for %d epochs", name, threads, prefetch ? "on " : "off", m.steps,
                                 m.stepSeconds, m.waitSeconds, 100 * m.waitSeconds / m.stepSeconds, m.trainSeconds, epochs))
                    benchLine(figure: "training_data_wait", threads: threads,
                              ["model": name, "prefetch": prefetch, "seconds": m.waitSeconds, "step_seconds": m.stepSeconds,
                               "train_seconds": m.trainSeconds, "steps": m.steps, "epochs": epochs,
                               "peak_rss_mib": peakRSSMiB()])
                }
            }
        }
    } catch {
        print("loader benchmark failed: \(error)")
    }
}

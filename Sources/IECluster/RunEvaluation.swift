import Foundation
import IECore
import IEConfig
import IEData
import IEEval
import IENet
import IERun
import IETrain

/// Inference and metrics of a run's tested epochs on Val and Test, in-process (what `make evaluate` does with
/// ie-infer and ie-metrics), so that one Slurm job or one Make job finishes a run: epoch_NNN/<Mode>/ gets the
/// SPEC §5 subject folders, metrics.csv (with thumbnails/) and metrics_aggregates.csv.
public enum RunEvaluation {
    /// The modes the config asks for whose split is not empty.
    public static func modes(run: RunDirectory, config: ModelConfig) throws -> [String] {
        var modes: [String] = []
        if config.inferenceOnValSet, try !RunPipeline.subjects(run: run, split: "val").isEmpty { modes.append("Val") }
        if config.inferenceOnTestSet, try !RunPipeline.subjects(run: run, split: "test").isEmpty { modes.append("Test") }
        return modes
    }

    /// Inference (the run's own checkpoint of each epoch, or `models` for an ensemble) and metrics.
    public static func evaluate(run: RunDirectory, config: ModelConfig, settings: Settings, models: [UNet3D]? = nil) throws {
        for epoch in config.epochsToTest {
            for mode in try modes(run: run, config: config) {
                try RunPipeline.infer(run: run, config: config, settings: settings, epoch: epoch, mode: mode, models: models)
                try writeMetrics(run: run, config: config, epoch: epoch, mode: mode)
            }
        }
    }

    /// metrics.csv, thumbnails/ and metrics_aggregates.csv of one epoch_NNN/<Mode> folder (SPEC §7), ground truth
    /// from the run's split CSV.
    public static func writeMetrics(run: RunDirectory, config: ModelConfig, epoch: Int, mode: String) throws {
        let folder = RunPipeline.epochFolder(run: run, epoch: epoch, mode: mode)
        let data = try Dataset.load(path: run.outputs + "/\(mode.lowercased())_dataset.csv")
        let imageChannel = config.imageChannels.first
        let cases = try MetricsEvaluation.cases(
            predictionFolder: folder, subjects: data.subjects, structures: config.groundTruthIds,
            groundTruth: { subject, structure in data.row(subject: subject, channel: structure).map(data.absolutePath) },
            image: { subject in imageChannel.flatMap { data.row(subject: subject, channel: $0) }.map(data.absolutePath) })
        try MetricsEvaluation.run(cases: cases, outputFolder: folder)
        let records = try MetricsFile.read(path: folder + "/metrics.csv").records
        try AtomicFile.write(MetricsAggregates.csv(records), to: folder + "/metrics_aggregates.csv")
        Log.info("\(run.id): \(mode) epoch \(epoch): metrics of \(cases.count) (subject, structure) pairs in \(folder)")
    }
}

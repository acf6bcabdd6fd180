import Foundation
import IEConfig
import IENet
import IEReport
import IERun
import IETrain

/// Inference and metrics of a run's tested epochs on Val and Test, in-process (what `make evaluate` does with
/// ie-infer and ie-metrics), so that one Slurm job or one Make job finishes a run.
public enum RunCompletion {
    /// Inference (the run's own checkpoint of each epoch, or `models` for an ensemble), then the metrics step of
    /// ie-metrics (IEReport.RunEvaluation).
    public static func evaluate(run: RunDirectory, config: ModelConfig, settings: Settings, models: [UNet3D]? = nil,
                                baselines: Bool = true) throws {
        for epoch in config.epochsToTest {
            for mode in try RunEvaluation.modes(run: run, config: config) {
                try RunPipeline.infer(run: run, config: config, settings: settings, epoch: epoch, mode: mode, models: models)
                try RunEvaluation.evaluate(run: run, config: config, settings: settings, epoch: epoch, mode: mode,
                                           baselines: baselines)
            }
        }
    }
}

import Foundation
import IECommand
import IECore
import IEConfig
import IERun

extension Split {
    /// A run is re-split only before it trains: its model is the run's, and once training started (a checkpoint
    /// or a running/completed status) a new split would no longer match its results. Nothing is written when
    /// refused, so a completed run stays completed.
    func existingRunConfig(_ run: RunDirectory, settings: Settings) throws -> ModelConfig {
        let info = try run.readInfo()
        if let model, model != info.model {
            throw IEError.usage("the run is of model \(info.model), expected --model=\(info.model) (or no --model) with --run_dir", file: run.path)
        }
        let checkpoints = (try? FileManager.default.contentsOfDirectory(atPath: run.layout.checkpoints)) ?? []
        if info.status == .running || info.status == .completed || !checkpoints.isEmpty {
            throw IEError.usage("the run has already trained (status \(info.status.rawValue)\(checkpoints.isEmpty ? "" : ", checkpoints saved")), "
                                + "expected a run that has not started training: its split must match its results "
                                + "(split a new run with ie-split --model=\(info.model))", file: run.path)
        }
        return try run.modelConfig(settings: settings, extra: try parameters.flags(), resplit: true)
    }
}

import Foundation
import IECore
import IEConfig
import IENet
import IEPipeline
import IEReport
import IERun
import IETrain

/// The ensemble step of a classification or regression cross-validation (SPEC §13): the folds' classifiers
/// averaged on the parent's Val and Test, and CrossValResults/ with each fold's and the ensemble's results:
/// `<k>/epoch_NNN/<Mode>/{metrics.csv,model_outputs.csv}` and `ENSEMBLE/...`, `MetricsAcrossAllRuns.csv` (one row
/// per split, mode and prediction target with its metrics) and `model_outputs.csv` (every fold's outputs with its
/// cross_validation_split_index, InnerEye's cross-validation file).
enum ScalarCrossValidation {
    static func write(parent: RunDirectory, children: [RunDirectory], config: ModelConfig, settings: Settings,
                      checkpoints: [String], epoch: Int, report: Bool) throws {
        let members = try checkpoints.map { try RunPipeline.readCheckpoint($0).makeClassifier(source: $0, options: .fromEnvironment()) }
        try RunCompletion.evaluate(run: parent, config: config, settings: settings, classifiers: members, baselines: false,
                                   epochs: [epoch], report: false)
        let crossVal = parent.layout.crossValResults
        let sources = children.enumerated().map { (String($0.offset), $0.element.layout) } + [("ENSEMBLE", parent.layout)]
        var header: [String]?
        var metricRows: [[String]] = []
        var outputRows: [[String]] = []
        for (split, layout) in sources {
            let target = RunLayout(outputs: "\(crossVal)/\(split)")
            for mode in ["Val", "Test"] {
                for (source, destination) in [(layout.metrics(epoch: epoch, mode: mode), target.metrics(epoch: epoch, mode: mode)),
                                              (layout.modelOutputs(epoch: epoch, mode: mode), target.modelOutputs(epoch: epoch, mode: mode))] {
                    guard let data = FileManager.default.contents(atPath: source) else { continue }
                    try AtomicFile.write(data, to: destination)
                }
                if let metrics = try? CSVTable.read(path: layout.metrics(epoch: epoch, mode: mode)) {
                    header = header ?? ["split", "mode"] + metrics.header
                    metricRows += metrics.rows.map { [split, mode] + $0 }
                }
                if split != "ENSEMBLE", let outputs = try? CSVTable.read(path: layout.modelOutputs(epoch: epoch, mode: mode)) {
                    outputRows += outputs.rows
                }
            }
        }
        try AtomicFile.write(CSVTable(header: header ?? ["split", "mode"], rows: metricRows).serialized(),
                             to: "\(crossVal)/MetricsAcrossAllRuns.csv")
        try AtomicFile.write(CSVTable(header: ["prediction_target", "epoch", "subject", "model_output", "label",
                                               "cross_validation_split_index", "data_split"], rows: outputRows).serialized(),
                             to: "\(crossVal)/\(RunLayout.modelOutputsFileName)")
        if report { _ = try RunReport.write(run: parent.path, epoch: epoch) }
    }
}

import Foundation

/// Where every file of a run lives (SPEC §9), by path alone: no config, no file contents. Every module that
/// names a file of a run asks this type, so the layout is written down once:
///
///     <runs_dir>/<experiment>/<run_id>/          run (a cross-validation fold: <parent_id>_<k>)
///       run.json  .run.json.lock  .lock  logs/<tool>.log
///       outputs/  dataset.csv  {train,val,test}_dataset.csv  config_overrides.txt  args.txt  buildinformation.json
///         checkpoints/epoch_NNN.ckpt  checkpoints/autosave.ckpt  checkpoints/ensemble_epoch_NNN/
///         Train/epoch_metrics.csv  Val/epoch_metrics.csv
///         epoch_NNN/<Mode>/  <subject>/…  metrics.csv  metrics_aggregates.csv  metrics_boxplot.png
///                            <Mode>_outliers.txt  thumbnails/  dataset_id.txt  ground_truth_ids.txt …
///         CrossValResults/  report.ipynb  report.html
public struct RunLayout: Sendable, Equatable {
    /// The run folder (for a bare outputs folder, the folder above it).
    public let run: String
    /// The run's `outputs/` (or the bare outputs folder itself: a CrossValResults/<k>, a baseline copy).
    public let outputs: String

    public init(run: String) {
        self.run = Self.trimmed(run)
        outputs = self.run + "/outputs"
    }

    public init(outputs: String) {
        self.outputs = Self.trimmed(outputs)
        run = (self.outputs as NSString).deletingLastPathComponent
    }

    /// Without trailing slashes, so that joined paths have single separators.
    static func trimmed(_ path: String) -> String {
        var path = path
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        return path
    }

    /// `PATH/outputs` when it is a folder, else `PATH` itself (already an outputs folder, or a CrossValResults/<k>).
    public static func locate(_ path: String) -> RunLayout {
        var isDirectory: ObjCBool = false
        let candidate = (path as NSString).appendingPathComponent("outputs")
        if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), isDirectory.boolValue {
            return RunLayout(outputs: candidate)
        }
        return RunLayout(outputs: path)
    }

    // MARK: The run folder

    public var runJSON: String { run + "/run.json" }
    /// The lock that serialises run.json read-modify-writes (parallel folds update their parent).
    public var runJSONLock: String { run + "/.run.json.lock" }
    public static let lockFileName = ".lock"
    /// The lock a writing tool holds for the whole of its work on the run (RunLock).
    public var lock: String { run + "/" + Self.lockFileName }
    public var logs: String { run + "/logs" }
    public func log(tool: String) -> String { logs + "/" + tool + ".log" }

    // MARK: outputs/ written by ie-split and ie-train

    public var datasetCSV: String { outputs + "/dataset.csv" }
    /// `train`, `val` or `test`.
    public func splitCSV(_ split: String) -> String { outputs + "/\(split)_dataset.csv" }
    public var configOverrides: String { outputs + "/config_overrides.txt" }
    public var arguments: String { outputs + "/args.txt" }
    public var buildInformation: String { outputs + "/buildinformation.json" }
    public var checkpoints: String { outputs + "/checkpoints" }
    public static func checkpointName(epoch: Int) -> String { epochFolderName(epoch) + ".ckpt" }
    public func checkpoint(epoch: Int) -> String { checkpoints + "/" + Self.checkpointName(epoch: epoch) }
    public var autosave: String { checkpoints + "/autosave.ckpt" }
    /// The members of a registered ensemble adopted as the run's model of `epoch` (`--no-train --model_id=`).
    public func ensembleFolder(epoch: Int) -> String { checkpoints + "/ensemble_" + Self.epochFolderName(epoch) }
    /// `Train` or `Val`: the per-epoch training log.
    public func epochMetrics(mode: String) -> String { outputs + "/\(mode)/epoch_metrics.csv" }
    /// `Train` or `Val`: a scalar model's outputs of every epoch (SPEC §13).
    public func modelOutputs(mode: String) -> String { outputs + "/\(mode)/" + Self.modelOutputsFileName }

    // MARK: outputs/epoch_NNN/<Mode>/ written by the evaluation pipeline

    public static func epochFolderName(_ epoch: Int) -> String { "epoch_" + zeroPadded(epoch, width: 3) }

    /// Python's `f"{n:03d}"` (the sign counts towards the width) for any 64-bit Int: `String(format: "%03d")`
    /// reads only 32 bits on Linux, so subject 4294967297 became folder 001 (subject 1's).
    public static func zeroPadded(_ n: Int, width: Int) -> String {
        let digits = String(n.magnitude)
        let sign = n < 0 ? "-" : ""
        return sign + String(repeating: "0", count: max(0, width - sign.count - digits.count)) + digits
    }

    /// The epoch of an `epoch_NNN` folder name, nil for any other name.
    public static func epoch(folderName name: String) -> Int? {
        guard name.hasPrefix("epoch_") else { return nil }
        return Int(name.dropFirst("epoch_".count))
    }

    public func epochFolder(epoch: Int) -> String { outputs + "/" + Self.epochFolderName(epoch) }
    public func modeFolder(epoch: Int, mode: String) -> String { epochFolder(epoch: epoch) + "/" + mode }

    /// The folder name of a subject: `<subject:03d>` for integer ids, the id itself otherwise.
    public static func subjectFolderName(_ subject: String) -> String {
        if let n = Int(subject) { return zeroPadded(n, width: 3) }
        return subject
    }

    /// File names inside a mode folder (`epoch_NNN/<Mode>/`, or any folder ie-metrics scores).
    public static let metricsFileName = "metrics.csv"
    public static let aggregatesFileName = "metrics_aggregates.csv"
    public static let boxPlotFileName = "metrics_boxplot.png"
    public static func outliersFileName(mode: String) -> String { "\(mode)_outliers.txt" }
    /// What ie-metrics and ie-evaluate write into a mode folder from its segmentations (stale once they change).
    public static func evaluationFileNames(mode: String) -> [String] {
        [metricsFileName, aggregatesFileName, boxPlotFileName, outliersFileName(mode: mode), "thumbnails"]
    }
    /// Scalar models (SPEC §13): the model outputs, and the report's thumbnails of the best and worst subjects.
    public static let modelOutputsFileName = "model_outputs.csv"
    public func modelOutputs(epoch: Int, mode: String) -> String { modeFolder(epoch: epoch, mode: mode) + "/" + Self.modelOutputsFileName }
    public func thumbnails(epoch: Int, mode: String) -> String { modeFolder(epoch: epoch, mode: mode) + "/thumbnails" }

    public func metrics(epoch: Int, mode: String) -> String { modeFolder(epoch: epoch, mode: mode) + "/" + Self.metricsFileName }
    public func aggregates(epoch: Int, mode: String) -> String { modeFolder(epoch: epoch, mode: mode) + "/" + Self.aggregatesFileName }
    public func boxPlot(epoch: Int, mode: String) -> String { modeFolder(epoch: epoch, mode: mode) + "/" + Self.boxPlotFileName }
    public func outliers(epoch: Int, mode: String) -> String {
        modeFolder(epoch: epoch, mode: mode) + "/" + Self.outliersFileName(mode: mode)
    }

    /// Epoch numbers of the `epoch_NNN` folders in outputs/, ascending.
    public func epochFolders() -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: outputs)) ?? []).compactMap(Self.epoch(folderName:)).sorted()
    }

    // MARK: Cross-validation and the report

    public var crossValResults: String { outputs + "/CrossValResults" }
    public var reportNotebook: String { outputs + "/report.ipynb" }
    public var reportHTML: String { outputs + "/report.html" }
}

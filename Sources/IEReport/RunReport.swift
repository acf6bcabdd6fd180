import Foundation
import IECore
import IEEval

/// Builds `outputs/report.ipynb` and `outputs/report.html` of a run (SPEC §11) from files alone.
public enum RunReport {
    public struct Result: Sendable {
        public var notebookPath: String
        public var htmlPath: String
        /// Epoch whose results were reported, nil when the run has no epoch folder.
        public var epoch: Int?
        /// Things the report says are missing.
        public var missing: [String]
    }

    static let modes = ["Test", "Val", "Train"]

    /// `RUN/outputs` when it exists, else `RUN` (see IECore.RunLayout.locate).
    public static func outputsFolder(_ run: String) -> String { RunLayout.locate(run).outputs }

    /// The epoch a report uses: best mean validation Dice among the epoch folders, else the highest.
    public static func bestEpoch(_ outputs: String) -> Int? { EpochChoice.bestEpoch(outputs) }

    /// What ie-report checks before it replaces a report: the folder is a run's (its run.json, or training or
    /// evaluation outputs), and an asked-for epoch was evaluated. Without this a typo wrote a report into any
    /// folder, and `--epoch=100` replaced a good report with an empty one (exit 0).
    public static func requireReportable(outputs: String, epoch: Int?, given: String) throws {
        let layout = RunLayout(outputs: outputs)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outputs)) ?? []
        let epochs = names.compactMap(RunLayout.epoch(folderName:)).sorted()
        let isRun = FileManager.default.fileExists(atPath: layout.runJSON) || !epochs.isEmpty
            || names.contains { ["Train", "Val", "CrossValResults"].contains($0) }
        guard isRun else {
            throw IEError.usage("not a run folder (no run.json, no Train/ or epoch_NNN/ outputs), expected a run made by ie-split", file: given)
        }
        if let epoch, !epochs.contains(epoch) {
            let known = epochs.isEmpty ? "none evaluated yet" : "evaluated: " + epochs.map(String.init).joined(separator: ", ")
            throw IEError.badInput("no \(RunLayout.epochFolderName(epoch)) folder (\(known)), expected --epoch of an evaluated epoch", file: outputs)
        }
    }

    /// Writes both files atomically into the run's outputs folder (or `outputFolder`).
    @discardableResult
    public static func write(run: String, outputFolder: String? = nil, epoch: Int? = nil,
                             now: Date = Date()) throws -> Result {
        let outputs = RunLayout.locate(run).outputs
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: outputs, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw IEError.badInput("not a folder, expected a run folder (with outputs/) or its outputs folder", file: run)
        }
        let folder = outputFolder ?? outputs
        let build = ScalarReport.isScalarRun(outputs: outputs) ? ScalarReport.build : RunReport.build
        let (document, usedEpoch, missing) = try build(outputs, runName(run), epoch, folder)
        let notebookPath = (folder as NSString).appendingPathComponent("report.ipynb")
        let htmlPath = (folder as NSString).appendingPathComponent("report.html")
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        try AtomicFile.write(Data(document.notebookJSON().utf8), to: notebookPath)
        try AtomicFile.write(Data(document.html(generatedAt: formatter.string(from: now)).utf8), to: htmlPath)
        return Result(notebookPath: notebookPath, htmlPath: htmlPath, epoch: usedEpoch, missing: missing)
    }

    static func runName(_ run: String) -> String {
        let trimmed = run.hasSuffix("/") ? String(run.dropLast()) : run
        let last = (trimmed as NSString).lastPathComponent
        if last == "outputs" { return ((trimmed as NSString).deletingLastPathComponent as NSString).lastPathComponent }
        return last
    }

    /// The document, the epoch used and the list of missing inputs. The notebook's python reads the run's files
    /// by paths relative to `notebookFolder` (default: the outputs folder, where `write` puts it).
    public static func build(outputs: String, runName: String, epoch requestedEpoch: Int? = nil,
                             notebookFolder: String? = nil) throws -> (ReportDocument, Int?, [String]) {
        var doc = startDocument(outputs: outputs, runName: runName, notebookFolder: notebookFolder)
        var missing: [String] = []

        // Which epoch.
        let epoch = requestedEpoch ?? EpochChoice.bestEpoch(outputs)
        if let epoch {
            let folder = RunLayout.epochFolderName(epoch)
            if requestedEpoch != nil {
                doc.add(.markdown("Results of \(folder) (requested on the command line)."))
            } else if let dice = EpochChoice.validationDice(outputs), !dice.isEmpty {
                // The same numbering bestEpoch matched: epoch values equal to folder numbers first, else one less.
                let value = (dice.first { $0.epoch == epoch } ?? dice.first { $0.epoch + 1 == epoch })?.dice
                doc.add(.markdown("Results of \(folder): the tested epoch with the best mean validation Dice"
                                  + (value.map { String(format: " (%.4f)", $0) } ?? "") + " in Val/epoch_metrics.csv."))
            } else {
                doc.add(.markdown("Results of \(folder): the highest epoch folder (no Val/epoch_metrics.csv to choose by)."))
            }
        } else {
            doc.add(.markdown("No epoch_NNN folder: this run has no inference results yet."))
            missing.append("epoch_NNN results")
        }

        // Training curves.
        try addTrainingCurves(&doc, outputs: outputs, missing: &missing)

        // Per mode.
        if let epoch {
            let layout = RunLayout(outputs: outputs)
            let epochFolder = layout.epochFolder(epoch: epoch)
            for mode in modes {
                let path = layout.metrics(epoch: epoch, mode: mode)
                guard FileManager.default.fileExists(atPath: path) else {
                    if mode != "Train" {
                        doc.add(.markdown("## \(mode) results\n\nNo \(mode) results: \(RunLayout.epochFolderName(epoch))/\(mode)/metrics.csv is missing."))
                        missing.append("\(mode)/metrics.csv")
                    }
                    continue
                }
                try addModeSection(&doc, mode: mode, metrics: try MetricsFile.read(path: path),
                                   path: "\(RunLayout.epochFolderName(epoch))/\(mode)/metrics.csv")
            }
            try addBaselineComparison(&doc, outputs: outputs, testFolder: "\(epochFolder)/Test")
        }

        try addCrossValidation(&doc, outputs: outputs)
        return (doc, epoch, missing)
    }

    /// The title, the notebook's setup cell (with `extraPython` helpers) and the run table: how every report starts.
    static func startDocument(outputs: String, runName: String, notebookFolder: String?, extraPython: String = "") -> ReportDocument {
        var doc = ReportDocument(title: "ie-toolbox report: \(runName)")
        doc.add(.markdown("# ie-toolbox report: \(runName)"))
        let setup = ReportNotebook.setup(outputs: ReportNotebook.relativePath(from: notebookFolder ?? outputs, to: outputs))
        doc.add(.code(python: setup.python + (extraPython.isEmpty ? "" : "\n\n" + extraPython), output: setup.output))
        addRunInfo(&doc, outputs: outputs)
        return doc
    }

    static func addRunInfo(_ doc: inout ReportDocument, outputs: String) {
        let runJSON = ((outputs as NSString).deletingLastPathComponent as NSString).appendingPathComponent("run.json")
        guard let data = FileManager.default.contents(atPath: runJSON),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return }
        let keys = ["id", "experiment", "model", "status", "parent", "started", "finished", "host", "git_commit"]
        let rows = keys.compactMap { key -> [String]? in (object[key] as? String).map { [key, $0] } }
        if !rows.isEmpty {
            let path = ReportNotebook.relativePath(from: outputs, to: runJSON)
            doc.add(.table(caption: "Run (run.json)", header: ["field", "value"], rows: rows,
                           python: "run_table(\(ReportNotebook.literal(path)), \(ReportNotebook.literal(keys)))"))
        }
    }

    static func readEpochMetrics(_ path: String) -> CSVTable? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        return try? CSVTable.read(path: path)
    }

    static func series(_ table: CSVTable?, _ column: String) -> [(Double, Double)] {
        guard let table, let e = table.columnIndex("epoch"), let c = table.columnIndex(column) else { return [] }
        return table.rows.compactMap { row in
            guard e < row.count, c < row.count, let x = Double(row[e]), let y = Double(row[c]), y.isFinite else { return nil }
            return (x, y)
        }
    }

    static func addTrainingCurves(_ doc: inout ReportDocument, outputs: String, missing: inout [String]) throws {
        doc.add(.markdown("## Training curves"))
        let layout = RunLayout(outputs: outputs)
        let train = readEpochMetrics(layout.epochMetrics(mode: "Train"))
        let val = readEpochMetrics(layout.epochMetrics(mode: "Val"))
        if train == nil { missing.append("Train/epoch_metrics.csv") }
        if val == nil { missing.append("Val/epoch_metrics.csv") }
        if train == nil && val == nil {
            doc.add(.markdown("No Train/epoch_metrics.csv or Val/epoch_metrics.csv: no training curves."))
            return
        }
        if train == nil { doc.add(.markdown("Train/epoch_metrics.csv is missing: validation curves only.")) }
        if val == nil { doc.add(.markdown("Val/epoch_metrics.csv is missing: training curves only.")) }
        for (column, title, label) in [("loss", "Loss per epoch", "loss"),
                                       ("Dice/AverageAcrossStructures", "Mean Dice across structures per epoch", "Dice"),
                                       ("learning_rate", "Learning rate per epoch", "learning rate")] {
            let t = series(train, column), v = series(val, column)
            if t.isEmpty && v.isEmpty { continue }
            doc.add(.image(caption: title, png: try Plots.trainingCurve(train: t, val: v, title: title, yLabel: label),
                           python: "training_curve(\(ReportNotebook.literal(column)), \(ReportNotebook.literal(title)), "
                               + "\(ReportNotebook.literal(label)))"))
        }
    }

    static func fmt(_ v: Double) -> String {
        if v.isNaN { return "" }
        if v.isInfinite { return v > 0 ? "inf" : "-inf" }
        return String(format: "%.3f", v)
    }

    static let metricColumns: [(String, KeyPath<MetricsRecord, Double>, Bool)] = [
        ("Dice", \.dice, true), ("HausdorffDistance_mm", \.hausdorffDistance, false),
        ("MeanDistance_mm", \.meanDistance, false)]

    /// `path`: the metrics.csv relative to the outputs folder.
    static func addModeSection(_ doc: inout ReportDocument, mode: String, metrics: MetricsFile, path: String) throws {
        let file = ReportNotebook.literal(path)
        doc.add(.markdown("## \(mode) results\n\n\(metrics.records.count) rows, "
                          + "\(Set(metrics.records.map { $0.patient }).count) subjects, "
                          + "\(Set(metrics.records.map { $0.structure }).count) structures."))
        for (name, keyPath, higherIsBetter) in metricColumns {
            if name == "HausdorffDistance_mm" && !metrics.hasHausdorffDistance { continue }
            if name == "MeanDistance_mm" && !metrics.hasMeanDistance { continue }
            // pandas' describe() per structure (values in file order, NaN skipped as pandas does), sorted by mean.
            var byStructure: [String: [Double]] = [:]
            for r in metrics.records { byStructure[r.structure, default: []].append(r[keyPath: keyPath]) }
            let describe = byStructure.map { structure, values -> (String, [Double]) in
                let v = values.filter { !$0.isNaN }
                let stats: [Double] = [Double(v.count), Descriptive.skipNaNMean(values),
                                       Descriptive.skipNaNSampleStandardDeviation(values), v.min() ?? .nan,
                                       Descriptive.quantile(v, 0.25), Descriptive.quantile(v, 0.5),
                                       Descriptive.quantile(v, 0.75), v.max() ?? .nan]
                return (structure, stats)
            }.sorted { a, b in
                let (x, y) = (a.1[1], b.1[1])
                if x != y && !(x.isNaN && y.isNaN) { return x.isNaN ? false : (y.isNaN ? true : x < y) }
                return a.0 < b.0
            }
            doc.add(.table(caption: "\(mode): \(name) per structure (sorted by mean)",
                           header: ["Structure", "count", "mean", "std", "min", "25%", "50%", "75%", "max"],
                           rows: describe.map { [$0.0, String(Int($0.1[0]))] + $0.1.dropFirst().map(fmt) },
                           python: "describe_table(\(file), \(ReportNotebook.literal(name)))"))
            // 20 worst subjects, with outliers flagged as in SPEC §8 (3 sd from the mean over all rows).
            let all = metrics.records.map { $0[keyPath: keyPath] }
            let values = all.filter { !$0.isNaN }
            let mean = Descriptive.skipNaNMean(all), sd = Descriptive.skipNaNSampleStandardDeviation(all)
            let worst = metrics.records.filter { !$0[keyPath: keyPath].isNaN }.sorted { a, b in
                let (x, y) = (a[keyPath: keyPath], b[keyPath: keyPath])
                if x != y { return higherIsBetter ? x < y : x > y }
                return (a.patient, a.structure) < (b.patient, b.structure)
            }.prefix(20)
            doc.add(.table(caption: "\(mode): 20 worst by \(name)",
                           header: ["Patient", "Structure", name, "is_outlier"],
                           rows: worst.map { r in
                               let v = r[keyPath: keyPath]
                               let outlier = higherIsBetter ? v < mean - 3 * sd : v > mean + 3 * sd
                               return [r.patient, r.structure, fmt(v), outlier ? "True" : "False"]
                           },
                           python: "worst_table(\(file), \(ReportNotebook.literal(name)), \(higherIsBetter ? "True" : "False"))"))
            if name != "MeanDistance_mm" {
                let structures = Plots.structureGroups(Array(byStructure.keys))
                for (g, group) in structures.enumerated() {
                    let title = "\(mode): \(name) per structure"
                    let png = try Plots.boxPlot(
                        categories: group, series: [name],
                        values: { structure, _ in metrics.records.filter { $0.structure == structure }.map { $0[keyPath: keyPath] } },
                        title: title, yLabel: name,
                        yRange: name == "Dice" ? (0, 1.005 * (values.max().map { $0 > 1.001 ? 100 : 1 } ?? 1)) : nil)
                    doc.add(.image(caption: "\(mode): \(name) box plot" + (structures.count > 1 ? " \(g + 1)" : ""), png: png,
                                   python: "structure_box_plot(\(file), \(ReportNotebook.literal(name)), "
                                       + "\(ReportNotebook.literal(group)), \(ReportNotebook.literal(title)))"))
                }
            }
        }
    }

    static func addBaselineComparison(_ doc: inout ReportDocument, outputs: String, testFolder: String) throws {
        let wilcoxon = "\(testFolder)/\(BaselineComparison.wilcoxonFileName)"
        guard let text = try? String(contentsOfFile: wilcoxon, encoding: .utf8) else { return }
        func python(_ call: String, _ path: String) -> String {
            "\(call)(\(ReportNotebook.literal(ReportNotebook.relativePath(from: outputs, to: path))))"
        }
        doc.add(.markdown("## Comparison with baselines"))
        doc.add(.preformatted(caption: BaselineComparison.wilcoxonFileName, text: text, python: python("print_file", wilcoxon)))
        let scatterFolder = "\(testFolder)/scatterplots"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: scatterFolder)) ?? []).filter { $0.hasSuffix(".png") }.sorted()
        for name in names {
            if let png = FileManager.default.contents(atPath: "\(scatterFolder)/\(name)") {
                doc.add(.image(caption: "scatterplots/\(name)", png: png, python: python("show_png", "\(scatterFolder)/\(name)")))
            }
        }
    }

    /// Cross-validation parent: per-fold and ensemble comparison from CrossValResults/.
    static func addCrossValidation(_ doc: inout ReportDocument, outputs: String) throws {
        let crossVal = RunLayout(outputs: outputs).crossValResults
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: crossVal, isDirectory: &isDirectory), isDirectory.boolValue else { return }
        doc.add(.markdown("## Cross-validation: folds and ensemble"))
        let across = "\(crossVal)/MetricsAcrossAllRuns.csv"
        var records: [MetricsRecord] = []
        // The files the notebook's python reads: (split, mode, metrics.csv) per fold, or MetricsAcrossAllRuns.csv.
        func relative(_ path: String) -> String { ReportNotebook.literal(ReportNotebook.relativePath(from: outputs, to: path)) }
        var sources: [String] = []
        if FileManager.default.fileExists(atPath: across) {
            records = try MetricsFile.read(path: across).records
            sources = ["(None, None, \(relative(across)))"]
        } else {
            let splits = ((try? FileManager.default.contentsOfDirectory(atPath: crossVal)) ?? []).filter { name in
                var dir: ObjCBool = false
                return FileManager.default.fileExists(atPath: "\(crossVal)/\(name)", isDirectory: &dir) && dir.boolValue
                    && (Int(name) != nil || name == "ENSEMBLE")
            }.sorted { (Int($0) ?? Int.max, $0) < (Int($1) ?? Int.max, $1) }
            if let inputs = try? MetricsAcrossRuns.inputs(runs: splits.map { ($0, "\(crossVal)/\($0)") },
                                                          datasetOverride: FileManager.default.fileExists(atPath: "\(outputs)/dataset.csv") ? "\(outputs)/dataset.csv" : nil) {
                for input in inputs {
                    records += try MetricsAcrossRuns.rows(input).map { $0.record }
                    sources.append("(\(ReportNotebook.literal(input.split)), \(ReportNotebook.literal(input.mode)), "
                                   + "\(relative(input.metrics.source)))")
                }
            }
        }
        if records.isEmpty {
            doc.add(.markdown("CrossValResults/ holds no MetricsAcrossAllRuns.csv and no fold metrics."))
            return
        }
        let splits = Array(Set(records.compactMap { $0.split })).sorted { (Int($0) ?? Int.max, $0) < (Int($1) ?? Int.max, $1) }
        let sourceList = "[" + sources.joined(separator: ", ") + "]"
        for mode in ["Test", "Val"] {
            let rows = records.filter { $0.mode == mode }
            if rows.isEmpty { continue }
            let structures = Array(Set(rows.map { $0.structure })).sorted()
            let table = structures.map { s in
                [s] + splits.map { split in fmt(Descriptive.mean(rows.filter { $0.split == split && $0.structure == s && !$0.dice.isNaN }.map { $0.dice })) }
            }
            doc.add(.table(caption: "\(mode): mean Dice (%) per fold and ensemble", header: ["Structure"] + splits, rows: table,
                           python: "fold_table(\(sourceList), \(ReportNotebook.literal(mode)))"))
        }
        for plot in try Plots.crossValidationBoxPlots(records) {
            let python = "fold_box_plot(\(sourceList), \(ReportNotebook.literal(plot.mode)), \(ReportNotebook.literal(plot.metric)), "
                + "\(ReportNotebook.literal(plot.structures)), \(ReportNotebook.literal(plot.title)), \(ReportNotebook.literal(plot.yLabel)))"
            doc.add(.image(caption: plot.name, png: plot.png, python: python))
        }
        for file in ["CrossValidationWilcoxonSignedRankTestResults.txt", "CrossValidationMannWhitneyTestResults.txt",
                     "Test_outliers.txt", "Val_outliers.txt"] {
            if let text = try? String(contentsOfFile: "\(crossVal)/\(file)", encoding: .utf8) {
                doc.add(.preformatted(caption: file, text: text, python: "print_file(\(relative("\(crossVal)/\(file)")))"))
            }
        }
    }
}

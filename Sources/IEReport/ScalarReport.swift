import Foundation
import IECore
import IEEval
import IEImage

/// The report of a classification or regression run (SPEC §13), InnerEye's classification report: the metrics on
/// Val and Test (the threshold chosen on Val and applied to both), the ROC and precision-recall curves, and the
/// most confident right and wrong Test subjects with their images. The notebook's cells recompute the tables and
/// curves with scikit-learn from the model_outputs.csv files and show the thumbnails from their PNG files.
public enum ScalarReport {
    /// A scalar run writes model_outputs.csv where a segmentation run writes posteriors.
    public static func isScalarRun(outputs: String) -> Bool {
        let layout = RunLayout(outputs: outputs)
        return ([layout.modelOutputs(mode: "Val"), layout.modelOutputs(mode: "Train")]
                + layout.epochFolders().map { layout.modelOutputs(epoch: $0, mode: "Test") })
            .contains { FileManager.default.fileExists(atPath: $0) }
    }

    /// The rows of one model_outputs.csv: per prediction target, subjects with their label and output.
    struct Outputs {
        var targets: [String] = []
        var rows: [String: [(subject: String, label: Double, output: Double)]] = [:]

        init(path: String) throws {
            let table = try CSVTable.read(path: path)
            for i in table.rows.indices {
                guard let target = table.value("prediction_target", row: i), let subject = table.value("subject", row: i),
                      let label = table.value("label", row: i).flatMap(Double.init),
                      let output = table.value("model_output", row: i).flatMap(Double.init) else {
                    throw IEError.badInput("row without prediction_target, subject, numeric label and model_output", file: path,
                                           line: table.lineNumbers[i])
                }
                if rows[target] == nil { targets.append(target) }
                rows[target, default: []].append((subject, label, output))
            }
        }

        func set(_ target: String) -> (labels: [Bool], scores: [Double]) {
            let r = rows[target] ?? []
            return (r.map { $0.label > 0.5 }, r.map(\.output))
        }
    }

    public static func build(outputs: String, runName: String, epoch requestedEpoch: Int? = nil,
                             notebookFolder: String? = nil) throws -> (ReportDocument, Int?, [String]) {
        var doc = RunReport.startDocument(outputs: outputs, runName: runName, notebookFolder: notebookFolder, extraPython: pythonHelpers)
        var missing: [String] = []
        try RunReport.addTrainingCurves(&doc, outputs: outputs, missing: &missing)
        let layout = RunLayout(outputs: outputs)
        let train = RunReport.readEpochMetrics(layout.epochMetrics(mode: "Train"))
        let val = RunReport.readEpochMetrics(layout.epochMetrics(mode: "Val"))
        for column in ["AreaUnderRocCurve", "MeanAbsoluteError"] {
            let t = RunReport.series(train, column), v = RunReport.series(val, column)
            if t.isEmpty && v.isEmpty { continue }
            let title = "\(column) per epoch"
            doc.add(.image(caption: title, png: try Plots.trainingCurve(train: t, val: v, title: title, yLabel: column),
                           python: "training_curve(\(ReportNotebook.literal(column)), \(ReportNotebook.literal(title)), \(ReportNotebook.literal(column)))"))
        }
        let epoch = requestedEpoch ?? layout.epochFolders().last
        guard let epoch else {
            doc.add(.markdown("No epoch_NNN folder: this run has no Val/Test results yet (run ie-evaluate)."))
            return (doc, nil, missing + ["epoch_NNN results"])
        }
        let folder = RunLayout.epochFolderName(epoch)
        // Relative to the outputs folder: the notebook's python reads them through OUTPUTS.
        let valPath = ReportNotebook.relativePath(from: outputs, to: layout.modelOutputs(epoch: epoch, mode: "Val"))
        let testPath = ReportNotebook.relativePath(from: outputs, to: layout.modelOutputs(epoch: epoch, mode: "Test"))
        guard FileManager.default.fileExists(atPath: "\(outputs)/\(valPath)"), FileManager.default.fileExists(atPath: "\(outputs)/\(testPath)") else {
            doc.add(.markdown("## Results of \(folder)\n\n\(valPath) or \(testPath) is missing."))
            return (doc, epoch, missing + [valPath, testPath].filter { !FileManager.default.fileExists(atPath: "\(outputs)/\($0)") })
        }
        let valOutputs = try Outputs(path: "\(outputs)/\(valPath)"), testOutputs = try Outputs(path: "\(outputs)/\(testPath)")
        let regression = isRegression(outputs: outputs, epoch: epoch)
        doc.add(.markdown("## Results of \(folder)\n\nModel outputs of \(valPath) and \(testPath)."
                          + (regression ? "" : " The optimal threshold (maximising TPR - FPR) is chosen on Val and applied to both sets.")))
        for target in testOutputs.targets {
            let v = valOutputs.set(target), t = testOutputs.set(target)
            let args = "\(ReportNotebook.literal(valPath)), \(ReportNotebook.literal(testPath)), \(ReportNotebook.literal(target))"
            doc.add(.markdown("### Prediction target \(target)"))
            if regression {
                let rows = [("Mean absolute error", \ScalarMetrics.Regression.meanAbsoluteError), ("Mean squared error", \.meanSquaredError),
                            ("R2 score", \.r2), ("Explained variance", \.explainedVariance)]
                let mv = ScalarMetrics.regression(labels: (valOutputs.rows[target] ?? []).map(\.label), outputs: v.scores)
                let mt = ScalarMetrics.regression(labels: (testOutputs.rows[target] ?? []).map(\.label), outputs: t.scores)
                doc.add(.table(caption: "Regression metrics", header: ["Metric", "Val", "Test"],
                               rows: rows.map { [$0.0, RunReport.fmt(mv[keyPath: $0.1]), RunReport.fmt(mt[keyPath: $0.1])] },
                               python: "regression_table(\(args))"))
                continue
            }
            let onVal = ScalarReportMetrics(thresholdSet: v, evaluated: v), onTest = ScalarReportMetrics(thresholdSet: v, evaluated: t)
            doc.add(.table(caption: "Classification metrics", header: ["Metric", "Val", "Test"],
                           rows: zip(onVal.rows, onTest.rows).map { [$0.name, RunReport.fmt($0.value), RunReport.fmt($1.value)] },
                           python: "classification_table(\(args))"))
            let curves = try Plots.rocAndPRCurves([Plots.ScoredSet(name: "Val", labels: v.labels, scores: v.scores),
                                                   Plots.ScoredSet(name: "Test", labels: t.labels, scores: t.scores)],
                                                  title: "\(target): \(folder)")
            // Also a file beside the Test outputs: roc_pr_<target>.png.
            try AtomicFile.write(curves, to: try SafeName.path(in: layout.modeFolder(epoch: epoch, mode: "Test"), "roc_pr_\(target).png"))
            doc.add(.image(caption: "ROC and precision-recall curves", png: curves, python: "roc_pr_curves(\(args))"))
            try addBestAndWorst(&doc, outputs: outputs, epoch: epoch, target: target, val: v, test: testOutputs, args: args)
        }
        return (doc, epoch, missing)
    }

    /// A regression run's metrics.csv has MeanAbsoluteError where a classifier's has AreaUnderRocCurve.
    static func isRegression(outputs: String, epoch: Int) -> Bool {
        let header = (try? CSVTable.read(path: RunLayout(outputs: outputs).metrics(epoch: epoch, mode: "Test")).header) ?? []
        return header.contains("MeanAbsoluteError")
    }

    static let bestAndWorstCount = 3

    /// The most confident true positives and negatives and the most confident false positives and negatives of
    /// Test, with their first image channel (InnerEye's print_k_best_and_worst_performing, images shown).
    static func addBestAndWorst(_ doc: inout ReportDocument, outputs: String, epoch: Int, target: String,
                                val: (labels: [Bool], scores: [Double]), test: Outputs, args: String) throws {
        guard let picked = ScalarReportMetrics.bestAndWorst(thresholdSet: val, evaluated: test.set(target), k: bestAndWorstCount) else { return }
        let rows = test.rows[target] ?? []
        let files = imageFiles(outputs: outputs)
        var tableRows: [[String]] = []
        var thumbnails: [(caption: String, subject: String, file: String?)] = []
        for (name, indices) in [("Best true positives", picked.truePositives), ("Best true negatives", picked.trueNegatives),
                                ("Worst false positives", picked.falsePositives), ("Worst false negatives", picked.falseNegatives)] {
            for i in indices {
                tableRows.append([name, rows[i].subject, RunReport.fmt(rows[i].output), RunReport.fmt(rows[i].label)])
                thumbnails.append(("\(name): \(rows[i].subject)", rows[i].subject, files[rows[i].subject]))
            }
        }
        doc.add(.table(caption: "Best and worst Test subjects", header: ["Category", "Subject", "model_output", "label"],
                       rows: tableRows, python: "best_and_worst_table(\(args), \(bestAndWorstCount))"))
        let thumbnailFolder = RunLayout(outputs: outputs).thumbnails(epoch: epoch, mode: "Test")
        for (caption, subject, file) in thumbnails {
            guard let file, let png = try? thumbnail(file) else { continue }
            let path = try SafeName.path(in: thumbnailFolder, subject + ".png")
            try AtomicFile.write(png, to: path)
            let name = ReportNotebook.relativePath(from: outputs, to: path)
            doc.add(.image(caption: caption, png: png, python: "display(Image(filename=str(OUTPUTS / \(ReportNotebook.literal(name)))))"))
        }
    }

    /// Each subject's first image file, from the run's copy of its dataset (outputs/dataset.csv, absolute paths).
    static func imageFiles(outputs: String) -> [String: String] {
        guard let table = try? CSVTable.read(path: RunLayout(outputs: outputs).datasetCSV) else { return [:] }
        var files: [String: String] = [:]
        for i in table.rows.indices {
            guard let subject = table.value("subject", row: i), files[subject] == nil,
                  let file = table.value("filePath", row: i), !file.isEmpty else { continue }
            files[subject] = file
        }
        return files
    }

    /// A grey PNG of an input image (its middle slice for a volume), scaled to 0..255 and enlarged to at least
    /// 128 pixels across by pixel repetition.
    static func thumbnail(_ file: String) throws -> Data {
        var width = 0, height = 0
        var values: [Double] = []
        if file.lowercased().hasSuffix(".png") {
            let png = try PNG.read(path: file)
            (width, height) = (png.width, png.height)
            values = (0..<(width * height)).map { Double(png.samples[$0 * png.channels]) }
        } else {
            let volume = try NIfTI.read(file)
            (width, height) = (volume.shape.x, volume.shape.y)
            let z = volume.shape.z / 2
            values = (0..<(width * height)).map { Double(volume.data[z * width * height + $0]) }
        }
        let low = values.min() ?? 0, high = values.max() ?? 1
        let scale = high > low ? 255 / (high - low) : 0
        let factor = max(1, 128 / max(width, 1))
        var pixels = [UInt8](repeating: 0, count: width * factor * height * factor)
        for y in 0..<(height * factor) {
            for x in 0..<(width * factor) {
                pixels[y * width * factor + x] = UInt8(max(0, min(255, ((values[(y / factor) * width + x / factor] - low) * scale).rounded())))
            }
        }
        return try PNG.encode(pixels: pixels, width: width * factor, height: height * factor, format: .grey)
    }

    /// The notebook's helpers for scalar runs: the tables and curves recomputed with scikit-learn.
    static let pythonHelpers = """
        from sklearn.metrics import roc_curve, precision_recall_curve, roc_auc_score, auc, mean_absolute_error, mean_squared_error, r2_score, explained_variance_score

        def _outputs(path, target):
            d = pd.read_csv(OUTPUTS / path, dtype={'subject': str, 'prediction_target': str})
            d = d[d.prediction_target == target]
            return d['label'].values > 0.5, d['model_output'].values, d

        def _threshold(y, s):
            fpr, tpr, thr = roc_curve(y, s)
            return float(thr[int(np.argmax(tpr - fpr))])

        def _classification_metrics(y, s, t):
            one_class = len(set(y)) < 2
            p, r, _ = precision_recall_curve(y, s) if not one_class else (None, None, None)
            acc = lambda c: float(np.mean((s.astype(np.float32) > np.float32(c)) == y))
            recall = lambda positive: float(np.mean((s[y == positive] >= t) == positive)) if (y == positive).any() else math.nan
            return [math.nan if one_class else auc(r, p), math.nan if one_class else roc_auc_score(y, s), t, acc(t), acc(0.5),
                    recall(True), recall(False)]

        def classification_table(val_path, test_path, target):
            yv, sv, _ = _outputs(val_path, target); yt, st, _ = _outputs(test_path, target)
            t = _threshold(yv, sv)
            names = ['Area under PR Curve', 'Area under ROC Curve', 'Optimal threshold', 'Accuracy at optimal threshold',
                     'Accuracy at threshold 0.5', 'Sensitivity at optimal threshold', 'Specificity at optimal threshold']
            show_table(['Metric', 'Val', 'Test'], [[n, fmt(a), fmt(b)] for n, a, b in
                       zip(names, _classification_metrics(yv, sv, t), _classification_metrics(yt, st, t))])

        def regression_table(val_path, test_path, target):
            rows = []
            for name, f in [('Mean absolute error', mean_absolute_error), ('Mean squared error', mean_squared_error),
                            ('R2 score', r2_score), ('Explained variance', explained_variance_score)]:
                values = []
                for path in [val_path, test_path]:
                    d = pd.read_csv(OUTPUTS / path, dtype={'prediction_target': str}); d = d[d.prediction_target == target]
                    values.append(fmt(f(d['label'].values, d['model_output'].values)))
                rows.append([name] + values)
            show_table(['Metric', 'Val', 'Test'], rows)

        def roc_pr_curves(val_path, test_path, target):
            fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
            for name, path in [('Val', val_path), ('Test', test_path)]:
                y, s, _ = _outputs(path, target)
                if len(set(y)) < 2:
                    continue
                fpr, tpr, _ = roc_curve(y, s); p, r, _ = precision_recall_curve(y, s)
                axes[0].plot(fpr, tpr, label=f'{name} (AUC {roc_auc_score(y, s):.3f})')
                axes[1].plot(r, p, label=f'{name} (AUC {auc(r, p):.3f})')
            axes[0].plot([0, 1], [0, 1], '--', color='grey')
            for ax, title, xl, yl in [(axes[0], 'ROC curve', 'false positive rate', 'true positive rate'),
                                      (axes[1], 'Precision-recall curve', 'recall', 'precision')]:
                ax.set_title(title); ax.set_xlabel(xl); ax.set_ylabel(yl); ax.legend(); ax.grid(True)
            plt.show()

        def best_and_worst_table(val_path, test_path, target, k):
            yv, sv, _ = _outputs(val_path, target); _, _, d = _outputs(test_path, target)
            t = _threshold(yv, sv)
            d = d.assign(predicted=d['model_output'] >= t, positive=d['label'] > 0.5)
            rows = []
            for name, predicted, positive, descending in [('Best true positives', True, True, True), ('Best true negatives', False, False, False),
                                                          ('Worst false positives', True, False, True), ('Worst false negatives', False, True, False)]:
                part = d[(d.predicted == predicted) & (d.positive == positive)].sort_values('model_output', ascending=not descending, kind='stable')
                rows += [[name, r.subject, fmt(r.model_output), fmt(r.label)] for r in part.head(k).itertuples()]
            show_table(['Category', 'Subject', 'model_output', 'label'], rows)
        """
}

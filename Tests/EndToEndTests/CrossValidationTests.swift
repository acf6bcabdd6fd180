import Foundation
import XCTest

/// A 2-fold HelloWorld cross-validation run by `make -j2 crossval` (the folds as parallel Make jobs, then the
/// ensemble step), checked against independent references: scikit-learn's KFold for the folds, numpy for the
/// ensemble's averaged posteriors, the fold metrics files for MetricsAcrossAllRuns.csv.
final class CrossValidationTests: XCTestCase {
    static let folds = 2

    func testMakeCrossValidationEndToEnd() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        try "TOOLBOX ?= \(HPCTest.checkout)\ninclude $(TOOLBOX)/ie.mk\n".write(toFile: project + "/Makefile", atomically: true, encoding: .utf8)
        // The fold count in ARGS wins over SPLITS (later on ie-split's command line), and the folds trained are the
        // ones made (make trained SPLITS folds, and the ensemble step then found one missing).
        let args = (HPCTest.tinyModelArguments + ["--experiment=cv", "--number_of_cross_validation_splits=\(Self.folds)"]).joined(separator: " ")
        let make = try HPCTest.run("make", ["-j2", "crossval", "MODEL=HelloWorld", "SPLITS=\(Self.folds + 1)", "IE_BIN=\(bin)",
                                            "ARGS=\(args)"], in: project)
        XCTAssertEqual(make.status, 0, "make crossval failed:\n\(make.stderr.suffix(3000))")
        guard let doneLine = make.stdout.split(separator: "\n").last(where: { $0.hasPrefix("done: ") }) else {
            return XCTFail("make crossval printed no 'done: RUN' line:\n\(make.stdout.suffix(2000))")
        }
        let parent = String(doneLine.dropFirst("done: ".count))
        let children = (0..<Self.folds).map { "\(parent)_\($0)" }

        try checkFoldsMatchScikitLearnKFold(parent: parent, children: children)
        try checkRunRecords(parent: parent, children: children)
        try checkCrossValResultsFiles(parent: parent)
        try checkFoldMetricsInMetricsAcrossAllRuns(parent: parent, children: children)
        try checkEnsembleAveragesFoldPosteriors(parent: parent, children: children)
        try checkRegistry(project: project, children: children)

        let status = try HPCTest.run(bin + "/ie-status", [parent])
        XCTAssertEqual(status.status, 0, status.stderr)
        for child in children {
            let id = URL(fileURLWithPath: child).lastPathComponent
            let line = status.stdout.split(separator: "\n").first { $0.hasPrefix(id + " ") }
            XCTAssertNotNil(line, "status lists \(id):\n\(status.stdout)")
            XCTAssertTrue(line?.contains("completed") ?? false, String(line ?? ""))
            XCTAssertEqual(line.map { $0.split(separator: " ", omittingEmptySubsequences: true)[4] }, "2", "last epoch of \(id)")
        }
    }

    /// Fold k's val subjects = the k-th KFold(2, shuffle=True, random_state=0) chunk of train+val (unique subjects of
    /// the parent's train then val CSV in first-appearance order), train = the rest, test unchanged.
    func checkFoldsMatchScikitLearnKFold(parent: String, children: [String]) throws {
        let train = try HPCTest.subjects(csv: parent + "/outputs/train_dataset.csv")
        let val = try HPCTest.subjects(csv: parent + "/outputs/val_dataset.csv")
        let test = try HPCTest.subjects(csv: parent + "/outputs/test_dataset.csv")
        let pool = train + val.filter { !train.contains($0) }
        XCTAssertEqual(pool.count, 6, "8 subjects, proportions 0.6/0.2/0.2: 6 in train+val")
        let script = """
        from sklearn.model_selection import KFold
        keys = \(pool)
        for _, val in KFold(n_splits=\(Self.folds), shuffle=True, random_state=0).split(keys):
            print(','.join(sorted(keys[i] for i in val)))
        """
        let expected = try HPCTest.python(script).split(separator: "\n").map { $0.split(separator: ",").map(String.init) }
        XCTAssertEqual(expected.count, Self.folds)
        var union: [String] = []
        for (k, child) in children.enumerated() {
            let childVal = try HPCTest.subjects(csv: child + "/outputs/val_dataset.csv").sorted()
            let childTrain = try HPCTest.subjects(csv: child + "/outputs/train_dataset.csv").sorted()
            let childTest = try HPCTest.subjects(csv: child + "/outputs/test_dataset.csv").sorted()
            XCTAssertEqual(childVal, expected[k], "fold \(k) validation subjects")
            XCTAssertEqual(childTrain, pool.filter { !expected[k].contains($0) }.sorted(), "fold \(k) training subjects")
            XCTAssertEqual(childTest, test.sorted(), "fold \(k) test set unchanged")
            union += childVal
        }
        XCTAssertEqual(union.sorted(), pool.sorted(), "the folds' validation sets partition train+val")
    }

    /// run.json links parent and children; each child trained with seed random_seed + k (checkpoint metadata).
    func checkRunRecords(parent: String, children: [String]) throws {
        let info = try HPCTest.json(parent + "/run.json")
        XCTAssertEqual((info["children"] as? [String])?.sorted(), children.map { URL(fileURLWithPath: $0).lastPathComponent })
        XCTAssertEqual(info["status"] as? String, "completed")
        for (k, child) in children.enumerated() {
            let childInfo = try HPCTest.json(child + "/run.json")
            XCTAssertEqual(childInfo["parent"] as? String, URL(fileURLWithPath: parent).lastPathComponent)
            XCTAssertEqual(childInfo["status"] as? String, "completed")
            let (header, _) = try HPCTest.checkpointTensors(child + "/outputs/checkpoints/epoch_002.ckpt")
            let metadata = header["__metadata__"] as? [String: String]
            XCTAssertEqual(metadata?["random_seed"], String(42 + k), "fold \(k) effective seed")
            let args = try String(contentsOfFile: child + "/outputs/args.txt", encoding: .utf8)
            XCTAssertTrue(args.split(separator: "\n").contains {
                $0.contains("cross_validation_split_index") && $0.hasSuffix(": \(k)")
            }, "args.txt of fold \(k) records its index")
        }
    }

    func checkCrossValResultsFiles(parent: String) throws {
        let crossVal = parent + "/outputs/CrossValResults"
        var expected = ["MetricsAcrossAllRuns.csv", "Dice_Test_Splits.png", "Dice_Val_Splits.png",
                        "HausdorffDistance_mm_Test_splits.png", "HausdorffDistance_mm_Val_splits.png",
                        "Test_outliers.txt", "Val_outliers.txt", "CrossValidationWilcoxonSignedRankTestResults.txt",
                        "CrossValidationMannWhitneyTestResults.txt",
                        "scatterplots/0_vs_1.png", "scatterplots/0_vs_ENSEMBLE.png", "scatterplots/1_vs_ENSEMBLE.png"]
        for split in ["0", "1", "ENSEMBLE"] {
            for mode in ["Val", "Test"] { expected.append("\(split)/epoch_002/\(mode)/metrics.csv") }
        }
        for file in expected {
            let path = crossVal + "/" + file
            let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber
            XCTAssertGreaterThan(size?.intValue ?? 0, 0, "CrossValResults/\(file) present and not empty")
        }
        for mode in ["Val", "Test"] {
            let png = try Data(contentsOf: URL(fileURLWithPath: crossVal + "/Dice_\(mode)_Splits.png"))
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "Dice_\(mode)_Splits.png is a PNG")
        }
        // The parent's own ensemble results and report.
        for file in ["epoch_002/Val/metrics.csv", "epoch_002/Test/metrics.csv", "epoch_002/Test/metrics_aggregates.csv",
                     "report.html", "report.ipynb"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: parent + "/outputs/" + file), "parent outputs/\(file)")
        }
    }

    /// Every row of each fold's (and the ensemble's) metrics.csv is in MetricsAcrossAllRuns.csv with its split and mode,
    /// Dice multiplied by 100 (InnerEye), and nothing else is.
    func checkFoldMetricsInMetricsAcrossAllRuns(parent: String, children: [String]) throws {
        let across = try csvRows(parent + "/outputs/CrossValResults/MetricsAcrossAllRuns.csv")
        var expectedCount = 0
        for (split, outputs) in children.enumerated().map({ (String($0.offset), $0.element + "/outputs") }) + [("ENSEMBLE", parent + "/outputs")] {
            for mode in ["Val", "Test"] {
                let rows = try csvRows(outputs + "/epoch_002/\(mode)/metrics.csv")
                XCTAssertFalse(rows.isEmpty, "\(split) \(mode) has metrics")
                expectedCount += rows.count
                for row in rows {
                    let match = across.first { a in
                        a["split"] == split && a["mode"] == mode && a["Patient"] == row["Patient"] && a["Structure"] == row["Structure"]
                    }
                    guard let match else {
                        XCTFail("\(split) \(mode) \(row["Patient"] ?? "?") \(row["Structure"] ?? "?") missing in MetricsAcrossAllRuns.csv")
                        continue
                    }
                    let dice = Double(row["Dice"] ?? "") ?? .nan, acrossDice = Double(match["Dice"] ?? "") ?? .nan
                    XCTAssertEqual(acrossDice, dice * 100, accuracy: 1e-6, "Dice x 100")
                    XCTAssertEqual(Double(match["HausdorffDistance_mm"] ?? ""), Double(row["HausdorffDistance_mm"] ?? ""))
                }
            }
        }
        XCTAssertEqual(across.count, expectedCount, "MetricsAcrossAllRuns.csv holds exactly the folds' and ensemble's rows")
    }

    /// The ensemble's Test posteriors are the mean of the folds' (each stored as uint8 p*255 truncated, so the mean of
    /// the stored fold values may differ by one level), and its segmentation is their argmax where that is clear.
    func checkEnsembleAveragesFoldPosteriors(parent: String, children: [String]) throws {
        let script = """
        import glob, os, numpy as np, nibabel as nib
        parent = '\(parent)/outputs/epoch_002/Test'
        children = \(children.map { "\($0)/outputs/epoch_002/Test" })
        subjects = sorted(d for d in os.listdir(parent) if os.path.isdir(os.path.join(parent, d)) and d != 'thumbnails')
        classes = ['background', 'region_a', 'region_b']
        worst, disagree, clear, folds_differ = 0.0, 0, 0, 0
        for s in subjects:
            members = [np.stack([np.asarray(nib.load(f'{c}/{s}/posterior_{k}.nii.gz').dataobj).astype(np.float64) for k in classes]) for c in children]
            ens = np.stack([np.asarray(nib.load(f'{parent}/{s}/posterior_{k}.nii.gz').dataobj).astype(np.float64) for k in classes])
            mean = sum(members) / len(members)
            worst = max(worst, float(np.abs(ens - mean).max()))
            folds_differ += int(np.abs(members[0] - members[1]).max() > 2)
            seg = np.asarray(nib.load(f'{parent}/{s}/segmentation.nii.gz').dataobj)
            top = np.sort(mean, axis=0)
            sure = (top[-1] - top[-2]) > 2.5
            clear += int(sure.sum())
            disagree += int((seg[sure] != np.argmax(mean, axis=0)[sure]).sum())
        print(len(subjects), worst, disagree, clear, folds_differ)
        """
        let fields = try HPCTest.python(script).split(separator: " ").map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) }
        XCTAssertEqual(fields.count, 5)
        XCTAssertEqual(fields[0], "2", "2 test subjects")
        XCTAssertLessThanOrEqual(Double(fields[1]) ?? 99, 1.0, "ensemble posterior = mean of the folds' within one uint8 level")
        XCTAssertEqual(fields[2], "0", "ensemble segmentation = argmax of the mean posterior")
        XCTAssertGreaterThan(Int(fields[3]) ?? 0, 1000, "many voxels with a clear argmax")
        XCTAssertNotEqual(fields[4], "0", "the folds' posteriors differ, so the average is a real test")
    }

    /// Each fold registered itself; the ensemble is one more version holding both folds' checkpoints.
    func checkRegistry(project: String, children: [String]) throws {
        let registry = project + "/models/HelloWorld"
        let versions = try FileManager.default.contentsOfDirectory(atPath: registry).compactMap(Int.init).sorted()
        XCTAssertEqual(versions, [1, 2, 3])
        let ensemble = try HPCTest.json("\(registry)/3/model.json")
        XCTAssertEqual((ensemble["checkpoints"] as? [Any])?.count, 2, "the ensemble holds both folds")
        let sources = (ensemble["source_run_ids"] as? [String]) ?? []
        XCTAssertEqual(sources.map { $0.split(separator: ":").last.map(String.init) ?? "" }.sorted(),
                       children.map { URL(fileURLWithPath: $0).lastPathComponent }.sorted())
    }

    func csvRows(_ path: String) throws -> [[String: String]] {
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
        guard let header = lines.first?.split(separator: ",", omittingEmptySubsequences: false).map(String.init) else { return [] }
        return lines.dropFirst().map { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return Dictionary(uniqueKeysWithValues: zip(header, fields + Array(repeating: "", count: max(0, header.count - fields.count))))
        }
    }
}

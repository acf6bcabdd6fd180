import Foundation
import XCTest

/// `ie-crossval --run=PARENT` runs a whole cross-validation here (folds one after the other, then the ensemble), and
/// recovering a parent (`--run_recovery_id=EXP:PARENT --start_epoch=E`) recovers every fold from its own epoch-E
/// checkpoint: with the same seed and threads, the recovered folds end with the original folds' weights bit for bit.
final class CrossValidationRecoveryTests: XCTestCase {
    func testRecoveringAParentRecoversEveryFold() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let settings = "--settings=\(project)/settings.yml"
        let common = HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2", "--save_start_epoch=1", "--save_step_epochs=1"]

        let original = try HPCTest.split(project: project, arguments: common)
        let first = try HPCTest.run(bin + "/ie-crossval", [settings, "--run=\(original)", "--threads=1", "--quiet"], in: project)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: original + "/outputs/CrossValResults/MetricsAcrossAllRuns.csv"),
                      "the sequential local cross-validation ends with the ensemble step")
        XCTAssertEqual(try HPCTest.json(original + "/run.json")["status"] as? String, "completed")

        let originalID = URL(fileURLWithPath: original).lastPathComponent
        let recovered = try HPCTest.split(project: project, arguments: common + ["--run_recovery_id=hpc:\(originalID)", "--start_epoch=1"])
        let second = try HPCTest.run(bin + "/ie-crossval", [settings, "--run=\(recovered)", "--threads=1", "--quiet"], in: project)
        XCTAssertEqual(second.status, 0, second.stderr)

        for k in 0..<2 {
            let log = try String(contentsOfFile: "\(recovered)_\(k)/logs/ie-train.log", encoding: .utf8)
            XCTAssertTrue(log.contains("recovering from \(original)_\(k)/outputs/checkpoints/epoch_001.ckpt"),
                          "fold \(k) recovers from the original fold \(k):\n\(log.suffix(1500))")
            let epochs = try String(contentsOfFile: "\(recovered)_\(k)/outputs/Train/epoch_metrics.csv", encoding: .utf8)
                .split(separator: "\n").dropFirst().map { $0.split(separator: ",")[0] }
            XCTAssertEqual(epochs, ["2"], "only epoch 2 is trained after recovering epoch 1")
            let a = try HPCTest.checkpointTensors("\(original)_\(k)/outputs/checkpoints/epoch_002.ckpt")
            let b = try HPCTest.checkpointTensors("\(recovered)_\(k)/outputs/checkpoints/epoch_002.ckpt")
            XCTAssertGreaterThan(a.tensors.count, 100_000)
            XCTAssertTrue(a.tensors == b.tensors, "fold \(k): recovered weights equal the uninterrupted fold's bit for bit")
        }
    }

    /// A fold that fails (here: an image of its training set vanished) fails its parent too, naming the fold: the
    /// parent's ensemble step will never run, so the parent must not stay queued.
    func testAFailedFoldFailsItsParent() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let settings = "--settings=\(project)/settings.yml"
        let parent = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2"])
        let folds = try HPCTest.run(bin + "/ie-crossval", ["folds", settings, "--run=\(parent)"], in: project)
        XCTAssertEqual(folds.status, 0, folds.stderr)
        let trainSubject = try XCTUnwrap(try HPCTest.subjects(csv: parent + "_1/outputs/train_dataset.csv").first)
        let dataset = project + "/datasets/HelloWorld"
        let images = try String(contentsOfFile: dataset + "/dataset.csv", encoding: .utf8).split(separator: "\n")
            .map { $0.split(separator: ",").map(String.init) }.filter { $0.count > 2 && $0[0] == trainSubject }.map { $0[1] }
        XCTAssertFalse(images.isEmpty, "dataset.csv has rows of subject \(trainSubject)")
        for image in images { try FileManager.default.removeItem(atPath: dataset + "/" + image) }

        let fold = try HPCTest.trainAndEvaluate(run: "\(parent)_1", settings: settings, project: project, extra: ["--threads=1", "--quiet"])
        XCTAssertNotEqual(fold.status, 0, "the fold cannot load its training images")
        XCTAssertEqual(try HPCTest.json(parent + "_1/run.json")["status"] as? String, "failed")
        let parentRecord = try HPCTest.json(parent + "/run.json")
        XCTAssertEqual(parentRecord["status"] as? String, "failed")
        let error = parentRecord["error"] as? String ?? ""
        XCTAssertTrue(error.hasPrefix("fold 1 (") && error.contains("failed"), error)
        XCTAssertEqual(try HPCTest.json(parent + "_0/run.json")["status"] as? String, "queued", "the other fold is untouched")
    }

    /// comparison_runs of a cross-validation: the ensemble's Test results against each baseline run in
    /// CrossValResults/BaselineComparisons/ (the dataset's rows of a subject share one seriesId here, which the
    /// statistics join needs).
    func testComparisonRunsGiveBaselineComparisons() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        _ = try HPCTest.python("""
        import csv
        path = '\(project)/datasets/HelloWorld/dataset.csv'
        rows = list(csv.DictReader(open(path)))
        first = {}
        for r in rows: first.setdefault(r['subject'], r['seriesId'])
        for r in rows: r['seriesId'] = first[r['subject']]
        w = csv.DictWriter(open(path, 'w', newline=''), fieldnames=list(rows[0].keys())); w.writeheader(); w.writerows(rows)
        """)
        let settings = "--settings=\(project)/settings.yml"
        let baseline = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments)
        let trained = try HPCTest.trainAndEvaluate(run: baseline, settings: settings, project: project, extra: ["--quiet"])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let baselineID = URL(fileURLWithPath: baseline).lastPathComponent
        let parent = try HPCTest.split(project: project, arguments: HPCTest.tinyModelArguments
                                       + ["--number_of_cross_validation_splits=2", "--comparison_runs=old=hpc:\(baselineID)"])
        let cv = try HPCTest.run(bin + "/ie-crossval", [settings, "--run=\(parent)", "--quiet"], in: project)
        XCTAssertEqual(cv.status, 0, cv.stderr)
        XCTAssertFalse(cv.stderr.contains("BaselineComparisons"), cv.stderr)
        let folder = parent + "/outputs/CrossValResults/BaselineComparisons/epoch_002/Test"
        for file in ["BaselineComparisonWilcoxonSignedRankTestResults.txt", "MetricsAcrossAllRuns.csv", "scatterplots/old_vs_CURRENT.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + file), file)
        }
        let across = try String(contentsOfFile: folder + "/MetricsAcrossAllRuns.csv", encoding: .utf8)
        let splits = across.split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false).dropLast().last ?? "" }
        XCTAssertEqual(splits.filter { $0 == "old" }.count, 4, "2 test subjects x 2 structures of the baseline")
        XCTAssertEqual(splits.filter { $0 == "CURRENT" }.count, 4, "and of the ensemble")
        let ensembleTest = try String(contentsOfFile: parent + "/outputs/epoch_002/Test/metrics.csv", encoding: .utf8)
        XCTAssertEqual(try String(contentsOfFile: folder + "/metrics.csv", encoding: .utf8), ensembleTest,
                       "the comparison uses the ensemble's Test metrics")
    }
}

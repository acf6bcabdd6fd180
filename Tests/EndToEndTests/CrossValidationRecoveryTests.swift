import Foundation
import XCTest

/// `ie-train --run=PARENT` runs a whole cross-validation here (folds one after the other, then the ensemble), and
/// recovering a parent (`--run_recovery_id=EXP:PARENT --start_epoch=E`) recovers every fold from its own epoch-E
/// checkpoint: with the same seed and threads, the recovered folds end with the original folds' weights bit for bit.
final class CrossValidationRecoveryTests: XCTestCase {
    func testRecoveringAParentRecoversEveryFold() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let settings = "--settings=\(project)/settings.yml"
        let common = HPCTest.tinyModelArguments + ["--number_of_cross_validation_splits=2"]

        let original = try HPCTest.split(project: project, arguments: common)
        let first = try HPCTest.run(bin + "/ie-train", [settings, "--run=\(original)", "--threads=1", "--quiet"], in: project)
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: original + "/outputs/CrossValResults/MetricsAcrossAllRuns.csv"),
                      "the sequential local cross-validation ends with the ensemble step")
        XCTAssertEqual(try HPCTest.json(original + "/run.json")["status"] as? String, "completed")

        let originalID = URL(fileURLWithPath: original).lastPathComponent
        let recovered = try HPCTest.split(project: project, arguments: common + ["--run_recovery_id=hpc:\(originalID)", "--start_epoch=1"])
        let second = try HPCTest.run(bin + "/ie-train", [settings, "--run=\(recovered)", "--threads=1", "--quiet"], in: project)
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
}

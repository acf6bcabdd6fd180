import Foundation
import XCTest

/// SPEC §1.1: a local folder with its own settings.yml, configs/ and a two-line Makefile that includes the
/// toolbox's ie.mk runs `make train MODEL=...` with no other code, its config inheriting a toolbox config.
final class LocalFolderTests: XCTestCase {
    func testTwoLineMakefileTrainsALocalConfigThatInheritsFromTheToolbox() throws {
        let local = NSTemporaryDirectory() + "ie-local-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: local) }
        try FileManager.default.createDirectory(atPath: local + "/configs/segmentation", withIntermediateDirectories: true)
        try "TOOLBOX ?= \(ToolRunner.repoRoot)\ninclude $(TOOLBOX)/ie.mk\n".write(toFile: local + "/Makefile", atomically: true, encoding: .utf8)
        try "model_configs_dirs: [configs, \(ToolRunner.repoRoot)/configs]\nruns_dir: runs\ndatasets_dir: datasets\nmodels_dir: models\n"
            .write(toFile: local + "/settings.yml", atomically: true, encoding: .utf8)
        try "base: HelloWorld\nnum_epochs: 1\ncrop_size: [16, 32, 32]\ntest_crop_size: [32, 64, 64]\n"
            .write(toFile: local + "/configs/segmentation/MyHello.yml", atomically: true, encoding: .utf8)

        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/make")
        // ARGS may carry ie-split's own --experiment (ie-train refused it after ie-split had made the run).
        make.arguments = ["-s", "-C", local, "train", "MODEL=MyHello", "IE_BIN=\(ToolRunner.binaryFolder)", "ARGS=--experiment=mine"]
        var env = ProcessInfo.processInfo.environment
        env["OMP_NUM_THREADS"] = "1"
        env["IE_SETTINGS"] = nil
        make.environment = env
        let out = Pipe()
        make.standardOutput = out
        make.standardError = out
        try make.run()
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        make.waitUntilExit()
        XCTAssertEqual(make.terminationStatus, 0, log)

        let runs = try FileManager.default.contentsOfDirectory(atPath: local + "/runs")
        XCTAssertEqual(runs, ["mine"], "one experiment folder in the local runs_dir, named by --experiment")
        let experiment = local + "/runs/" + runs[0]
        let run = experiment + "/" + (try FileManager.default.contentsOfDirectory(atPath: experiment)).first!
        for file in ["outputs/epoch_001/Test/metrics.csv", "outputs/epoch_001/Val/metrics_aggregates.csv", "outputs/report.html"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/" + file), "missing \(file)\n\(log)")
        }
        let args = try String(contentsOfFile: run + "/outputs/args.txt", encoding: .utf8)
        XCTAssertTrue(args.contains("MyHello"), args)
        XCTAssertTrue(FileManager.default.fileExists(atPath: local + "/datasets/HelloWorld/dataset.csv"), "demo data in the local datasets_dir")
        XCTAssertTrue(FileManager.default.fileExists(atPath: local + "/models/MyHello/1/model.json"))
    }
    /// GNU make cannot handle a folder with a space in its path (its rules failed with "Is a directory"): the
    /// rules refuse it with one line saying so, before anything is made.
    func testAFolderWithASpaceIsRefusedWithOneClearLine() throws {
        let local = NSTemporaryDirectory() + "ie local \(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: local) }
        try FileManager.default.createDirectory(atPath: local, withIntermediateDirectories: true)
        try "TOOLBOX ?= \(ToolRunner.repoRoot)\ninclude $(TOOLBOX)/ie.mk\n".write(toFile: local + "/Makefile", atomically: true, encoding: .utf8)
        let make = Process()
        make.executableURL = URL(fileURLWithPath: "/usr/bin/make")
        make.arguments = ["-s", "train", "MODEL=HelloWorld", "IE_BIN=\(ToolRunner.binaryFolder)"]
        make.currentDirectoryURL = URL(fileURLWithPath: local)
        let out = Pipe()
        (make.standardOutput, make.standardError) = (out, out)
        try make.run()
        let log = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        make.waitUntilExit()
        XCTAssertEqual(make.terminationStatus, 2, log)
        XCTAssertTrue(log.contains("has a space in its path"), log)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: local), ["Makefile"], "nothing made")
    }
}

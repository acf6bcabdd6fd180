import Foundation
import XCTest

/// Model parameters given to the tools of an existing run (SPEC §1.3, §4.4): a run's split is ie-split's (a
/// different value is refused, the run's own accepted), overrides are recorded only by a call that acts on them,
/// and what InnerEye refuses (start_epoch alone, two weight sources, Basic, out-of-bounds values) is refused
/// before anything is written, naming the flag rather than the config file.
final class ExistingRunParameterTests: XCTestCase {
    static func status(_ run: String) throws -> String? {
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/run.json"))) as? [String: Any]
        return info?["status"] as? String
    }

    func testSplitParametersDifferingFromTheRunsAreRefused() throws {
        let runner = try ToolRunner(name: "splitkeys")
        defer { runner.remove() }
        let run = try PipelineTests.makeRun(runner, subjects: 6)
        let before = try Self.status(run)
        let refused: [[String]] = [["--cross_validation_split_index=0"], ["--number_of_cross_validation_splits=2"],
                                   ["--train_subjects=1,2", "--val_subjects=3"], ["--dataset_id=HW40"], ["--proportion_train=0.5"]]
        for flags in refused {
            let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + PipelineTests.tiny + flags)
            XCTAssertEqual(train.status, 2, "\(flags): \(train.stderr)")
            XCTAssertEqual(train.stderr.split(separator: "\n").count, 1, "one line: \(train.stderr)")
            for flag in flags { XCTAssertTrue(train.stderr.contains(flag), "\(flag) not named: \(train.stderr)") }
            XCTAssertTrue(train.stderr.contains("ie-split --model=HelloWorld --run_dir=\(run)"), train.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/outputs/config_overrides.txt"), "\(flags) recorded")
            XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/outputs/Train"), "\(flags): trained")
            XCTAssertEqual(try Self.status(run), before, "\(flags): the run's status changed")
        }
        let infer = try runner.run("infer", ["--run=\(run)", "--mode=Val", "--threads=1", "--test_subjects=1"])
        XCTAssertEqual(infer.status, 2, infer.stderr)
        XCTAssertTrue(infer.stderr.contains("--test_subjects=1") && infer.stderr.contains("ie-split"), infer.stderr)
        // The run's own values (HelloWorld.yml's dataset and proportions, no cross-validation) are accepted.
        let same = try runner.run("train", ["--run=\(run)", "--print_config", "--dataset_id=HelloWorld", "--proportion_train=0.6",
                                            "--number_of_cross_validation_splits=0", "--cross_validation_split_index=-1"])
        XCTAssertEqual(same.status, 0, same.stderr)
        // An untrained run is re-split by ie-split, whose new values are then the run's own.
        let resplit = try runner.run("split", ["--model=HelloWorld", "--run_dir=\(run)", "--train_subjects=1,2,3", "--val_subjects=4", "--test_subjects=5,6"])
        XCTAssertEqual(resplit.status, 0, resplit.stderr)
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1", "--train_subjects=3,2,1", "--val_subjects=4"] + PipelineTests.tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(train.stderr.contains("3 train / 1 val subjects"), train.stderr)
    }

    /// `make train MODEL=HelloWorld ARGS=...` passes ARGS to ie-split and to ie-train: split parameters in ARGS
    /// are the run's own, so the pipeline runs through.
    func testMakeTrainWithSplitParametersInArgs() throws {
        let runner = try ToolRunner(name: "makeargs")
        defer { runner.remove() }
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=6", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let args = "--num_epochs=1 --crop_size=16,32,32 --test_crop_size=16,48,48 --train_subjects=1,2,3 --val_subjects=4 --test_subjects=5,6"
        let make = try runner.shell("make -f \(ToolRunner.repoRoot)/ie.mk train IE_BIN=\"$IE\" SETTINGS=settings.yml THREADS=1 ARGS='\(args)' 2>&1")
        XCTAssertEqual(make.status, 0, make.stdout)
        XCTAssertTrue(make.stdout.contains("3 train / 1 val subjects") && make.stdout.contains("done: "), make.stdout)
    }

    func testAFailedTrainingRecordsNoOverrides() throws {
        let runner = try ToolRunner(name: "failrecord")
        defer { runner.remove() }
        let first = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        let url = URL(fileURLWithPath: first)
        let recovery = url.deletingLastPathComponent().lastPathComponent + ":" + url.lastPathComponent
        let run = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let overrides = run + "/outputs/config_overrides.txt"
        let failed = try runner.run("train", ["--run=\(run)", "--num_epochs=3", "--run_recovery_id=\(recovery)", "--start_epoch=5"] + PipelineTests.tiny)
        XCTAssertEqual(failed.status, 3, failed.stderr)
        XCTAssertTrue(failed.stderr.contains("epoch_005.ckpt"), failed.stderr)
        XCTAssertFalse((try? String(contentsOfFile: overrides, encoding: .utf8))?.contains("run_recovery_id") ?? false, "the failed call's overrides recorded")
        // The next call without recovery trains from scratch.
        let train = try runner.run("train", ["--run=\(run)", "--num_epochs=1"] + PipelineTests.tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertFalse(train.stderr.contains("recovering"), train.stderr)
        XCTAssertTrue(try String(contentsOfFile: overrides, encoding: .utf8).contains("--num_epochs=1"), "a call that trains records")
    }

    /// ie-crossval records in the parent (and its folds copy the record): a recovery it cannot make is refused
    /// before either is written.
    func testCrossValidationRecordsOnlyOverridesItCanActOn() throws {
        let runner = try ToolRunner(name: "cvrecord")
        defer { runner.remove() }
        let source = URL(fileURLWithPath: try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1))
        let recovery = source.deletingLastPathComponent().lastPathComponent + ":" + source.lastPathComponent
        let parent = try runner.run("split", ["--model=HelloWorld", "--number_of_cross_validation_splits=2"])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let missing = try runner.run("crossval", ["folds", "--run=\(parent)", "--run_recovery_id=\(recovery)", "--start_epoch=5"])
        XCTAssertEqual(missing.status, 3, missing.stderr)
        XCTAssertTrue(missing.stderr.contains("epoch_005.ckpt"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: parent + "/outputs/config_overrides.txt"), "recorded in the parent")
        XCTAssertFalse(FileManager.default.fileExists(atPath: parent + "_0"), "a fold was made")
        let folds = try runner.run("crossval", ["folds", "--run=\(parent)", "--run_recovery_id=\(recovery)", "--start_epoch=1"])
        XCTAssertEqual(folds.status, 0, folds.stderr)
        XCTAssertTrue(try String(contentsOfFile: parent + "/outputs/config_overrides.txt", encoding: .utf8).contains("--start_epoch=1"))
    }

    func testWeightSourcesInnerEyeRefuses() throws {
        let runner = try ToolRunner(name: "weights")
        defer { runner.remove() }
        let first = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        let checkpoint = first + "/outputs/checkpoints/epoch_001.ckpt"
        let cases: [([String], String)] = [
            (["--num_epochs=2", "--start_epoch=1"], "--start_epoch=1"),
            (["--no-train", "--local_weights_path=\(checkpoint)", "--model_id=HelloWorld:1"], "--model_id=HelloWorld:1"),
            (["--num_epochs=2", "--local_weights_path=\(checkpoint),\(checkpoint)"], "--local_weights_path="),
        ]
        for (flags, named) in cases {
            let run = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let train = try runner.run("train", ["--run=\(run)"] + PipelineTests.tiny + flags)
            XCTAssertEqual(train.status, 2, "\(flags): \(train.stderr)")
            XCTAssertTrue(train.stderr.contains(named) && train.stderr.split(separator: "\n").count == 1, train.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/outputs/Train"), "\(flags): trained")
            XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/outputs/config_overrides.txt"), "\(flags): recorded")
        }
        // Several checkpoints to evaluate are a --no-train matter, not refused by the config.
        let several = try runner.run("split", ["--model=HelloWorld", "--no-train", "--local_weights_path=\(checkpoint),\(checkpoint)", "--print_config"])
        XCTAssertEqual(several.status, 0, several.stderr)
    }

    func testInnerEyeSpellingsAndBoundsOnTheCommandLine() throws {
        let runner = try ToolRunner(name: "spellings")
        defer { runner.remove() }
        let printed = try runner.run("split", ["--model=HelloWorld", "--print_config", "--check_exclusive=TRUE", "--train", "False",
                                               "--apply_augmentations", "ON", "--padding_mode=constant", "--norm_method=CT Window"])
        XCTAssertEqual(printed.status, 0, printed.stderr)
        for row in ["check_exclusive\tTrue\t", "train\tFalse\t", "apply_augmentations\tTrue\t", "padding_mode\tZero\t", "norm_method\tCtWindow\t"] {
            XCTAssertTrue(printed.stdout.contains(row), "\(row) missing:\n\(printed.stdout)")
        }
        let config = ToolRunner.repoRoot + "/configs/segmentation/HelloWorld.yml"
        for flag in ["--architecture=Basic", "--label_smoothing_eps=1.5", "--l_rate_warmup_epochs=-1"] {
            let split = try runner.run("split", ["--model=HelloWorld", flag])
            XCTAssertEqual(split.status, 2, "\(flag): \(split.stderr)")
            XCTAssertTrue(split.stderr.contains(flag) && !split.stderr.contains(config), "\(flag): \(split.stderr)")
            XCTAssertFalse(runner.exists("runs"), "\(flag): a run was made")
        }
        // On an existing run ie-train refuses it before the run is touched (it was marked failed).
        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=6", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let run = try runner.run("split", ["--model=HelloWorld"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let basic = try runner.run("train", ["--run=\(run)", "--architecture=Basic", "--num_epochs=1"] + PipelineTests.tiny)
        XCTAssertEqual(basic.status, 2, basic.stderr)
        XCTAssertTrue(basic.stderr.contains("--architecture=Basic") && !basic.stderr.contains(config), basic.stderr)
        XCTAssertNotEqual(try Self.status(run), "failed")
    }
}

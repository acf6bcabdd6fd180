import Foundation
import XCTest
import IECore
@testable import IEData

/// The built ie-split executable: exit codes, one-line errors, outputs.
final class SplitToolTests: XCTestCase {
    var tool: String {
        let candidates = [Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
            .map { $0.appendingPathComponent("ie-split").path }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }

    func run(_ args: [String], cwd: String? = nil) throws -> (code: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        var env = ProcessInfo.processInfo.environment
        env["IE_SETTINGS"] = nil
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func assertError(_ args: [String], code: Int32, _ fragments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try run(args)
        XCTAssertEqual(r.code, code, r.stderr, file: file, line: line)
        XCTAssertTrue(r.stderr.hasPrefix("ie-split: error: "), r.stderr, file: file, line: line)
        XCTAssertEqual(r.stderr.filter { $0 == "\n" }.count, 1, "one line: \(r.stderr)", file: file, line: line)
        for f in fragments { XCTAssertTrue(r.stderr.contains(f), "'\(r.stderr)' lacks '\(f)'", file: file, line: line) }
    }

    func testHelpShowsExamples() throws {
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: tool), "build ie-split first (swift build --build-tests)")
        let r = try run(["--help"])
        XCTAssertEqual(r.code, 0)
        XCTAssertTrue(r.stdout.contains("Examples:"))
        XCTAssertTrue(r.stdout.contains("ie-split --model=HelloWorld"))
    }

    func testUsageErrorsExitTwo() throws {
        let csv = fixtures + "/innereye_dataset.csv"
        try assertError(["--dataset=\(csv)", "--output_folder=/tmp/x", "--proportion_trian=0.8"], code: 2, ["--proportion_trian=0.8", "closest: --proportion_train"])
        try assertError(["--dataset=\(csv)", "--output_folder=/tmp/x", "--check_exclusive=maybe"], code: 2, ["--check_exclusive=maybe", "boolean"])
        try assertError(["--dataset=\(csv)", "--output_folder=/tmp/x", "--number_of_cross_validation_splits=two"], code: 2, ["number_of_cross_validation_splits", "integer"])
        try assertError(["--dataset=\(csv)", "--output_folder=/tmp/x", "--proportion_train=0.9"], code: 2, ["expected a sum of 1"])
        try assertError(["--dataset=\(csv)"], code: 2, ["--output_folder"])
        try assertError([], code: 2, ["expected --model=NAME or --dataset=PATH"])
        try assertError(["--dataset"], code: 2, ["Missing value"])
    }

    func testBadDataExitsThree() throws {
        let s = try Scratch()
        try assertError(["--dataset=\(s.root)/none.csv", "--output_folder=\(s.root)/out"], code: 3, ["none.csv", "not found"])
        let dup = try s.write("dup.csv", "subject,filePath,channel\n1,a,ct\n2,b,ct\n1,c,ct\n")
        try assertError(["--dataset=\(dup)", "--output_folder=\(s.root)/out"], code: 3, ["\(dup):4:", "duplicate row"])
        let noColumn = try s.write("nocol.csv", "subject,path,channel\n1,a,ct\n")
        try assertError(["--dataset=\(noColumn)", "--output_folder=\(s.root)/out"], code: 3, ["\(noColumn):1:", "missing column 'filePath'"])
        // --check loads the images: the real InnerEye files with overlapping region/region_1.
        let real = try s.write("real.csv", """
            subject,filePath,channel
            1,\(fixtures)/id1_mask.nii.gz,ct
            1,\(fixtures)/id1_region.nii.gz,region
            1,\(fixtures)/id1_region.nii.gz,region_1
            2,\(fixtures)/id1_mask.nii.gz,ct
            2,\(fixtures)/id1_region.nii.gz,region
            2,\(fixtures)/id1_region.nii.gz,region_1
            3,\(fixtures)/id1_mask.nii.gz,ct

            """)
        try assertError(["--dataset=\(real)", "--output_folder=\(s.root)/out", "--check", "--image_channels=ct", "--ground_truth_ids=region,region_1",
                         "--allow_incomplete_labels"], code: 3, ["\(real):4:", "structures region and region_1 overlap"])
        try assertError(["--dataset=\(real)", "--output_folder=\(s.root)/out", "--check", "--image_channels=ct", "--ground_truth_ids=region,region_1",
                         "--no-check_exclusive"], code: 3, ["\(real):8:", "subject 3 has no row for channel region"])
        // A cross-validation parent whose folds cannot all be made is refused when it is split, not when its
        // folds run: 7 subjects, 20 folds.
        let csv = fixtures + "/innereye_dataset.csv"
        try assertError(["--dataset=\(csv)", "--output_folder=\(s.root)/parent", "--number_of_cross_validation_splits=20"], code: 3,
                        ["training+validation subjects cannot make 20 folds"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/parent/dataset.csv"))
    }

    /// Hostile dataset.csv contents (issue: subject ids that escape the run folder, Latin-1 bytes): one-line
    /// errors naming the file and line, exit 3, nothing written.
    func testHostileNamesAndEncodingsAreRefusedWithTheirLine() throws {
        let s = try Scratch()
        let escape = try s.write("escape.csv", "subject,filePath,channel\n1,a.nii.gz,ct\n../../../../escape/a,b.nii.gz,ct\n")
        try assertError(["--dataset=\(escape)", "--output_folder=\(s.root)/out"], code: 3,
                        ["\(escape):3:", "subject '../../../../escape/a' contains '/'"])
        let dots = try s.write("dots.csv", "subject,filePath,channel\n..,a.nii.gz,ct\n")
        try assertError(["--dataset=\(dots)", "--output_folder=\(s.root)/out"], code: 3, ["\(dots):2:", "subject '..' is '..'"])
        let channel = try s.write("channel.csv", "subject,filePath,channel\n1,a.nii.gz,\"c\tt\"\n")
        try assertError(["--dataset=\(channel)", "--output_folder=\(s.root)/out"], code: 3, ["\(channel):2:", "contains a control character"])
        let latin1 = s.root + "/latin1.csv"
        var bytes = Data("subject,filePath,channel\n1,a.nii.gz,ct\n2,".utf8)
        bytes.append(contentsOf: [0x63, 0xE9, 0x2E, 0x6E, 0x69, 0x69])   // "cé.nii" in Latin-1
        bytes.append(contentsOf: Data(",ct\n".utf8))
        try bytes.write(to: URL(fileURLWithPath: latin1))
        try assertError(["--dataset=\(latin1)", "--output_folder=\(s.root)/out"], code: 3, ["\(latin1):3:", "not valid UTF-8"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/out"), "nothing written")
    }

    /// A run path printed into a full stdout is an error (exit 1, one line), never a silent exit 0.
    func testAFullStandardOutputIsAnError() throws {
        let s = try Scratch()
        _ = try s.write("settings.yml", "model_configs_dirs: [configs]\nruns_dir: myruns\ndatasets_dir: data\n")
        let bash = Process()
        bash.executableURL = URL(fileURLWithPath: "/bin/bash")
        bash.arguments = ["-c", "'\(tool)' --settings=\(s.root)/settings.yml --model=Nothing --print_dataset_folder >/dev/full; echo \"rc=$?\"",]
        let out = Pipe(), err = Pipe()
        bash.standardOutput = out
        bash.standardError = err
        _ = try s.write("configs/segmentation/Nothing.yml", "dataset_id: toy\nimage_channels: [ct]\nground_truth_ids: [region]\nfeature_channels: [4]\ncrop_size: [16, 16, 16]\n")
        try bash.run()
        let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        bash.waitUntilExit()
        XCTAssertEqual(o, "rc=1\n", e)
        XCTAssertTrue(e.hasPrefix("ie-split: error: cannot write to standard output: No space left on device"), e)
    }

    /// The audit's command, `ie-split --model=HelloWorld --dataset_id=HW40 --group_column=patient_group
    /// --number_of_cross_validation_splits=3 --cross_validation_split_index=i`, validates on the subjects InnerEye's
    /// own split code chose (scikit-learn GroupKFold), written to val_dataset.csv; test is the base split's.
    func testGroupedCrossValidationFoldsAreInnerEyes() throws {
        let s = try Scratch()
        _ = try s.write("settings.yml", "model_configs_dirs: [configs]\nruns_dir: runs\ndatasets_dir: data\n")
        _ = try s.write("configs/segmentation/HelloWorld.yml", "dataset_id: HelloWorld\nimage_channels: [ct]\nground_truth_ids: [region_a, region_b]\nmask_id: mask\nfeature_channels: [8]\ncrop_size: [16, 48, 48]\nproportion_train: 0.6\nproportion_val: 0.2\nproportion_test: 0.2\n")
        _ = try s.write("data/HW40/dataset.csv", hw40DatasetText())
        let expectedValidation = [[2, 4, 9, 11, 16, 18, 23], [1, 7, 8, 14, 15, 21, 22], [5, 6, 12, 13, 19, 20]]
        for (index, expected) in expectedValidation.enumerated() {
            let r = try run(["--model=HelloWorld", "--settings=\(s.root)/settings.yml", "--dataset_id=HW40", "--group_column=patient_group",
                             "--number_of_cross_validation_splits=3", "--cross_validation_split_index=\(index)", "--output_folder=\(s.root)/fold\(index)"])
            XCTAssertEqual(r.code, 0, r.stderr)
            func subjects(_ name: String) throws -> [Int] {
                Set(try CSVTable.read(path: "\(s.root)/fold\(index)/\(name)_dataset.csv").rows.compactMap { Int($0[0]) }).sorted()
            }
            XCTAssertEqual(try subjects("val"), expected, "fold \(index)")
            XCTAssertEqual(try subjects("test"), [3, 10, 17], "fold \(index)")
            XCTAssertEqual(try subjects("train"), Set(1...23).subtracting(expected + [3, 10, 17]).sorted(), "fold \(index)")
        }
    }

    func testSplitsIntoFolderAndNewRun() throws {
        let s = try Scratch()
        let csv = fixtures + "/innereye_dataset.csv"
        let r = try run(["--dataset=\(csv)", "--output_folder=\(s.root)/out", "--proportion_train=0.6", "--proportion_val=0.2",
                         "--proportion_test=0.2", "--number_of_cross_validation_splits=2", "--cross_validation_split_index=1"])
        XCTAssertEqual(r.code, 0, r.stderr)
        let expected = try Splits.crossValidationFold(Splits.byProportions(Dataset.load(path: csv), train: 0.6, val: 0.2, test: 0.2),
                                                      dataset: Dataset.load(path: csv), folds: 2, index: 1)
        for (name, subjects) in [("train", expected.train), ("val", expected.val), ("test", expected.test)] {
            let t = try CSVTable.read(path: "\(s.root)/out/\(name)_dataset.csv")
            XCTAssertEqual(Set(t.rows.map { $0[0] }), Set(subjects), name)
        }
        // --model without an output folder: a new run under the settings' runs_dir, printed on stdout.
        _ = try s.write("settings.yml", "model_configs_dirs: [configs]\nruns_dir: myruns\ndatasets_dir: data\n")
        _ = try s.write("configs/segmentation/Tiny.yml", "dataset_id: toy\nimage_channels: [channel1]\nground_truth_ids: [region]\nfeature_channels: [4]\ncrop_size: [16, 16, 16]\nproportion_train: 0.6\nproportion_val: 0.2\nproportion_test: 0.2\n")
        try FileManager.default.createDirectory(atPath: s.root + "/data/toy", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: csv, toPath: s.root + "/data/toy/dataset.csv")
        let folder = try run(["--model=Tiny", "--settings=\(s.root)/settings.yml", "--print_dataset_folder"])
        XCTAssertEqual(folder.code, 0, folder.stderr)
        XCTAssertEqual(folder.stdout, s.root + "/data/toy\n")
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.root + "/myruns"))
        let m = try run(["--model=Tiny", "--settings=\(s.root)/settings.yml", "--experiment=exp1"])
        XCTAssertEqual(m.code, 0, m.stderr)
        let runPath = m.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(runPath.hasPrefix(s.root + "/myruns/exp1/exp1_"), runPath)
        for f in ["dataset.csv", "train_dataset.csv", "val_dataset.csv", "test_dataset.csv", "args.txt", "buildinformation.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: runPath + "/outputs/" + f), f)
        }
        XCTAssertTrue(try String(contentsOfFile: runPath + "/logs/ie-split.log", encoding: .utf8).contains("train 4, val 2, test 1"))
        // The run's copies point at the images wherever the run lives.
        let copied = try Dataset.load(path: runPath + "/outputs/dataset.csv")
        XCTAssertEqual(copied.absolutePath(copied.rows[0]), s.root + "/data/toy/train_and_test_data/id1_channel1.nii.gz")
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: runPath + "/run.json"))) as! [String: Any]
        XCTAssertEqual(info["model"] as? String, "Tiny")
        XCTAssertEqual(info["status"] as? String, "queued")

        // --run_dir re-splits a run that has not trained, with its own model, and records the new overrides.
        let settings = "--settings=\(s.root)/settings.yml"
        let resplit = try run(["--model=Tiny", settings, "--run_dir=\(runPath)", "--proportion_train=0.4", "--proportion_val=0.4",
                               "--proportion_test=0.2"])
        XCTAssertEqual(resplit.code, 0, resplit.stderr)
        XCTAssertTrue(try String(contentsOfFile: runPath + "/outputs/config_overrides.txt", encoding: .utf8).contains("--proportion_train=0.4"))
        let before = try Data(contentsOf: URL(fileURLWithPath: runPath + "/outputs/val_dataset.csv"))
        // Another model's name, or a run that has trained: refused (exit 2), nothing written, the status kept.
        _ = try s.write("configs/segmentation/Other.yml", "base: Tiny\n")
        try assertError(["--model=Other", settings, "--run_dir=\(runPath)"], code: 2, ["the run is of model Tiny, expected --model=Tiny"])
        var edited = info
        edited["status"] = "completed"
        try JSONSerialization.data(withJSONObject: edited).write(to: URL(fileURLWithPath: runPath + "/run.json"))
        let runJSON = try Data(contentsOf: URL(fileURLWithPath: runPath + "/run.json"))
        try assertError(["--model=Tiny", settings, "--run_dir=\(runPath)", "--proportion_train=0.2", "--proportion_val=0.6",
                         "--proportion_test=0.2"], code: 2, ["the run has already trained (status completed)"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: runPath + "/outputs/val_dataset.csv")), before)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: runPath + "/run.json")), runJSON)
    }
}

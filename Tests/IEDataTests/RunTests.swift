import Foundation
import XCTest
import IECore
import IEConfig
@testable import IERun

final class RunIDTests: XCTestCase {
    func testRunIDFormat() throws {
        let date = ISO8601DateFormatter().date(from: "2026-01-02T03:04:05Z")!
        XCTAssertEqual(RunIDs.timestamp(date), "20260102T030405Z")
        XCTAssertEqual(RunIDs.newRunID(experiment: "main", date: date, suffix: 0x1a2b), "main_20260102T030405Z_1a2b")
        XCTAssertEqual(RunIDs.newRunID(experiment: "x", date: date, suffix: 7), "x_20260102T030405Z_0007")
        let random = RunIDs.newRunID(experiment: "h_data")
        XCTAssertNotNil(random.range(of: "^h_data_[0-9]{8}T[0-9]{6}Z_[0-9a-f]{4}$", options: .regularExpression), random)
    }

    func testParentChildAndRecoveryIDs() throws {
        let parent = "main_20260102T030405Z_1a2b"
        XCTAssertEqual(RunIDs.childRunID(parent: parent, index: 3), "main_20260102T030405Z_1a2b_3")
        XCTAssertEqual(RunIDs.parentAndIndex(of: "main_20260102T030405Z_1a2b_3")?.parent, parent)
        XCTAssertEqual(RunIDs.parentAndIndex(of: "main_20260102T030405Z_1a2b_12")?.index, 12)
        XCTAssertNil(RunIDs.parentAndIndex(of: parent))
        // An experiment name that itself ends in _<digits> does not confuse the rule.
        XCTAssertNil(RunIDs.parentAndIndex(of: "exp_2_20260102T030405Z_1a2b"))
        let r = try RunRecoveryID(parsing: "main:main_20260102T030405Z_1a2b_0")
        XCTAssertEqual(r.experiment, "main")
        XCTAssertEqual(r.runID, "main_20260102T030405Z_1a2b_0")
        XCTAssertEqual(r.parent, RunRecoveryID(experiment: "main", runID: parent))
        XCTAssertEqual(r.description, "main:main_20260102T030405Z_1a2b_0")
        for bad in ["main", "a:b:c", ":x", "x:", "a/b:c", "x:../y"] {
            assertIEError(.usage, contains: ["invalid run recovery id", "EXPERIMENT:RUN_ID"]) { _ = try RunRecoveryID(parsing: bad) }
        }
    }

    func testExperimentNameFromGit() throws {
        let s = try Scratch()
        _ = try s.write("repo/.git/HEAD", "ref: refs/heads/feature/new-loss\n")
        _ = try s.write("repo/.git/refs/heads/feature/new-loss", "0123456789abcdef0123456789abcdef01234567\n")
        try FileManager.default.createDirectory(atPath: s.root + "/repo/sub/dir", withIntermediateDirectories: true)
        XCTAssertEqual(try RunIDs.experimentName(explicit: nil, workingDirectory: s.root + "/repo/sub/dir"), "feature_new-loss")
        XCTAssertEqual(GitInfo.find(from: s.root + "/repo")?.commit, "0123456789abcdef0123456789abcdef01234567")
        XCTAssertEqual(try RunIDs.experimentName(explicit: "mine", workingDirectory: s.root + "/repo"), "mine")
        assertIEError(.usage, contains: ["invalid experiment name"]) { _ = try RunIDs.experimentName(explicit: "a/b") }
        // A worktree: .git is a file pointing at <common>/worktrees/<name>, refs live in the common dir (packed here).
        _ = try s.write("main/.git/worktrees/wt/HEAD", "ref: refs/heads/h/data\n")
        _ = try s.write("main/.git/worktrees/wt/commondir", "../..\n")
        _ = try s.write("main/.git/packed-refs", "# pack-refs with: peeled\nfedcba9876543210fedcba9876543210fedcba98 refs/heads/h/data\n")
        _ = try s.write("wt/.git", "gitdir: \(s.root)/main/.git/worktrees/wt\n")
        XCTAssertEqual(try RunIDs.experimentName(explicit: nil, workingDirectory: s.root + "/wt"), "h_data")
        XCTAssertEqual(GitInfo.find(from: s.root + "/wt")?.commit, "fedcba9876543210fedcba9876543210fedcba98")
        // Detached HEAD: no branch, so the default name.
        _ = try s.write("detached/.git/HEAD", "fedcba9876543210fedcba9876543210fedcba98\n")
        XCTAssertEqual(try RunIDs.experimentName(explicit: nil, workingDirectory: s.root + "/detached"), "default")
    }
}

final class RunDirectoryTests: XCTestCase {
    func testCreateAndStatusTransitions() throws {
        let s = try Scratch()
        let run = try RunDirectory.create(runsDir: s.root + "/runs", experiment: "exp", model: "HelloWorld", commandLine: ["ie-train", "--model=HelloWorld"])
        XCTAssertTrue(run.path.hasPrefix(s.root + "/runs/exp/exp_"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.outputs))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.logs))
        var info = try run.readInfo()
        XCTAssertEqual(info.status, .queued)
        XCTAssertEqual(info.model, "HelloWorld")
        XCTAssertEqual(info.commandLine, ["ie-train", "--model=HelloWorld"])
        XCTAssertNil(info.started)
        // Every SPEC §9 field is present in the file, null or not.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run.runJSON))) as! [String: Any]
        for key in ["id", "experiment", "model", "parent", "children", "status", "error", "command_line", "git_commit", "host",
                    "slurm_job_id", "started", "finished"] {
            XCTAssertTrue(json.keys.contains(key), key)
        }
        try run.perform(tool: "ie-split") { Log.info("hello from the test") }
        info = try run.readInfo()
        XCTAssertEqual(info.status, .completed)
        XCTAssertNotNil(info.started)
        XCTAssertNotNil(info.finished)
        let log = try String(contentsOfFile: run.logs + "/ie-split.log", encoding: .utf8)
        XCTAssertTrue(log.contains("hello from the test"))
        XCTAssertNil(Log.logFile)

        XCTAssertThrowsError(try run.perform(tool: "ie-train") { throw IEError.badInput("bad voxel", file: "x.csv", line: 4) })
        info = try run.readInfo()
        XCTAssertEqual(info.status, .failed)
        XCTAssertEqual(info.error, "ie-train: x.csv:4: bad voxel")
        let reopened = try RunDirectory.open(runsDir: s.root + "/runs", recoveryID: run.recoveryID)
        XCTAssertEqual(reopened.id, run.id)
        XCTAssertEqual(reopened.experiment, "exp")
        assertIEError(.usage, contains: ["run.json missing"]) { _ = try RunDirectory.open(path: s.root + "/runs/exp/nothing") }
    }

    func testParallelChildrenAllRecorded() throws {
        let s = try Scratch()
        let parent = try RunDirectory.create(runsDir: s.root, experiment: "cv", model: "M")
        let errors = NSLock()
        var failures: [Error] = []
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            do { _ = try RunDirectory.create(runsDir: s.root, experiment: "cv", model: "M", parent: parent, childIndex: k) } catch {
                errors.lock(); failures.append(error); errors.unlock()
            }
        }
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        let info = try parent.readInfo()
        XCTAssertEqual(info.children.sorted(), (0..<8).map { "\(parent.id)_\($0)" }.sorted())
        let child = try RunDirectory.open(path: parent.path + "_3")
        XCTAssertEqual(try child.readInfo().parent, parent.id)
        XCTAssertEqual(try child.parentRun()?.id, parent.id)
        // Creating the same child twice is an error, never a silent overwrite.
        XCTAssertThrowsError(try RunDirectory.create(runsDir: s.root, experiment: "cv", model: "M", parent: parent, childIndex: 3))
    }

    func testArgsTxtAndBuildInformation() throws {
        let s = try Scratch()
        let config = try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(["--crop_size=16,32,32", "--no-check_exclusive"]))
        let run = try RunDirectory.create(runsDir: s.root, experiment: "e", model: "M")
        try run.writeArguments(config)
        let lines = try String(contentsOfFile: run.outputs + "/args.txt", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.first, "Arguments:")
        // InnerEye writes f"\t{name:40}: {value}": the name left-justified in 40 columns.
        XCTAssertTrue(lines.contains("\tl_rate                                  : 0.0001"))
        XCTAssertTrue(lines.contains("\tcrop_size                               : 16,32,32"))
        XCTAssertTrue(lines.contains("\tcheck_exclusive                         : False"))
        XCTAssertTrue(lines.contains("\tlargest_connected_component_foreground_classes: None"))
        XCTAssertEqual(lines.count, 1 + 1 + ParameterSchema.parameters.count + 1)   // header, model_name, params, final newline
        try run.writeBuildInformation()
        let info = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run.outputs + "/buildinformation.json"))) as! [String: Any]
        XCTAssertEqual(Set(info.keys), ["toolbox_version", "git_commit", "git_branch", "build_date", "host", "swift_version", "blas"])
        XCTAssertEqual(info["blas"] as? String, "OpenBLAS")
    }
}

final class ModelRegistryTests: XCTestCase {
    func testRegisterResolveAndVerify() throws {
        let s = try Scratch()
        let a = try s.write("run/epoch_002.ckpt", "abc")
        let b = try s.write("run2/epoch_002.ckpt", "second")
        let registry = ModelRegistry(root: s.root + "/models")
        let config = try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(["--num_epochs=2"]))
        let v1 = try registry.register(name: "Hello", config: config, checkpoints: [a], sourceRunIds: ["e:run1"])
        XCTAssertEqual(v1.version, 1)
        // FIPS 180-2 test vector: SHA-256("abc").
        XCTAssertEqual(v1.checkpoints, [RegisteredCheckpoint(file: "epoch_002.ckpt", sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")])
        let v2 = try registry.register(name: "Hello", config: nil, checkpoints: [a, b], sourceRunIds: ["e:run1", "e:run2"])
        XCTAssertEqual(v2.version, 2)
        XCTAssertEqual(v2.checkpoints.map(\.file), ["0_epoch_002.ckpt", "1_epoch_002.ckpt"])
        let resolved = try registry.resolve("Hello:1")
        XCTAssertEqual(resolved.config["num_epochs"], "2")
        XCTAssertEqual(resolved.config["model_name"], "default")
        XCTAssertEqual(resolved.sourceRunIds, ["e:run1"])
        XCTAssertEqual(try String(contentsOfFile: resolved.checkpointPaths[0], encoding: .utf8), "abc")
        XCTAssertNoThrow(try resolved.verify())
        XCTAssertEqual(try registry.resolve("Hello:latest").version, 2)
        assertIEError(.usage, contains: ["Hello:3 is not registered", "1, 2"]) { _ = try registry.resolve("Hello:3") }
        assertIEError(.usage, contains: ["invalid model id", "Name:version"]) { _ = try registry.resolve("Hello") }
        assertIEError(.usage, contains: ["invalid model id"]) { _ = try registry.resolve("Hello:0") }
        // Tampering is detected.
        try "abd".write(toFile: resolved.checkpointPaths[0], atomically: true, encoding: .utf8)
        assertIEError(.badInput, contains: ["epoch_002.ckpt", "SHA-256"]) { try registry.resolve("Hello:1").verify() }
        // A half-made version (folder, no model.json) is skipped by registration and refused by resolve.
        try FileManager.default.createDirectory(atPath: s.root + "/models/Hello/3", withIntermediateDirectories: true)
        assertIEError(.usage, contains: ["Hello:3 is not registered"]) { _ = try registry.resolve("Hello:3") }
        XCTAssertEqual(try registry.register(name: "Hello", config: nil, checkpoints: [a], sourceRunIds: []).version, 4)
        XCTAssertEqual(registry.versions(name: "Hello"), [1, 2, 4])
    }

    /// RegisteredModel.modelConfig gives back the config a model was registered with, every parameter exactly
    /// (orderedArguments' text read back by ConfigOverrides), over any base config: each runnable config of the
    /// repository registered with HelloWorld (HelloClassification) as its model_name comes back with all its values. Command-line
    /// overrides win; a stored parameter that no longer exists or parses is bad input naming model.json.
    func testStoredConfigIsTheRegisteredOneOverAnyBase() throws {
        let s = try Scratch()
        let a = try s.write("run/epoch_002.ckpt", "abc")
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        var settings = Settings.defaults(relativeTo: s.root)
        settings.modelConfigsDirs = [repo + "/configs"]
        let registry = ModelRegistry(settings: settings)
        func rewrite(_ model: RegisteredModel, _ edit: (inout [String: String]) -> Void) throws {
            var object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: model.jsonPath))) as? [String: Any])
            var config = try XCTUnwrap(object["config"] as? [String: String])
            edit(&config)
            object["config"] = config
            try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: model.jsonPath))
        }
        let names = ModelConfig.availableModels(settings: settings).filter { !$0.hasSuffix("Base") }
        XCTAssertTrue(names.contains("HelloClassification") && names.contains("HeadAndNeckPaper"), "\(names)")
        for name in names {
            let trained = try ModelConfig.load(name: name, settings: settings, overrides: ConfigOverrides.parse(["--num_epochs=3"]))
            let model = try registry.register(name: name, config: trained, checkpoints: [a], sourceRunIds: [])
            XCTAssertEqual(try registry.resolve(model.id).modelConfig(settings: settings).orderedArguments.map { "\($0)" },
                           trained.orderedArguments.map { "\($0)" }, name)
            // Over another config of its category (the config folder, not a parameter, says which that is).
            let base = trained.category.isScalar ? "HelloClassification" : "HelloWorld"
            try rewrite(model) { $0["model_name"] = base }
            let over = try registry.resolve(model.id).modelConfig(settings: settings)
            XCTAssertEqual(over.name, base)
            XCTAssertEqual(over.orderedArguments.map { "\($0)" }, trained.orderedArguments.map { "\($0)" }, "\(name) over \(base)")
        }
        let trained = try ModelConfig.load(name: "HelloWorld", settings: settings,
                                           overrides: ConfigOverrides.parse(["--image_channels=ct,region_a", "--ground_truth_ids=region_b",
                                                                             "--class_weights=0.02,0.98", "--l_rate=0.1"]))
        let model = try registry.register(name: "HelloWorld", config: trained, checkpoints: [a], sourceRunIds: [])
        let config = try registry.resolve(model.id).modelConfig(settings: settings, overrides: ConfigOverrides.parse(["--l_rate=0.5"]))
        XCTAssertEqual(config.imageChannels, ["ct", "region_a"])
        XCTAssertEqual(config.groundTruthIds, ["region_b"])
        XCTAssertEqual(config.lRate, 0.5, "the command line wins")
        // An older registration without a config: the config file's.
        let bare = try registry.register(name: "HelloWorld", config: nil, checkpoints: [a], sourceRunIds: [])
        XCTAssertEqual(try registry.resolve(bare.id).modelConfig(settings: settings).imageChannels, ["ct"])

        try rewrite(model) { $0["no_such_parameter"] = "1" }
        assertIEError(.badInput, contains: [model.jsonPath, "'no_such_parameter'"]) { _ = try registry.resolve(model.id).modelConfig(settings: settings) }
        try rewrite(model) { $0["no_such_parameter"] = nil; $0["num_epochs"] = "many" }
        assertIEError(.badInput, contains: [model.jsonPath, "num_epochs=many", "an integer"]) {
            _ = try registry.resolve(model.id).modelConfig(settings: settings)
        }
        // A stored value the config's checks refuse names model.json and the value.
        try rewrite(model) { $0["num_epochs"] = "2"; $0["class_weights"] = "0.5,0.25,0.25" }
        assertIEError(.usage, contains: [model.jsonPath, "class_weights=0.5,0.25,0.25"]) {
            _ = try registry.resolve(model.id).modelConfig(settings: settings)
        }
    }

    /// The category is stored as the effective one: a classifier whose config file later moves from
    /// classification/ to segmentation/ (which alone said what it is) still comes back as a classifier.
    func testRegisteredCategorySurvivesAMovedConfigFile() throws {
        let s = try Scratch()
        let a = try s.write("run/epoch_002.ckpt", "abc")
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        _ = try s.write("configs/classification/Clf.yml", try String(contentsOfFile: repo + "/configs/classification/HelloClassification.yml", encoding: .utf8))
        var settings = Settings.defaults(relativeTo: s.root)
        settings.modelConfigsDirs = [s.root + "/configs"]
        let registry = ModelRegistry(settings: settings)
        let trained = try ModelConfig.load(name: "Clf", settings: settings)
        XCTAssertEqual(trained.category, .classification)
        let model = try registry.register(name: "Clf", config: trained, checkpoints: [a], sourceRunIds: [])
        XCTAssertEqual(try registry.resolve(model.id).modelConfig(settings: settings).orderedArguments.map { "\($0)" },
                       trained.orderedArguments.map { "\($0)" })
        try FileManager.default.createDirectory(atPath: s.root + "/configs/segmentation", withIntermediateDirectories: true)
        try FileManager.default.moveItem(atPath: s.root + "/configs/classification/Clf.yml", toPath: s.root + "/configs/segmentation/Clf.yml")
        assertIEError(.usage, contains: ["Clf.yml", "classification/regression"]) {
            _ = try ModelConfig.load(name: "Clf", settings: settings, requireRunnable: false)
        }
        let moved = try registry.resolve(model.id).modelConfig(settings: settings)
        XCTAssertEqual(moved.category, .classification)
        XCTAssertEqual(moved.lossType, "BCEWithLogits")
        XCTAssertEqual(moved.imageSize, [32, 32])
    }

    /// Recorded overrides name files absolutely: the later tools that read them may run in another directory.
    func testRecordedPathOverridesAreAbsolute() {
        let cwd = FileManager.default.currentDirectoryPath
        XCTAssertEqual(RunDirectory.absolutePaths(in: ["--local_weights_path=runs/a/e1.ckpt,/abs/e2.ckpt", "--num_epochs=3",
                                                       "--local_dataset", "data/x", "--local_dataset=/d", "--model_name=rel/x"]),
                       ["--local_weights_path=\(cwd)/runs/a/e1.ckpt,/abs/e2.ckpt", "--num_epochs=3",
                        "--local_dataset", "\(cwd)/data/x", "--local_dataset=/d", "--model_name=rel/x"])
    }

    func testConcurrentRegistrationsTakeDistinctVersions() throws {
        let s = try Scratch()
        let a = try s.write("c.ckpt", "x")
        let registry = ModelRegistry(root: s.root + "/models")
        let lock = NSLock()
        var versions: [Int] = []
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let v = try? registry.register(name: "Par", config: nil, checkpoints: [a], sourceRunIds: []).version
            lock.lock(); versions.append(v ?? -1); lock.unlock()
        }
        XCTAssertEqual(versions.sorted(), [1, 2, 3, 4, 5, 6])
    }
}

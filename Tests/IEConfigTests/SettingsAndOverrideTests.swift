import Foundation
import XCTest
import IECore
@testable import IEConfig

final class SettingsTests: XCTestCase {
    func testLookupOrderAndRelativePaths() throws {
        let s = try ConfigScratch()
        try s.write("explicit/settings.yml", "runs_dir: r1\nmodel_configs_dirs: [../configs, c2]\n")
        try s.write("env/s.yml", "runs_dir: r2\n")
        try s.write("wd/settings.yml", "runs_dir: r3\ndatasets_dir: /abs/data\n")
        try FileManager.default.createDirectory(atPath: s.root + "/empty", withIntermediateDirectories: true)

        let explicit = try Settings.locate(explicitPath: "../explicit/settings.yml", environment: ["IE_SETTINGS": s.root + "/env/s.yml"],
                                           workingDirectory: s.root + "/wd")
        XCTAssertEqual(explicit.runsDir, s.root + "/explicit/r1")
        XCTAssertEqual(explicit.modelConfigsDirs, [s.root + "/configs", s.root + "/explicit/c2"])
        let env = try Settings.locate(explicitPath: nil, environment: ["IE_SETTINGS": s.root + "/env/s.yml"], workingDirectory: s.root + "/wd")
        XCTAssertEqual(env.runsDir, s.root + "/env/r2")
        XCTAssertEqual(env.datasetsDir, s.root + "/env/datasets")
        let local = try Settings.locate(explicitPath: nil, environment: [:], workingDirectory: s.root + "/wd")
        XCTAssertEqual(local.runsDir, s.root + "/wd/r3")
        XCTAssertEqual(local.datasetsDir, "/abs/data")
        let builtIn = try Settings.locate(explicitPath: nil, environment: [:], workingDirectory: s.root + "/empty")
        XCTAssertNil(builtIn.file)
        XCTAssertEqual(builtIn.runsDir, s.root + "/empty/runs")
        XCTAssertEqual(builtIn.modelsDir, s.root + "/empty/models")
        XCTAssertEqual(builtIn.modelConfigsDirs, [s.root + "/empty/configs"])
        assertIEError(.usage, contains: ["nope.yml", "not found"]) {
            _ = try Settings.locate(explicitPath: "nope.yml", environment: [:], workingDirectory: s.root)
        }
    }

    func testUnknownSettingsKey() throws {
        let s = try ConfigScratch()
        try s.write("settings.yml", "runs_dir: r\nmodel_config_dirs: [x]\n")
        assertIEError(.usage, contains: ["settings.yml:2", "model_config_dirs", "closest: model_configs_dirs"]) {
            _ = try Settings.load(path: s.root + "/settings.yml")
        }
    }
}

final class OverrideTests: XCTestCase {
    func testEveryBooleanSpelling() throws {
        for word in ["True", "true", "T", "t", "Yes", "yes", "Y", "y", "On", "on", "1"] {
            XCTAssertEqual(try ConfigOverrides.parse(["--check_exclusive=\(word)"]).first?.value, .bool(true), word)
        }
        for word in ["False", "false", "F", "f", "No", "no", "N", "n", "Off", "off", "0"] {
            XCTAssertEqual(try ConfigOverrides.parse(["--check_exclusive=\(word)"]).first?.value, .bool(false), word)
        }
        XCTAssertEqual(try ConfigOverrides.parse(["--apply_augmentations"]).first?.value, .bool(true))
        XCTAssertEqual(try ConfigOverrides.parse(["--no-check_exclusive"]).first,
                       ConfigOverride(name: "check_exclusive", value: .bool(false), flag: "--no-check_exclusive"))
        for word in ["maybe", "2", "yess", "", "oui"] {
            assertIEError(.usage, contains: ["--check_exclusive=\(word)", "a boolean"]) { _ = try ConfigOverrides.parse(["--check_exclusive=\(word)"]) }
        }
    }

    /// Subject, structure and channel names from the command line follow the file-name rule (issue 11).
    func testHostileNamesOnTheCommandLineAreRefused() throws {
        for flag in ["--val_subjects=1,../../../../escape/a", "--test_subjects=a/b", "--ground_truth_ids=..",
                     "--train_subjects=x\u{7}y"] {
            assertIEError(.usage, contains: [String(flag.prefix(while: { $0 != "=" })), "usable as file names"]) {
                _ = try ConfigOverrides.parse([flag])
            }
        }
        XCTAssertEqual(try ConfigOverrides.parse(["--val_subjects=1,subject.2_b"]).first?.value, .strings(["1", "subject.2_b"]))
    }

    func testTypedValues() throws {
        let o = try ConfigOverrides.parse(["--crop_size=64,224,224", "--l_rate=1e-3", "--num_epochs", "7", "--image_channels=ct,mr",
                                           "--loss_type=focal", "--mask_id=None", "--posterior_smoothing_mm=(2.0, 2.0, 3.0)"])
        XCTAssertEqual(o.map(\.name), ["crop_size", "l_rate", "num_epochs", "image_channels", "loss_type", "mask_id", "posterior_smoothing_mm"])
        XCTAssertEqual(o.map(\.value), [.ints([64, 224, 224]), .float(1e-3), .int(7), .strings(["ct", "mr"]), .string("Focal"), .none,
                                        .floats([2, 2, 3])])
    }

    func testBadOverrides() throws {
        assertIEError(.usage, contains: ["--crop_sise=64,224,224", "closest: --crop_size"]) { _ = try ConfigOverrides.parse(["--crop_sise=64,224,224"]) }
        assertIEError(.usage, contains: ["--num_epochs=ten", "an integer"]) { _ = try ConfigOverrides.parse(["--num_epochs=ten"]) }
        assertIEError(.usage, contains: ["--crop_size=64,224", "triple"]) { _ = try ConfigOverrides.parse(["--crop_size=64,224"]) }
        assertIEError(.usage, contains: ["--l_rate=abc", "a finite number"]) { _ = try ConfigOverrides.parse(["--l_rate=abc"]) }
        // Non-finite values are refused at parse time (they trained to NaN weights and exit 0 before).
        for bad in ["inf", "-inf", ".inf", "nan", "NaN", "1e999"] {
            assertIEError(.usage, contains: ["--l_rate=\(bad)", "a finite number"]) { _ = try ConfigOverrides.parse(["--l_rate=\(bad)"]) }
        }
        assertIEError(.usage, contains: ["--posterior_smoothing_mm=1,inf,1", "numbers"]) {
            _ = try ConfigOverrides.parse(["--posterior_smoothing_mm=1,inf,1"])
        }
        assertIEError(.usage, contains: ["--optimizer_type=Adamw", "one of Adam, AMSGrad, SGD, RMSprop"]) { _ = try ConfigOverrides.parse(["--optimizer_type=Adamw"]) }
        assertIEError(.usage, contains: ["--num_epochs", "needs a value"]) { _ = try ConfigOverrides.parse(["--num_epochs"]) }
        assertIEError(.usage, contains: ["--no-num_epochs", "closest: --num_epochs"]) { _ = try ConfigOverrides.parse(["--no-num_epochs"]) }
        assertIEError(.usage, contains: ["--outptu_folder=x", "closest: --output_folder"]) {
            _ = try ConfigOverrides.parse(["--outptu_folder=x"], toolOptions: ["output_folder", "dataset"])
        }
        assertIEError(.usage, contains: ["unexpected argument 'stray'"]) { _ = try ConfigOverrides.parse(["stray"]) }
    }

    func testOverridesApplyAndValidate() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        let c = try ModelConfig.load(name: "Demo", settings: s.settings,
                                     overrides: ConfigOverrides.parse(["--num_epochs=3", "--crop_size=32,32,32", "--no-check_exclusive"]))
        XCTAssertEqual(c.numEpochs, 3)
        XCTAssertEqual(c.cropSize, [32, 32, 32])
        XCTAssertEqual(c.epochsToTest, [3])
        XCTAssertFalse(c.checkExclusive)
        // Validation errors caused by an override name the flag.
        assertIEError(.usage, contains: ["--crop_size=32,30,32", "multiples of 16"]) {
            _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(["--crop_size=32,30,32"]))
        }
        // An override can complete a partial chain's missing key.
        try s.model("NoDataBase", "image_channels: [ct]\nground_truth_ids: [a]\nfeature_channels: [4]\ncrop_size: [16, 16, 16]\n")
        try s.model("NoData", "base: NoDataBase\n")
        XCTAssertNoThrow(try ModelConfig.load(name: "NoData", settings: s.settings, overrides: ConfigOverrides.parse(["--dataset_id=D"])))
    }

    func testSplitSeparatesOverridesFromToolOptions() {
        let (o, rest) = ConfigOverrides.split(["--model=HelloWorld", "--num_epochs", "3", "--output_folder=out", "--no-check_exclusive",
                                               "--settings", "s.yml", "--crop_size=16,16,16", "positional", "--verbose"])
        XCTAssertEqual(o, ["--num_epochs", "3", "--no-check_exclusive", "--crop_size=16,16,16"])
        XCTAssertEqual(rest, ["--model=HelloWorld", "--output_folder=out", "--settings", "s.yml", "positional", "--verbose"])
    }
}

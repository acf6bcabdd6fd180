import Foundation
import XCTest
import IECore
@testable import IEConfig

/// What InnerEye's command line accepts is accepted here (SPEC §1.3, §1.4): booleans as its parse_bool reads them
/// (any letter case, `--flag value` too), enums by their values as well as our names; and the bounds and
/// combinations InnerEye's configs refuse are refused when a config loads, naming where the value came from.
final class InnerEyeSpellingTests: XCTestCase {
    func testBooleansInAnyCaseAndTheSpaceForm() throws {
        for word in ["TRUE", "ON", "YES", "tRue", "Y", "T", "oN"] {
            XCTAssertEqual(try ConfigOverrides.parse(["--check_exclusive=\(word)"]).first?.value, .bool(true), word)
        }
        for word in ["FALSE", "OFF", "NO", "fAlse", "N", "F"] {
            XCTAssertEqual(try ConfigOverrides.parse(["--check_exclusive=\(word)"]).first?.value, .bool(false), word)
        }
        // argparse's `--train False` (nargs=None for a default-True flag, nargs='?' for a default-False one).
        let spaced = try ConfigOverrides.parse(["--train", "False", "--inference_on_train_set", "yes", "--num_epochs", "3"])
        XCTAssertEqual(spaced.map(\.value), [.bool(false), .bool(true), .int(3)])
        XCTAssertEqual(spaced.map(\.flag), ["--train=False", "--inference_on_train_set=yes", "--num_epochs=3"])
        // A bare flag still sets it and leaves a following non-boolean alone.
        XCTAssertEqual(try ConfigOverrides.parse(["--train", "--num_epochs=3"]).map(\.value), [.bool(true), .int(3)])
        assertIEError(.usage, contains: ["unexpected argument 'maybe'"]) { _ = try ConfigOverrides.parse(["--train", "maybe"]) }
        // split keeps the value with its flag, so a recorded command line reads back the same.
        let (overrides, rest) = ConfigOverrides.split(["--train", "False", "--model=HelloWorld", "--check_exclusive", "--verbose"])
        XCTAssertEqual(overrides, ["--train", "False", "--check_exclusive"])
        XCTAssertEqual(rest, ["--model=HelloWorld", "--verbose"])
    }

    func testEnumsByInnerEyesValues() throws {
        let cases: [(String, String)] = [
            ("--padding_mode=constant", "Zero"), ("--padding_mode=no_padding", "NoPadding"), ("--padding_mode=edge", "Edge"),
            ("--padding_mode=Zero", "Zero"), ("--norm_method=CT Window", "CtWindow"), ("--norm_method=MRI Window", "MriWindow"),
            ("--norm_method=Simple Norm", "SimpleNorm"), ("--norm_method=Trimmed Norm", "TrimmedNorm"),
            ("--norm_method=None", "None"), ("--norm_method=ctwindow", "CtWindow"),
            ("--loss_type=BinaryCrossEntropyWithLogits", "BCEWithLogits"),
            ("--loss_type=WeightedCrossEntropyWithLogits", "WeightedCrossEntropy"), ("--loss_type=MeanSquaredError", "MSE"),
        ]
        for (flag, canonical) in cases {
            XCTAssertEqual(try ConfigOverrides.parse([flag]).first?.value, .string(canonical), flag)
        }
        // The space form too, as InnerEye's argparse takes it.
        XCTAssertEqual(try ConfigOverrides.parse(["--norm_method", "CT Window"]).first?.value, .string("CtWindow"))
        // What is refused lists what is accepted, InnerEye's values beside our names.
        assertIEError(.usage, contains: ["--padding_mode=wrap", "Zero (constant)", "NoPadding (no_padding)"]) {
            _ = try ConfigOverrides.parse(["--padding_mode=wrap"])
        }
        assertIEError(.usage, contains: ["--norm_method=CT", "CtWindow ('CT Window')"]) { _ = try ConfigOverrides.parse(["--norm_method=CT"]) }
        // Config files take them as well.
        let s = try ConfigScratch()
        try s.model("Values", runnable(with: "norm_method: MRI Window\npadding_mode: constant\n"))
        let config = try ModelConfig.load(name: "Values", settings: s.settings)
        XCTAssertEqual(config.normMethod, "MriWindow")
        XCTAssertEqual(config.paddingMode, "Zero")
    }

    func testScalarLossErrorsNameTheCategorysLosses() throws {
        let s = try ConfigScratch()
        try s.write("configs/classification/Clf.yml", "dataset_id: D\nimage_channels: [img]\nfeature_channels: [4]\n")
        let clf = try ModelConfig.load(name: "Clf", settings: s.settings,
                                       overrides: ConfigOverrides.parse(["--loss_type=WeightedCrossEntropyWithLogits"]))
        XCTAssertEqual(clf.lossType, "WeightedCrossEntropy")
        for loss in ["CrossEntropyWithLogits", "Dice"] {
            do {
                _ = try ModelConfig.load(name: "Clf", settings: s.settings, overrides: ConfigOverrides.parse(["--loss_type=\(loss)"]))
                XCTFail("\(loss) accepted")
            } catch let e as IEError {
                XCTAssertEqual(e.code, .usage)
                XCTAssertTrue(e.description.contains("--loss_type=\(loss)") && e.description.contains("BCEWithLogits")
                              && e.description.contains("classification model"), e.description)
                for segmentation in ["SoftDice", "CrossEntropy,", "Focal", "Mixture"] {
                    XCTAssertFalse(e.description.contains(segmentation), "offers \(segmentation): \(e.description)")
                }
            }
        }
        try s.model("Seg", minimalRunnable)
        assertIEError(.usage, contains: ["--loss_type=MeanSquaredError", "MSE is a classification/regression loss", "SoftDice", "segmentation model"]) {
            _ = try ModelConfig.load(name: "Seg", settings: s.settings, overrides: ConfigOverrides.parse(["--loss_type=MeanSquaredError"]))
        }
    }

    /// InnerEye's bounds and exclusions, refused at load with the flag (not the config file) as the source.
    func testInnerEyeBoundsAndExclusionsNameTheirSource() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        let configFile = s.root + "/configs/segmentation/Demo.yml"
        let cases: [([String], [String])] = [
            (["--architecture=Basic"], ["--architecture=Basic", "UNet3D"]),
            (["--label_smoothing_eps=1.5"], ["--label_smoothing_eps=1.5", "between 0 and 1"]),
            (["--label_smoothing_eps=-0.1"], ["--label_smoothing_eps=-0.1", "between 0 and 1"]),
            (["--loss_type=Focal", "--label_smoothing_eps=0.1"], ["--label_smoothing_eps=0.1", "Focal"]),
            (["--l_rate_warmup_epochs=-1"], ["--l_rate_warmup_epochs=-1", ">= 0"]),
            (["--start_epoch=2"], ["--start_epoch=2", "without run_recovery_id"]),
            (["--local_weights_path=a.ckpt", "--model_id=HelloWorld:1"], ["--model_id=HelloWorld:1", "--local_weights_path=a.ckpt", "only one"]),
            (["--local_weights_path=a.ckpt,b.ckpt"], ["--local_weights_path=a.ckpt,b.ckpt", "2 checkpoints", "expected one"]),
        ]
        for (flags, fragments) in cases {
            do {
                _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(flags))
                XCTFail("\(flags) accepted")
            } catch let e as IEError {
                XCTAssertEqual(e.code, .usage, e.description)
                for f in fragments { XCTAssertTrue(e.description.contains(f), "'\(e.description)' lacks '\(f)'") }
                XCTAssertFalse(e.description.contains(configFile), "a command-line value blamed on the config file: \(e.description)")
            }
        }
        // A value from the file names the file and line.
        try s.model("Smooth", runnable(with: "label_smoothing_eps: 1.5\n"))
        assertIEError(.usage, contains: ["Smooth.yml:6", "label_smoothing_eps"]) { _ = try ModelConfig.load(name: "Smooth", settings: s.settings) }
        // What stays allowed: several weights to evaluate (--no-train), recovery with its start epoch, the bounds.
        for flags in [["--no-train", "--local_weights_path=a.ckpt,b.ckpt"], ["--run_recovery_id=e:e_20260101T000000Z_abcd", "--start_epoch=2"],
                      ["--label_smoothing_eps=1", "--loss_type=CrossEntropy"], ["--l_rate_warmup_epochs=0"], ["--local_weights_path=a.ckpt"]] {
            XCTAssertNoThrow(try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(flags)), "\(flags)")
        }
    }
}

import ArgumentParser
import Foundation
import XCTest
import IECommand
import IEConfig
import IECore

/// A command as the tools declare theirs: own options, the shared groups, and the model parameters.
private struct Probe: ParsableCommand {
    @Option(name: .customLong("model_id")) var modelID: [String] = []
    @Option var mode: Mode = .test
    @OptionGroup var settings: SettingsOption
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var log: LogOptions
    @OptionGroup var parameters: ModelParameters
}

final class CommandScaffoldTests: XCTestCase {
    /// The tool's own options win; everything else is a model parameter, in every spelling SPEC §1.3 allows,
    /// recorded as `--name=value`.
    func testOwnOptionsWinAndTheRestAreParameters() throws {
        let probe = try Probe.parse(["--model_id=A:1", "--num_epochs", "3", "--no-train", "--settings=s.yml", "--l_rate=0.5",
                                     "--model_id", "B:2", "--slurm", "--cluster=gpu", "--threads=2", "--mode=Val",
                                     "--precision=bf16"])
        XCTAssertEqual(probe.modelID, ["A:1", "B:2"])
        XCTAssertEqual(probe.settings.settings, "s.yml")
        XCTAssertEqual(probe.threads.threads, 2)
        XCTAssertEqual(probe.precision.precision, "bf16")
        XCTAssertEqual(probe.mode, .val)
        XCTAssertEqual(try probe.parameters.flags(), ["--num_epochs=3", "--no-train", "--l_rate=0.5", "--slurm", "--cluster=gpu"])
        XCTAssertEqual(try probe.parameters.flags(excluding: ["slurm", "cluster"]), ["--num_epochs=3", "--no-train", "--l_rate=0.5"])
        let overrides = try probe.parameters.overrides()
        XCTAssertEqual(overrides.first { $0.name == "train" }?.value, .bool(false))
        XCTAssertEqual(overrides.first { $0.name == "num_epochs" }?.value, .int(3))
    }

    /// InnerEye's spellings reach the parameters through the tool's parser: a boolean's value as the next argument,
    /// in any letter case, and an enum's InnerEye value with its space.
    func testInnerEyeSpellingsPassTheToolsParser() throws {
        let probe = try Probe.parse(["--train", "FALSE", "--mode=Val", "--check_exclusive", "ON", "--norm_method", "CT Window",
                                     "--threads=1", "--padding_mode=constant"])
        XCTAssertEqual(probe.mode, .val)
        XCTAssertEqual(try probe.parameters.flags(), ["--train=FALSE", "--check_exclusive=ON", "--norm_method=CT Window", "--padding_mode=constant"])
        XCTAssertEqual(try probe.parameters.overrides().map(\.value), [.bool(false), .bool(true), .string("CtWindow"), .string("Zero")])
    }

    /// A misspelt parameter, a bad value, a bad mode and a bad thread count are usage errors naming the argument.
    func testBadArgumentsAreUsageErrorsNamingThem() {
        let cases: [([String], [String])] = [
            (["--num_epoch=3"], ["--num_epoch=3", "closest: --num_epochs"]),
            (["--train=maybe"], ["--train=maybe", "boolean"]),
            (["--mode=Validation"], ["Validation", "Train", "Val", "Test"]),
            (["--threads=0"], ["--threads=0", "expected a positive integer"]),
            (["--precision=fp16"], ["--precision=fp16", "expected fp32 or bf16"]),
            (["--quiet", "--verbose"], ["--quiet and --verbose"]),
        ]
        for (arguments, fragments) in cases {
            XCTAssertThrowsError(try Probe.parse(arguments), "\(arguments)") { error in
                XCTAssertNotEqual(Probe.exitCode(for: error), .success)
                let message = Probe.message(for: error)
                for fragment in fragments { XCTAssertTrue(message.contains(fragment), "\(arguments): '\(message)' lacks '\(fragment)'") }
            }
        }
    }

    func testModeNamesAreTheRunLayoutFolders() {
        XCTAssertEqual(Mode.allCases.map(\.rawValue), ["Train", "Val", "Test"])
        XCTAssertEqual(Mode(argument: "Val"), .val)
        XCTAssertNil(Mode(argument: "val"))
    }

    /// --print_config: each parameter's value and where it comes from, for configs written here (a base and a
    /// child), command-line overrides, defaults and derived defaults.
    func testConfigListingNamesEachValuesSource() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ie-listing-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder + "/configs/segmentation", withIntermediateDirectories: true)
        let parent = folder + "/configs/segmentation/ListingBase.yml"
        let child = folder + "/configs/segmentation/Listing.yml"
        try "image_channels: [ct]\nground_truth_ids: [a, b]\nl_rate: 0.25\ncrop_size: [16, 32, 32]\n"
            .write(toFile: parent, atomically: true, encoding: .utf8)
        try "base: ListingBase\nlocal_dataset: data\nfeature_channels: [4]\nnum_epochs: 9\n"
            .write(toFile: child, atomically: true, encoding: .utf8)
        try "model_configs_dirs: [configs]\n".write(toFile: folder + "/settings.yml", atomically: true, encoding: .utf8)
        let settings = try Settings.load(path: folder + "/settings.yml")
        let config = try ModelConfig.load(name: "Listing", settings: settings,
                                          overrides: ConfigOverrides.parse(["--num_epochs=4", "--random_seed", "7"]))
        let lines = ConfigListing.text(config).split(separator: "\n").map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(lines.first, ["parameter", "value", "source"])
        var rows: [String: (value: String, source: String)] = [:]
        for line in lines.dropFirst() {
            XCTAssertEqual(line.count, 3, "\(line)")
            if line.count == 3 { rows[line[0]] = (line[1], line[2]) }
        }
        XCTAssertEqual(rows.count, ParameterSchema.names.count, "one line per parameter")
        XCTAssertEqual(rows["num_epochs"]?.value, "4")
        XCTAssertEqual(rows["num_epochs"]?.source, "command line (--num_epochs=4)")
        XCTAssertEqual(rows["random_seed"]?.source, "command line (--random_seed=7)")
        XCTAssertEqual(rows["feature_channels"]?.value, "4")
        XCTAssertEqual(rows["feature_channels"]?.source, "config \(child):3")
        XCTAssertEqual(rows["l_rate"]?.value, "0.25")
        XCTAssertEqual(rows["l_rate"]?.source, "base config \(parent):3")
        // test_crop_size follows crop_size (SPEC §1.4); optimizer_type is InnerEye's default.
        XCTAssertEqual(rows["test_crop_size"]?.value, "16,32,32")
        XCTAssertEqual(rows["test_crop_size"]?.source, "derived")
        XCTAssertEqual(rows["optimizer_type"]?.value, "Adam")
        XCTAssertEqual(rows["optimizer_type"]?.source, "default")
    }
}

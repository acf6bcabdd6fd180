import Foundation
import XCTest
import IECore
@testable import IEConfig

/// Configs, settings and overrides that used to crash, hang or silently do the wrong thing (config audit):
/// each is now a one-line usage error (exit 2) naming the file or option and the key.
final class HostileConfigTests: XCTestCase {
    /// Runs `body` and fails when it takes longer than `limit` seconds (the old code crashed or hung instead).
    func assertPrompt(_ limit: Double = 1, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) rethrows {
        let start = Date()
        try body()
        let seconds = Date().timeIntervalSince(start)
        XCTAssertLessThan(seconds, limit, "took \(seconds) s", file: file, line: line)
    }

    // MARK: 1. Deep nesting (a segfault in Yams' recursive composer)

    func testDeeplyNestedModelConfigIsRefused() throws {
        let s = try ConfigScratch()
        try s.model("Deep", "dataset_id: d\nground_truth_ids: " + String(repeating: "[", count: 10000) + String(repeating: "]", count: 10000) + "\n")
        assertPrompt {
            assertIEError(.usage, contains: ["Deep.yml:2", "nested too deeply (more than 64 levels)"]) {
                _ = try ModelConfig.load(name: "Deep", settings: s.settings)
            }
        }
        // Block nesting counts too: compact sequences and indentation.
        try s.model("Dashes", "tail:\n" + String(repeating: "- ", count: 20000) + "1\n")
        assertIEError(.usage, contains: ["Dashes.yml:2", "nested too deeply"]) { _ = try ModelConfig.load(name: "Dashes", settings: s.settings) }
        let indented = (0..<100).map { String(repeating: " ", count: $0) + "k\($0):" }.joined(separator: "\n") + " 1\n"
        try s.model("Indented", indented)
        assertIEError(.usage, contains: ["Indented.yml:", "nested too deeply"]) { _ = try ModelConfig.load(name: "Indented", settings: s.settings) }
    }

    func testDeeplyNestedSettingsAreRefused() throws {
        let s = try ConfigScratch()
        try s.write("deep.yml", "model_configs_dirs: " + String(repeating: "[", count: 20000) + String(repeating: "]", count: 20000) + "\n")
        assertPrompt {
            assertIEError(.usage, contains: ["deep.yml:1", "nested too deeply (more than 64 levels)"]) {
                _ = try Settings.locate(explicitPath: s.root + "/deep.yml")
            }
        }
    }

    func testDeeplyNestedTransformsOverrideIsRefused() throws {
        let value = String(repeating: "[", count: 20000) + String(repeating: "]", count: 20000)
        assertPrompt {
            assertIEError(.usage, contains: ["--train_transforms: YAML nested too deeply (more than 64 levels)"]) {
                _ = try ConfigOverrides.parse(["--train_transforms=" + value])
            }
        }
        XCTAssertNil(ParameterType.transforms.parse(value))
        // Ordinary transforms still parse.
        XCTAssertEqual(try ConfigOverrides.parse(["--train_transforms=[{name: RandomHorizontalFlip, p: 0.5}]"]).first?.value,
                       .string("[{\"name\":\"RandomHorizontalFlip\",\"p\":0.5}]"))
    }

    func testNestingLimitIsExactAndIgnoresStringsAndComments() {
        func flow(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        XCTAssertNil(YAMLGuard.problem(in: flow(64)))
        XCTAssertEqual(YAMLGuard.problem(in: flow(65))?.line, 1)
        XCTAssertNil(YAMLGuard.problem(in: "key: " + flow(63)))                 // the mapping is a level
        XCTAssertNotNil(YAMLGuard.problem(in: "key: " + flow(64)))
        // Brackets that are not structure: quoted, commented, in plain and block scalars.
        let many = String(repeating: "[", count: 200)
        for text in ["a: '\(many)'\n", "a: \"\(many)\\\"\"\n", "a: 1  # \(many)\n", "# \(many)\n", "a: b\(many)\n",
                     "a: |\n  \(many)\n  '\nb: [x]\n", "a: >-\n\n   \(many)\nb: 1\n", "a: 'it''s \(many)'\n"] {
            XCTAssertNil(YAMLGuard.problem(in: text), text)
        }
        // Brackets that are structure even where a naive scan would not see them.
        let deep = flow(100)
        for text in ["a: |\n  'x\nb: \(deep)\n",        // the block scalar ends before b
                     "- a: |\n  b: \(deep)\n",           // b is a key of the mapping at column 2, not block content
                     "a: plain\n--- \(deep)\n",          // a document marker ends the plain scalar
                     "[x 'y, \(deep)]\n",                // a quote inside a plain scalar is not a quote
                     "a: b\r\(deep)\n",                  // a lone CR is a line break
                     "a: [b, c#\(deep)]\n",              // '#' without a space before it is no comment
                     "!t\(deep)\n"] {                    // a tag ends at a flow indicator
            XCTAssertNotNil(YAMLGuard.problem(in: text), text)
        }
    }

    // MARK: 2. Aliases ("billion laughs") and merge keys

    func testBillionLaughsIsRefusedPromptly() throws {
        let s = try ConfigScratch()
        var text = "dataset_id: d\ntrain_transforms: [&a [{name: RandomHorizontalFlip, p: 0.5}]"
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
        for (prev, name) in zip(names, names.dropFirst()) {
            text += ", &\(name) [" + Array(repeating: "*\(prev)", count: 10).joined(separator: ",") + "]"
        }
        text += "]\n"
        try s.write("configs/classification/Laughs.yml", text)
        assertPrompt(0.5) {
            assertIEError(.usage, contains: ["Laughs.yml:2", "YAML alias '*a' is not supported"]) {
                _ = try ModelConfig.load(name: "Laughs", settings: s.settings, requireRunnable: false)
            }
        }
        assertIEError(.usage, contains: ["--val_transforms: YAML alias '*x' is not supported"]) {
            _ = try ConfigOverrides.parse(["--val_transforms=[&x {name: RandomHorizontalFlip}, *x]"])
        }
        try s.write("aliased.yml", "runs_dir: &r runs\ndatasets_dir: *r\n")
        assertIEError(.usage, contains: ["aliased.yml:2", "alias '*r'"]) { _ = try Settings.load(path: s.root + "/aliased.yml") }
        // Anchors alone are harmless.
        try s.model("Anchor", runnable(with: "num_epochs: &n 3\n"))
        XCTAssertEqual(try ModelConfig.load(name: "Anchor", settings: s.settings).numEpochs, 3)
    }

    func testMergeKeyHasItsOwnMessage() throws {
        let s = try ConfigScratch()
        try s.model("Merge", runnable(with: "<<: {num_epochs: 3}\n"))
        assertIEError(.usage, contains: ["Merge.yml:6", "YAML merge key '<<' is not supported"]) {
            _ = try ModelConfig.load(name: "Merge", settings: s.settings)
        }
    }

    // MARK: 3. Nested lists

    func testNestedListsOnlyWhereEntriesAreLists() throws {
        let s = try ConfigScratch()
        try s.model("Nested", runnable(with: "ground_truth_ids: [[a, b], region_b]\n"))
        assertIEError(.usage, contains: ["Nested.yml:6", "ground_truth_ids", "nested list"]) {
            _ = try ModelConfig.load(name: "Nested", settings: s.settings)
        }
        try s.model("NestedInts", runnable(with: "feature_channels: [[8, 16]]\n"))
        assertIEError(.usage, contains: ["NestedInts.yml:6", "feature_channels", "nested list"]) {
            _ = try ModelConfig.load(name: "NestedInts", settings: s.settings)
        }
        try s.model("TooDeep", runnable(with: "mixture_loss_components: [[0.5, [Focal], 0.2]]\n"))
        assertIEError(.usage, contains: ["TooDeep.yml:6", "mixture_loss_components"]) {
            _ = try ModelConfig.load(name: "TooDeep", settings: s.settings)
        }
        // The lists of entries keep taking them.
        try s.model("Lists", runnable(with: "loss_type: Mixture\nmixture_loss_components: [[0.5, Focal, 0.2], [0.5, SoftDice, 0.1]]\nslice_exclusion_rules: [[liver, kidney, False]]\n"))
        let c = try ModelConfig.load(name: "Lists", settings: s.settings)
        XCTAssertEqual(c.value("slice_exclusion_rules"), .strings(["liver:kidney:False"]))
        XCTAssertEqual(try c.mixtureLossComponents().count, 2)
    }

    // MARK: 4. Patch sizes

    func testHugePatchSizesAreRefused() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        func load(_ args: [String]) throws { _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(args)) }
        assertIEError(.usage, contains: ["--crop_size=100000,100000,100000", "got 100000 on an axis, expected at most 32767"]) {
            try load(["--crop_size=100000,100000,100000"])
        }
        assertIEError(.usage, contains: ["--test_crop_size=4096,4096,4096", "voxels per patch, expected at most 134217728"]) {
            try load(["--test_crop_size=4096,4096,4096"])
        }
        assertIEError(.usage, contains: ["--inference_stride_size=16,32,40000", "expected at most 32767"]) {
            try load(["--inference_stride_size=16,32,40000"])
        }
        try s.model("BigFile", runnable(with: "crop_size: [1024, 1024, 1024]\n"))
        assertIEError(.usage, contains: ["BigFile.yml:6: crop_size", "1073741824 voxels per patch"]) {
            _ = try ModelConfig.load(name: "BigFile", settings: s.settings)
        }
        // The largest real patches stay fine (InnerEye's 144,512,512 test crops; 512^3 exactly).
        try load(["--test_crop_size=144,512,512"])
        try load(["--test_crop_size=512,512,512"])
    }

    func testHugeBatchesAreRefused() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        func load(_ args: [String]) throws { _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(args)) }
        // 100000 patches of 16x48x48 would ask for 15 GB of input alone, half-way through the run.
        assertIEError(.usage, contains: ["--train_batch_size=100000", "100000 patches of crop_size 16,48,48", "at most 2147483648"]) {
            try load(["--crop_size=16,48,48", "--train_batch_size=100000"])
        }
        assertIEError(.usage, contains: ["--inference_batch_size=17", "17 patches of test_crop_size 512,512,512"]) {
            try load(["--test_crop_size=512,512,512", "--inference_batch_size=17"])
        }
        // Overflowing Int is a config error too, not a trap.
        assertIEError(.usage, contains: ["--inference_batch_size=9223372036854775807", "voxels per batch"]) {
            try load(["--test_crop_size=16,32,32", "--inference_batch_size=9223372036854775807"])
        }
        // Real sizes stay fine: Lung's 3 patches of 64,224,224, the default 8 of InnerEye's 144,512,512 test crops.
        try load(["--crop_size=64,224,224", "--train_batch_size=3"])
        try load(["--test_crop_size=144,512,512", "--inference_batch_size=8"])
        try load(["--crop_size=64,64,64", "--train_batch_size=8"])
    }

    // MARK: 5. Structure names that collide with output files

    func testStructureNamesWhoseOutputsCollideAreRefused() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        for (ids, twice) in [("segmentation,uncertainty", "segmentation.nii.gz"), ("posterior_region_b,region_b", "posterior_region_b.nii.gz"),
                             ("liver,background", "posterior_background.nii.gz"), ("a,uncertainty", "uncertainty.nii.gz")] {
            assertIEError(.usage, contains: ["--ground_truth_ids=\(ids)", "would write \(twice) twice per subject"]) {
                _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(["--ground_truth_ids=\(ids)"]))
            }
        }
        try s.model("Clash", runnable(with: "ground_truth_ids: [liver, posterior_liver]\n"))
        assertIEError(.usage, contains: ["Clash.yml:6: ground_truth_ids", "posterior_liver.nii.gz twice"]) {
            _ = try ModelConfig.load(name: "Clash", settings: s.settings)
        }
        // Near misses are fine.
        _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(["--ground_truth_ids=segmentation_a,posterior,uncertainty_b"]))
        XCTAssertNil(SubjectOutputNames.collision(classNames: ["background", "region_a", "region_b"]))
    }

    // MARK: 6. Nonsensical numbers

    func testNonsensicalNormalisationAndOptimiserValuesAreRefused() throws {
        let s = try ConfigScratch()
        let cases: [(String, [String])] = [
            ("window: 0\n", ["window", "got 0, expected a width > 0"]),
            ("window: -5\n", ["window", "expected a width > 0"]),
            ("output_range: [1, 1]\n", ["output_range", "got 1.0,1.0, expected two different values"]),
            ("trim_percentiles: [99, 1]\n", ["trim_percentiles", "expected 0 <= lower < upper <= 100"]),
            ("trim_percentiles: [50, 50]\n", ["trim_percentiles", "0 <= lower < upper <= 100"]),
            ("trim_percentiles: [-1, 99]\n", ["trim_percentiles", "0 <= lower < upper <= 100"]),
            ("trim_percentiles: [1, 101]\n", ["trim_percentiles", "0 <= lower < upper <= 100"]),
            ("adam_betas: [1.0, 0.999]\n", ["adam_betas", "expected each beta in [0, 1)"]),
            ("adam_betas: [0.9, -0.1]\n", ["adam_betas", "[0, 1)"]),
            ("weight_decay: -1.0e-4\n", ["weight_decay", "expected a decay >= 0"]),
        ]
        for (i, (text, fragments)) in cases.enumerated() {
            try s.model("Odd\(i)", runnable(with: text))
            assertIEError(.usage, contains: ["Odd\(i).yml:6"] + fragments) { _ = try ModelConfig.load(name: "Odd\(i)", settings: s.settings) }
        }
        assertIEError(.usage, contains: ["--window=0: got 0, expected a width > 0"]) {
            try s.model("Demo", minimalRunnable)
            _ = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(["--window=0"]))
        }
        // The edges that are valid: an inverted output range (LinearTransform handles it), percentiles 0 and 100,
        // beta 0, no weight decay.
        try s.model("Edges", runnable(with: "output_range: [1, -1]\ntrim_percentiles: [0, 100]\nadam_betas: [0, 0.5]\nweight_decay: 0\nwindow: 1\n"))
        let c = try ModelConfig.load(name: "Edges", settings: s.settings)
        XCTAssertEqual(c.outputRange.0, 1)
        XCTAssertEqual(c.weightDecay, 0)
    }
}

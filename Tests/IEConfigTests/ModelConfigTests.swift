import Foundation
import XCTest
import IECore
@testable import IEConfig

final class ModelConfigTests: XCTestCase {
    func testDefaultsAreInnerEyes() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        let c = try ModelConfig.load(name: "Demo", settings: s.settings)
        XCTAssertEqual(c.architecture, "UNet3D")
        XCTAssertEqual(c.kernelSize, 3)
        XCTAssertEqual(c.numDownsamplingPaths, 4)
        XCTAssertEqual(c.inferenceBatchSize, 8)
        XCTAssertEqual(c.lossType, "SoftDice")
        XCTAssertEqual(c.focalLossGamma, 1.0)
        XCTAssertEqual(c.normMethod, "CtWindow")
        XCTAssertEqual(c.window, 600)
        XCTAssertEqual(c.level, 50)
        XCTAssertEqual(c.outputRange.0, -1); XCTAssertEqual(c.outputRange.1, 1)
        XCTAssertEqual(c.sharpen, 0.9)
        XCTAssertEqual(c.trimPercentiles.0, 1); XCTAssertEqual(c.trimPercentiles.1, 99)
        XCTAssertEqual(c.paddingMode, "Edge")
        XCTAssertEqual(c.numEpochs, 100)
        XCTAssertEqual(c.trainBatchSize, 4)
        XCTAssertEqual(c.lRate, 1e-4)
        XCTAssertEqual(c.minLRate, 0)
        XCTAssertEqual(c.lRateScheduler, "Polynomial")
        XCTAssertEqual(c.optimizerType, "Adam")
        XCTAssertEqual(c.adamBetas.0, 0.9); XCTAssertEqual(c.adamBetas.1, 0.999)
        XCTAssertEqual(c.optEps, 1e-4)
        XCTAssertEqual(c.weightDecay, 1e-4)
        XCTAssertEqual(c.momentum, 0.6)
        XCTAssertEqual(c.randomSeed, 42)
        XCTAssertEqual(c.numberOfCrossValidationSplits, 0)
        XCTAssertEqual(c.crossValidationSplitIndex, -1)
        XCTAssertEqual(c.ensembleAggregationType, "Average")
        XCTAssertTrue(c.checkExclusive)
        XCTAssertFalse(c.allowIncompleteLabels)
        XCTAssertFalse(c.applyAugmentations)
        XCTAssertEqual(c.saveStartEpoch, 100)
        XCTAssertEqual(c.saveStepEpochs, 50)
        XCTAssertTrue(c.inferenceOnValSet)
        XCTAssertTrue(c.inferenceOnTestSet)
        XCTAssertEqual(c.datasetCSV, "dataset.csv")
        XCTAssertTrue(c.train)
        XCTAssertEqual(c.numNodes, 1)
        XCTAssertFalse(c.slurm)
        // Derived defaults.
        XCTAssertEqual(c.testCropSize, [16, 32, 32])
        XCTAssertEqual(c.inferenceStrideSize, [16, 32, 32])
        XCTAssertEqual(c.epochsToTest, [100])
        XCTAssertEqual(c.groundTruthDisplayNames, ["liver", "kidney"])
        XCTAssertNil(c.classWeights)
        XCTAssertEqual(c.numberOfClasses, 3)
        XCTAssertEqual(try c.datasetCSVPath(settings: s.settings), s.root + "/datasets/Demo/dataset.csv")
    }

    func testInheritanceIsRecursiveAndChildWins() throws {
        let s = try ConfigScratch()
        try s.model("RootBase", "image_channels: [ct]\nground_truth_ids: [a, b]\nfeature_channels: [32]\ncrop_size: [64, 224, 224]\nnum_epochs: 120\nl_rate: 1.0e-3\n")
        try s.model("MiddleBase", "base: RootBase\nnum_epochs: 50\nwindow: 400\n")
        try s.model("Leaf", "base: MiddleBase\ndataset_id: X\nwindow: 350\n")
        let c = try ModelConfig.load(name: "Leaf", settings: s.settings)
        XCTAssertEqual(c.numEpochs, 50)        // from the middle
        XCTAssertEqual(c.window, 350)          // leaf wins over middle
        XCTAssertEqual(c.lRate, 1e-3)          // from the root
        XCTAssertEqual(c.cropSize, [64, 224, 224])
        XCTAssertEqual(c.inheritanceChain.count, 3)
        XCTAssertEqual(c.name, "Leaf")
    }

    func testInheritanceCycleIsAnError() throws {
        let s = try ConfigScratch()
        try s.model("A", "base: B\n")
        try s.model("B", "base: C\n")
        try s.model("C", "base: A\n")
        assertIEError(.usage, contains: ["cycle", "A -> B -> C -> A"]) { _ = try ModelConfig.load(name: "A", settings: s.settings) }
        try s.model("Self", "base: Self\n")
        assertIEError(.usage, contains: ["cycle", "Self -> Self"]) { _ = try ModelConfig.load(name: "Self", settings: s.settings) }
    }

    func testMissingBaseNamesTheLine() throws {
        let s = try ConfigScratch()
        try s.model("Child", "dataset_id: X\nbase: ProstateBsae\n")
        try s.model("ProstateBase", "image_channels: [ct]\n")
        assertIEError(.usage, contains: ["Child.yml:2", "base: no model config 'ProstateBsae'", "closest: ProstateBase"]) {
            _ = try ModelConfig.load(name: "Child", settings: s.settings)
        }
    }

    func testPartialConfigCannotRun() throws {
        let s = try ConfigScratch()
        try s.model("ProstateBase", "image_channels: [ct]\nground_truth_ids: [a]\nfeature_channels: [32]\ncrop_size: [64, 224, 224]\n")
        assertIEError(.usage, contains: ["ProstateBase is partial: it lacks dataset_id or local_dataset", "ProstateBase.yml"]) {
            _ = try ModelConfig.load(name: "ProstateBase", settings: s.settings)
        }
        // Not runnable is fine when the caller only needs the values.
        let c = try ModelConfig.load(name: "ProstateBase", settings: s.settings, requireRunnable: false)
        XCTAssertTrue(c.isPartial)
        try s.model("Incomplete", "dataset_id: X\nimage_channels: [ct]\n")
        assertIEError(.usage, contains: ["Incomplete lacks", "ground_truth_ids", "feature_channels", "crop_size"]) {
            _ = try ModelConfig.load(name: "Incomplete", settings: s.settings)
        }
    }

    func testUnknownKeyNamesFileLineKeyAndClosest() throws {
        let s = try ConfigScratch()
        try s.model("Typo", minimalRunnable + "num_epoch: 3\n")
        assertIEError(.usage, contains: ["Typo.yml:6", "num_epoch", "closest known key: num_epochs"]) {
            _ = try ModelConfig.load(name: "Typo", settings: s.settings)
        }
    }

    func testTypesAreCheckedInFiles() throws {
        let s = try ConfigScratch()
        let cases: [(String, [String])] = [
            ("num_epochs: ten\n", ["num_epochs", "'ten'", "an integer"]),
            ("l_rate: fast\n", ["l_rate", "a finite number"]),
            ("l_rate: .inf\n", ["l_rate", "a finite number"]),
            ("l_rate: .nan\n", ["l_rate", "a finite number"]),
            ("check_exclusive: maybe\n", ["check_exclusive", "a boolean"]),
            ("loss_type: Dice\n", ["loss_type", "SoftDice"]),
            ("crop_size: [16, 32]\n", ["crop_size", "(Z,Y,X) triple"]),
            ("feature_channels: [8, x]\n", ["feature_channels", "integers"]),
            ("adam_betas: [0.9]\n", ["adam_betas", "2 comma-separated numbers"]),
            ("num_epochs: null\n", ["num_epochs", "an integer"]),
            // Names that become file names (issue 11: a subject or structure name could escape the run folder).
            ("ground_truth_ids: [\"../../escape\"]\n", ["ground_truth_ids", "usable as file names"]),
            ("val_subjects: [1, a/b]\n", ["val_subjects", "usable as file names"]),
            ("image_channels: [\"..\"]\n", ["image_channels", "usable as file names"]),
            ("subject_ids_for_test_only: [\"a\\tb\"]\n", ["subject_ids_for_test_only", "usable as file names"]),
        ]
        for (i, (line, fragments)) in cases.enumerated() {
            try s.model("Bad\(i)", runnable(with: line))
            assertIEError(.usage, contains: ["Bad\(i).yml:6"] + fragments) { _ = try ModelConfig.load(name: "Bad\(i)", settings: s.settings) }
        }
    }

    func testCrossParameterValidation() throws {
        let s = try ConfigScratch()
        let cases: [(String, [String])] = [
            ("crop_size: [16, 30, 32]\n", ["crop_size", "multiples of 16"]),
            ("kernel_size: 4\n", ["kernel_size", "odd"]),
            ("class_weights: [0.5, 0.5]\n", ["class_weights", "expected 3"]),
            ("class_weights: [0.2, 0.2, 0.2]\n", ["class_weights", "summing to 1"]),
            ("loss_type: Mixture\n", ["Mixture needs mixture_loss_components"]),
            ("mixture_loss_components: [[0.5, Dice, 0.2]]\n", ["mixture_loss_components", "weight:loss_type:class_weight_power"]),
            ("number_of_cross_validation_splits: 1\n", ["number_of_cross_validation_splits", "at least 2"]),
            ("number_of_cross_validation_splits: 3\ncross_validation_split_index: 3\n", ["cross_validation_split_index", "below"]),
            ("cross_validation_split_index: 0\n", ["cross_validation_split_index", "expected -1"]),
            ("min_l_rate: 1.0\n", ["min_l_rate", "l_rate"]),
            ("mask_id: ct\n", ["mask_id", "separate"]),
            ("l_rate_scheduler: MultiStep\n", ["MultiStep needs l_rate_multi_step_milestones"]),
            ("largest_connected_component_foreground_classes: [spleen]\n", ["spleen", "not in ground_truth_ids"]),
            ("test_crop_size: [16, 32, 32]\ninference_stride_size: [32, 32, 32]\n", ["inference_stride_size", "at most test_crop_size"]),
            ("posterior_smoothing_mm: [1.0e30, 1, 1]\n", ["posterior_smoothing_mm", "between 0 and 1000"]),
            ("posterior_smoothing_mm: [1, -2, 1]\n", ["posterior_smoothing_mm", "between 0 and 1000"]),
        ]
        for (i, (text, fragments)) in cases.enumerated() {
            try s.model("Invalid\(i)", runnable(with: text))
            assertIEError(.usage, contains: fragments) { _ = try ModelConfig.load(name: "Invalid\(i)", settings: s.settings) }
        }
        // The error points at the line that set the value.
        try s.model("Where", minimalRunnable + "kernel_size: 4\n")
        assertIEError(.usage, contains: ["Where.yml:6: kernel_size"]) { _ = try ModelConfig.load(name: "Where", settings: s.settings) }
    }

    func testMixtureAndComparisonRunsParse() throws {
        let s = try ConfigScratch()
        try s.model("Mix", minimalRunnable + "loss_type: Mixture\nmixture_loss_components: [[0.5, Focal, 0.2], [0.5, SoftDice, 0.1]]\ncomparison_runs: {Baseline: exp:exp_20260101T000000Z_abcd}\n")
        let c = try ModelConfig.load(name: "Mix", settings: s.settings)
        XCTAssertEqual(try c.mixtureLossComponents(), [MixtureLossComponent(weight: 0.5, lossType: "Focal", classWeightPower: 0.2),
                                                   MixtureLossComponent(weight: 0.5, lossType: "SoftDice", classWeightPower: 0.1)])
        let runs = try c.comparisonRuns()
        XCTAssertEqual(runs.count, 1)
        XCTAssertEqual(runs[0].name, "Baseline")
        XCTAssertEqual(runs[0].runRecoveryId, "exp:exp_20260101T000000Z_abcd")
    }

    func testModelSearchPathFirstMatchWins() throws {
        let s = try ConfigScratch()
        try s.write("local/segmentation/Demo.yml", minimalRunnable + "num_epochs: 7\n")
        try s.model("Demo", minimalRunnable + "num_epochs: 9\n")
        var settings = s.settings
        settings.modelConfigsDirs = [s.root + "/local", s.root + "/configs"]
        XCTAssertEqual(try ModelConfig.load(name: "Demo", settings: settings).numEpochs, 7)
        settings.modelConfigsDirs = [s.root + "/configs", s.root + "/local"]
        XCTAssertEqual(try ModelConfig.load(name: "Demo", settings: settings).numEpochs, 9)
        assertIEError(.usage, contains: ["no model config 'Dem0'", "closest: Demo"]) { _ = try ModelConfig.load(name: "Dem0", settings: settings) }
    }

    func testLocalDatasetIsRelativeToItsFile() throws {
        let s = try ConfigScratch()
        try s.model("Local", "local_dataset: ../../data/mine\nimage_channels: [ct]\nground_truth_ids: [a]\nfeature_channels: [4]\ncrop_size: [16, 16, 16]\n")
        let c = try ModelConfig.load(name: "Local", settings: s.settings)
        XCTAssertEqual(try c.datasetCSVPath(settings: s.settings), s.root + "/data/mine/dataset.csv")
        let o = try ModelConfig.load(name: "Local", settings: s.settings, overrides: ConfigOverrides.parse(["--local_dataset=elsewhere"]))
        XCTAssertEqual(try o.datasetFolder(settings: s.settings, workingDirectory: "/tmp/wd"), "/tmp/wd/elsewhere")
    }

    func testArgumentsListEveryParameterInSchemaOrder() throws {
        let s = try ConfigScratch()
        try s.model("Demo", minimalRunnable)
        let c = try ModelConfig.load(name: "Demo", settings: s.settings, overrides: ConfigOverrides.parse(["--l_rate=0.01"]))
        let args = c.orderedArguments
        XCTAssertEqual(args.map(\.name), ParameterSchema.names)
        let dict = Dictionary(uniqueKeysWithValues: args.map { ($0.name, $0.value) })
        XCTAssertEqual(dict["l_rate"], "0.01")
        XCTAssertEqual(dict["crop_size"], "16,32,32")
        XCTAssertEqual(dict["check_exclusive"], "True")
        XCTAssertEqual(dict["mask_id"], "None")
        XCTAssertEqual(dict["image_channels"], "ct")
        // Every printed value parses back to the same value (args.txt can be replayed as overrides).
        for spec in ParameterSchema.parameters where !c.value(spec.name).isNone {
            XCTAssertEqual(spec.type.parse(c.value(spec.name).description), c.value(spec.name), spec.name)
        }
    }

    /// InnerEye's Base classes: per-structure lists derived from ground_truth_ids unless set; an explicit list of
    /// the wrong length is an error naming the file, the key and both lengths.
    func testBaseClassesDeriveThePerStructureLists() throws {
        let s = try ConfigScratch()
        try s.model("HNBase", "structure_defaults: HeadAndNeckBase\nimage_channels: [ct]\ncrop_size: [16, 16, 16]\n")
        try s.model("One", "base: HNBase\ndataset_id: d\nground_truth_ids: [brainstem]\n")
        let one = try ModelConfig.load(name: "One", settings: s.settings)
        XCTAssertEqual(one.classWeights ?? [], [0.25, 0.75])
        XCTAssertEqual(one.featureChannels, [32])
        let many = (0..<21).map { "s\($0)" }
        try s.model("Many", "base: HNBase\ndataset_id: d\nground_truth_ids: [\(many.joined(separator: ", "))]\n")
        let big = try ModelConfig.load(name: "Many", settings: s.settings)
        XCTAssertEqual(big.featureChannels, [26])
        XCTAssertEqual(big.classWeights?.count, 22)
        XCTAssertEqual(big.classWeights?[1] ?? 0, 0.98 / 21, accuracy: 1e-15)
        // A command-line override of the structures re-derives the lists.
        let overridden = try ModelConfig.load(name: "One", settings: s.settings,
                                              overrides: ConfigOverrides.parse(["--ground_truth_ids=a,b"]))
        XCTAssertEqual(overridden.classWeights ?? [], [0.02, 0.49, 0.49])
        XCTAssertEqual(overridden.groundTruthDisplayNames, ["zz_a", "zz_b"])
        // Explicit lists win; a wrong length names the file, the key and both counts.
        try s.model("Explicit", "base: HNBase\ndataset_id: d\nground_truth_ids: [a, b]\nclass_weights: [0.5, 0.25, 0.25]\nfeature_channels: [8]\n")
        let explicit = try ModelConfig.load(name: "Explicit", settings: s.settings)
        XCTAssertEqual(explicit.classWeights ?? [], [0.5, 0.25, 0.25])
        XCTAssertEqual(explicit.featureChannels, [8])
        try s.model("Wrong", "base: HNBase\ndataset_id: d\nground_truth_ids: [a, b]\nclass_weights: [0.2, 0.2, 0.2, 0.4]\n")
        assertIEError(.usage, contains: ["Wrong.yml:4", "class_weights", "got 4 weights, expected 3"]) {
            _ = try ModelConfig.load(name: "Wrong", settings: s.settings)
        }
        try s.model("WrongNames", "base: HNBase\ndataset_id: d\nground_truth_ids: [a, b]\nground_truth_ids_display_names: [A]\n")
        assertIEError(.usage, contains: ["WrongNames.yml:4", "got 1 names, expected one per ground_truth_ids entry (2)"]) {
            _ = try ModelConfig.load(name: "WrongNames", settings: s.settings)
        }
        // Without structure_defaults nothing is derived (InnerEye's SegmentationModelBase).
        try s.model("Plain", "dataset_id: d\nimage_channels: [ct]\nground_truth_ids: [a]\nfeature_channels: [4]\ncrop_size: [16, 16, 16]\n")
        XCTAssertNil(try ModelConfig.load(name: "Plain", settings: s.settings).classWeights)
    }

    func testShippedConfigs() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let settings = try Settings.load(path: repo + "/settings.yml")
        XCTAssertEqual(settings.modelConfigsDirs, [repo + "/configs"])
        XCTAssertEqual(settings.runsDir, repo + "/runs")
        XCTAssertNil(settings.slurm.cpusPerTask, "resources left to the cluster's defaults (issue 10 item 8)")
        XCTAssertNil(settings.slurm.account)
        for name in ["HelloWorld", "Prostate", "HeadAndNeck", "HeadAndNeckPaper", "Lung"] {
            XCTAssertNoThrow(try ModelConfig.load(name: name, settings: settings), name)
        }
        for name in ["ProstateBase", "HeadAndNeckBase"] {
            assertIEError(.usage, contains: ["\(name) is partial: it lacks dataset_id or local_dataset"]) {
                _ = try ModelConfig.load(name: name, settings: settings)
            }
        }
        // The seed's Building Models examples, verbatim: the Base classes derive every per-structure list.
        let prostate = try ModelConfig.load(name: "Prostate", settings: settings)
        XCTAssertEqual(prostate.groundTruthIds, ["femur_r", "femur_l", "rectum", "prostate"])
        XCTAssertEqual(prostate.groundTruthDisplayNames, ["zz_femur_r", "zz_femur_l", "zz_rectum", "zz_prostate"])
        XCTAssertEqual(prostate.classWeights ?? [], [0.02, 0.245, 0.245, 0.245, 0.245])
        XCTAssertEqual(prostate.largestConnectedComponentClasses, ["femur_r", "femur_l", "rectum", "prostate"])
        XCTAssertEqual(prostate.cropSize, [64, 224, 224])
        XCTAssertEqual(prostate.testCropSize, [128, 512, 512])
        XCTAssertEqual(prostate.featureChannels, [32])
        XCTAssertEqual(prostate.numEpochs, 120)
        XCTAssertEqual(prostate.datasetId, "Prostate")
        let lung = try ModelConfig.load(name: "Lung", settings: settings)
        XCTAssertEqual(lung.groundTruthIds, ["spinalcord", "lung_r", "lung_l", "heart", "esophagus"])
        // InnerEye's current Lung.py.
        XCTAssertEqual(lung.level, -500)
        XCTAssertEqual(lung.window, 2200)
        XCTAssertEqual(lung.lossType, "SoftDice")
        XCTAssertEqual(lung.numEpochs, 300)
        XCTAssertEqual(lung.trainBatchSize, 3)
        XCTAssertEqual(lung.testCropSize, [112, 512, 512])
        XCTAssertFalse(lung.checkExclusive)
        let hn = try ModelConfig.load(name: "HeadAndNeck", settings: settings)
        XCTAssertEqual(hn.cropSize, [96, 288, 288])
        XCTAssertEqual(hn.groundTruthIds, ["parotid_l", "parotid_r", "smg_l", "smg_r", "spinal_cord"])
        XCTAssertEqual(hn.classWeights ?? [], [0.02, 0.196, 0.196, 0.196, 0.196, 0.196])
        XCTAssertEqual(hn.featureChannels, [32])
        XCTAssertEqual(hn.groundTruthDisplayNames.first, "zz_parotid_l")
        let hello = try ModelConfig.load(name: "HelloWorld", settings: settings)
        XCTAssertEqual(hello.groundTruthIds, ["region_a", "region_b"])
        XCTAssertEqual(hello.maskId, "mask")
        XCTAssertEqual(try hello.datasetCSVPath(settings: settings), repo + "/datasets/HelloWorld/dataset.csv")
    }
}

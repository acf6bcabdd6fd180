import Foundation
import XCTest
import IECore
@testable import IEConfig

/// Classification and regression configs: found under classification/, their category, required keys, the
/// scalar keys and losses checked against the category, transform lists parsed from YAML and the command line.
final class ScalarConfigTests: XCTestCase {
    let classifier = """
        dataset_id: Demo
        image_channels: [image]
        feature_channels: [8, 16]
        class_names: [left, right]
        train_transforms:
          - {name: RandomHorizontalFlip, p: 0.5}
          - name: RandomAffine
            degrees: 10
            translate: [0.05, 0.1]
        """

    func testClassificationFolderCategoryAndDefaults() throws {
        let s = try ConfigScratch()
        try s.write("configs/classification/Clf.yml", classifier)
        try s.write("configs/classification/Reg.yml", "base: Clf\nmodel_category: Regression\nclass_names: null\n")
        let c = try ModelConfig.load(name: "Clf", settings: s.settings)
        XCTAssertEqual(c.category, .classification)
        XCTAssertEqual(c.lossType, "BCEWithLogits")
        XCTAssertEqual(c.scalarOutputs, 2)
        XCTAssertEqual(c.labelValueColumn, "label")
        XCTAssertNil(c.labelChannels)
        let transforms = try XCTUnwrap(c.transformRecords("train_transforms") as? [[String: Any]])
        XCTAssertEqual(transforms.count, 2)
        XCTAssertEqual(transforms[1]["name"] as? String, "RandomAffine")
        XCTAssertEqual(transforms[1]["translate"] as? [Double], [0.05, 0.1])
        XCTAssertEqual((c.transformRecords("val_transforms") as? [Any])?.count, 0)
        let r = try ModelConfig.load(name: "Reg", settings: s.settings)
        XCTAssertEqual(r.category, .regression)
        XCTAssertEqual(r.lossType, "MSE")
        XCTAssertTrue(ModelConfig.availableModels(settings: s.settings).contains("Clf"))
        // Segmentation configs keep their defaults and requirements.
        try s.model("Seg", minimalRunnable)
        XCTAssertEqual(try ModelConfig.load(name: "Seg", settings: s.settings).lossType, "SoftDice")
    }

    func testCommandLineTransformsAndKeyChecks() throws {
        let s = try ConfigScratch()
        try s.write("configs/classification/Clf.yml", classifier)
        let flow = try ConfigOverrides.parse(["--val_transforms=[{name: CenterCrop, size: [28, 28]}]"])
        let c = try ModelConfig.load(name: "Clf", settings: s.settings, overrides: flow)
        XCTAssertEqual((c.transformRecords("val_transforms") as? [[String: Any]])?.first?["size"] as? [Int], [28, 28])
        assertIEError(.usage, contains: ["--val_transforms", "list of mappings"]) {
            _ = try ConfigOverrides.parse(["--val_transforms=RandomHorizontalFlip"])
        }
        assertIEError(.usage, contains: ["loss_type", "SoftDice is a segmentation loss"]) {
            _ = try ModelConfig.load(name: "Clf", settings: s.settings, overrides: try ConfigOverrides.parse(["--loss_type=SoftDice"]))
        }
        assertIEError(.usage, contains: ["MSE is a regression loss"]) {
            _ = try ModelConfig.load(name: "Clf", settings: s.settings, overrides: try ConfigOverrides.parse(["--loss_type=MSE"]))
        }
        assertIEError(.usage, contains: ["image_size", "expected [H, W] or [D, H, W]"]) {
            _ = try ModelConfig.load(name: "Clf", settings: s.settings, overrides: try ConfigOverrides.parse(["--image_size=32"]))
        }
        for (size, batch, limit) in [("100000,100000", "1", "512^3"), ("1024,1024,1024", "1", "512^3"), ("512,512", "100000", "2^31")] {
            assertIEError(.usage, contains: [limit]) {
                _ = try ModelConfig.load(name: "Clf", settings: s.settings,
                                         overrides: try ConfigOverrides.parse(["--image_size=\(size)", "--train_batch_size=\(batch)"]))
            }
        }
        _ = try ModelConfig.load(name: "Clf", settings: s.settings, overrides: try ConfigOverrides.parse(["--image_size=512,512", "--train_batch_size=64"]))
        try s.model("Seg", minimalRunnable + "\nclass_names: [a, b]\n")
        assertIEError(.usage, contains: ["Seg.yml:", "class_names", "only in configs under classification/"]) {
            _ = try ModelConfig.load(name: "Seg", settings: s.settings)
        }
        try s.write("configs/classification/Bad.yml", "dataset_id: Demo\nimage_channels: [image]\nfeature_channels: [8]\ntrain_transforms: {name: X}\n")
        assertIEError(.usage, contains: ["Bad.yml:4", "train_transforms", "list of mappings"]) {
            _ = try ModelConfig.load(name: "Bad", settings: s.settings)
        }
        try s.write("configs/classification/Lacking.yml", "dataset_id: Demo\nimage_channels: [image]\n")
        assertIEError(.usage, contains: ["Lacking lacks feature_channels"]) { _ = try ModelConfig.load(name: "Lacking", settings: s.settings) }
    }
}

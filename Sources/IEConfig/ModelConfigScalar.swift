import Foundation
import IECore

/// The kind of a model (SPEC §13): segmentation (the UNet3D) or a scalar model (an image classifier or regressor).
public enum ModelCategory: String, Sendable, CaseIterable {
    case segmentation = "Segmentation", classification = "Classification", regression = "Regression"

    /// The folders of each model_configs_dirs entry that hold configs, in search order.
    public static let configFolders = ["segmentation", "classification"]

    public var isScalar: Bool { self != .segmentation }

    /// The loss_type values a model of this category takes (SPEC §1.4, §13.1), the default first.
    public var lossTypes: [String] {
        switch self {
        case .segmentation: return ParameterSchema.lossTypes
        case .classification: return ["BCEWithLogits", "WeightedCrossEntropy"]
        case .regression: return ["MSE"]
        }
    }

    public var defaultLossType: String {
        switch self {
        case .segmentation: return "SoftDice"
        case .classification: return "BCEWithLogits"
        case .regression: return "MSE"
        }
    }
}

extension ModelConfig {
    /// `model_category` when set, else from the folder of the config file (or of the file its base chain starts
    /// from): classification/ gives Classification, anything else Segmentation.
    public var category: ModelCategory {
        if case .string(let text) = value("model_category"), let category = ModelCategory(rawValue: text) { return category }
        for path in inheritanceChain.reversed() + (file.map { [$0] } ?? []) {
            if URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent == "classification" { return .classification }
        }
        return .segmentation
    }

    /// Outputs of a scalar model: the class count of a multi-label model, else 1.
    public var scalarOutputs: Int { max(classNames.count, 1) }

    public var classNames: [String] { strings("class_names") ?? [] }
    public var labelChannels: [String]? { strings("label_channels") }
    public var labelValueColumn: String { string("label_value_column") ?? "label" }
    public var numericalColumns: [String] { strings("numerical_columns") ?? [] }
    public var categoricalColumns: [String] { strings("categorical_columns") ?? [] }
    public var nonImageFeatureChannels: [String]? { strings("non_image_feature_channels") }
    public var imageSize: [Int]? { if case .ints(let l) = value("image_size") { return l } else { return nil } }
    public var hiddenUnits: Int { if case .int(let n) = value("hidden_units") { return n } else { return 32 } }

    /// The transform list of `key` (train_transforms / val_transforms) as loaded YAML/JSON, empty when unset.
    public func transformRecords(_ key: String) -> Any {
        guard case .string(let json) = value(key), let data = json.data(using: .utf8),
              let loaded = try? JSONSerialization.jsonObject(with: data) else { return [Any]() }
        return loaded
    }

    /// Where a key was set, for errors about its contents ("file:line" or the flag).
    public func sourceDescription(_ key: String) -> String? {
        guard let s = sources[key] else { return file }
        if let flag = s.flag { return flag }
        return s.file.map { f in s.line.map { "\(f):\($0)" } ?? f }
    }

    /// The checks that depend on the category: scalar models take scalar losses and no segmentation keys, and
    /// segmentation models none of the scalar keys.
    func validateCategory() throws {
        let loss = lossType
        let allowed = category.lossTypes
        if !allowed.contains(loss) {
            let kind = ParameterSchema.lossTypes.contains(loss) ? "a segmentation loss"
                : !ParameterSchema.scalarLossTypes.contains(loss) ? "not a loss this toolbox has"
                : !category.isScalar ? "a classification/regression loss"
                : loss == "MSE" ? "a regression loss" : "a classification loss"
            let expected = allowed.count == 1 ? allowed[0] : "one of " + allowed.joined(separator: ", ")
            let innerEye = allowed.flatMap(ChoiceAliases.aliases(of:))
            throw fail("loss_type", "\(loss) is \(kind), expected \(expected) for a \(category.rawValue.lowercased()) model"
                                    + (innerEye.isEmpty ? "" : " (InnerEye's \(innerEye.joined(separator: ", ")) too)"))
        }
        if category.isScalar {
            if let size = imageSize, !(2...3).contains(size.count) || size.contains(where: { $0 < 1 }) {
                throw fail("image_size", "got \(size.map(String.init).joined(separator: ",")), expected [H, W] or [D, H, W] of positive sizes")
            }
            // The same bounds as a segmentation patch: a typo is a config error, not an allocation that aborts.
            if let size = imageSize, size.contains(where: { $0 > ModelConfig.maxPatchAxis })
                || size.reduce(1, { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max : $0 * $1 }) > ModelConfig.maxPatchVoxels {
                throw fail("image_size", "got \(size.map(String.init).joined(separator: ",")), expected at most \(ModelConfig.maxPatchAxis) "
                                         + "per axis and \(ModelConfig.maxPatchVoxels) (512^3) voxels")
            }
            if hiddenUnits < 1 { throw fail("hidden_units", "got \(hiddenUnits), expected a positive integer") }
            if category == .regression && !classNames.isEmpty {
                throw fail("class_names", "a regression model has one output, expected no class_names")
            }
        } else {
            for key in ["label_channels", "numerical_columns", "categorical_columns", "non_image_feature_channels", "class_names",
                        "image_size", "train_transforms", "val_transforms"] where isSet(key) {
                throw fail(key, "is a classification/regression key, expected it only in configs under classification/ (or with model_category)")
            }
        }
    }
}

/// The names of the per-subject inference files of SPEC §5, in one place: inference writes them
/// (IETrain's SubjectOutputs) and config loading refuses structure names whose files would collide
/// (IEConfig's ModelConfig.validate), so both must follow the same rule.
public enum SubjectOutputNames {
    /// The name of class 0, before the structures of ground_truth_ids (InnerEye's "background").
    public static let backgroundClass = "background"
    public static let segmentation = "segmentation.nii.gz"
    public static let uncertainty = "uncertainty.nii.gz"
    public static func posterior(_ className: String) -> String { "posterior_\(className).nii.gz" }
    public static func binaryMask(_ className: String) -> String { "\(className).nii.gz" }

    /// Every file written for these classes (background first), in writing order: segmentation, the posteriors,
    /// the binary masks, uncertainty.
    public static func fileNames(classNames: [String]) -> [String] {
        [segmentation] + classNames.map(posterior) + classNames.map(binaryMask) + [uncertainty]
    }

    /// A file name that these classes' outputs would write twice (one overwriting the other), or nil.
    public static func collision(classNames: [String]) -> String? {
        var seen = Set<String>()
        for name in fileNames(classNames: classNames) where !seen.insert(name).inserted { return name }
        return nil
    }
}

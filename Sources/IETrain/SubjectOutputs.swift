// The per-subject inference files of SPEC §5 (InnerEye's store_inference_results): segmentation.nii.gz
// (uint8 class indices), posterior_<class>.nii.gz (uint8, p*255 truncated) and <class>.nii.gz (binary
// uint8) for every class including background, and uncertainty.nii.gz (normalised entropy * 255,
// truncated). Geometry (spacing, origin, direction, qform/sform) comes from the first image channel.
import Foundation
import IECore
import IEImage

public enum SubjectOutputs {
    /// The file names written for these classes (background first), in writing order.
    public static func fileNames(classNames: [String]) -> [String] {
        ["segmentation.nii.gz"] + classNames.map { "posterior_\($0).nii.gz" } + classNames.map { "\($0).nii.gz" }
            + ["uncertainty.nii.gz"]
    }

    /// Writes the files into `directory` (created if needed), each atomically.
    /// - posteriors: [K, Z, Y, X] after post-processing; labels: [Z, Y, X] class indices;
    ///   classNames: K names, background first (InnerEye calls it "background").
    public static func write<T>(directory: String, posteriors: [Float], labels: [UInt8], classNames: [String],
                                reference: Volume<T>) throws {
        let k = classNames.count, n = reference.count
        guard k >= 2 else { throw IEError.usage("\(k) class names, expected background and at least one structure") }
        guard Set(classNames).count == k, classNames.allSatisfy({ SafeName.problem($0) == nil }) else {
            throw IEError.usage("class names \(classNames) must be distinct file-name-safe names")
        }
        guard posteriors.count == k * n, labels.count == n else {
            throw IEError.failure("posteriors (\(posteriors.count)) / labels (\(labels.count)) do not match \(k) classes x \(reference.shape)")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

        try NIfTI.write(reference.with(data: labels), to: path("segmentation.nii.gz"), datatype: .uint8)
        for (c, name) in classNames.enumerated() {
            let posterior = PostProcessing.toUInt8(posteriors[(c * n)..<((c + 1) * n)])
            try NIfTI.write(reference.with(data: posterior), to: path("posterior_\(name).nii.gz"), datatype: .uint8)
        }
        for (c, name) in classNames.enumerated() {
            let binary = labels.map { $0 == UInt8(c) ? UInt8(1) : 0 }
            try NIfTI.write(reference.with(data: binary), to: path("\(name).nii.gz"), datatype: .uint8)
        }
        let entropy = PostProcessing.normalisedEntropy(posteriors, classCount: k)
        try NIfTI.write(reference.with(data: PostProcessing.toUInt8(entropy[...])), to: path("uncertainty.nii.gz"), datatype: .uint8)
    }
}

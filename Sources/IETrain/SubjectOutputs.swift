// The per-subject inference files of SPEC §5 (InnerEye's store_inference_results): segmentation.nii.gz
// (uint8 class indices), posterior_<class>.nii.gz (uint8, p*255 truncated) and <class>.nii.gz (binary
// uint8) for every class including background, and uncertainty.nii.gz (normalised entropy * 255,
// truncated). Geometry (spacing, origin, direction, qform/sform) comes from the first image channel.
import Foundation
import IECore
import IEImage

public enum SubjectOutputs {
    /// The file names written for these classes (background first), in writing order (the rule is
    /// IECore's SubjectOutputNames, which config loading also checks).
    public static func fileNames(classNames: [String]) -> [String] { SubjectOutputNames.fileNames(classNames: classNames) }

    /// Writes the files into `directory` (created if needed), each atomically.
    /// - posteriors: [K, Z, Y, X] after post-processing; labels: [Z, Y, X] class indices;
    ///   classNames: K names, background first (InnerEye calls it "background").
    /// `threads`: files written at once (default: the engine's thread count, SPEC §12).
    public static func write<T>(directory: String, posteriors: [Float], labels: [UInt8], classNames: [String],
                                reference: Volume<T>, threads: Int = 1) throws {
        let k = classNames.count, n = reference.count
        guard k >= 2 else { throw IEError.usage("\(k) class names, expected background and at least one structure") }
        guard SubjectOutputNames.collision(classNames: classNames) == nil, classNames.allSatisfy({ SafeName.problem($0) == nil }) else {
            throw IEError.usage("class names \(classNames) must be file-name-safe names whose output files differ")
        }
        guard posteriors.count == k * n, labels.count == n else {
            throw IEError.failure("posteriors (\(posteriors.count)) / labels (\(labels.count)) do not match \(k) classes x \(reference.shape)")
        }
        try AtomicFile.createFolder(directory, for: directory)
        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

        // The 2K + 2 files are independent: each one's voxels are made and deflated on its own thread (up to
        // `threads` at once), so gzip is not a serial tail after inference. The files are the same either way.
        var jobs: [(name: String, voxels: () -> [UInt8])] = [(SubjectOutputNames.segmentation, { labels })]
        for (c, name) in classNames.enumerated() {
            jobs.append((SubjectOutputNames.posterior(name), { PostProcessing.toUInt8(posteriors[(c * n)..<((c + 1) * n)]) }))
        }
        for (c, name) in classNames.enumerated() {
            jobs.append((SubjectOutputNames.binaryMask(name), { labels.map { $0 == UInt8(c) ? UInt8(1) : 0 } }))
        }
        jobs.append((SubjectOutputNames.uncertainty, {
            PostProcessing.toUInt8(PostProcessing.normalisedEntropy(posteriors, classCount: k)[...])
        }))
        let failures = FirstError()
        let run = { (j: Int) in
            do { try NIfTI.write(reference.with(data: jobs[j].voxels()), to: path(jobs[j].name), datatype: .uint8) }
            catch { failures.record(error) }
        }
        let workers = max(1, min(threads, jobs.count))
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            for j in Swift.stride(from: w, to: jobs.count, by: workers) { run(j) }
        }
        if let error = failures.first { throw error }
    }
}

/// The first error recorded from several threads.
final class FirstError: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    var first: Error? { lock.lock(); defer { lock.unlock() }; return stored }
    func record(_ error: Error) { lock.lock(); if stored == nil { stored = error }; lock.unlock() }
}

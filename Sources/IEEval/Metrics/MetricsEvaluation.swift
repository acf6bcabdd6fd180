import Foundation
import IECore
import IEImage

/// One (subject, structure) to evaluate: the prediction and ground-truth mask files (ground truth nil when the
/// structure is missing for this subject) and optionally the image the thumbnail shows.
public struct MetricsCase: Sendable, Equatable {
    public var patient: String
    public var structure: String
    public var predictionPath: String
    public var groundTruthPath: String?
    public var imagePath: String?

    public init(patient: String, structure: String, predictionPath: String, groundTruthPath: String?, imagePath: String? = nil) {
        self.patient = patient
        self.structure = structure
        self.predictionPath = predictionPath
        self.groundTruthPath = groundTruthPath
        self.imagePath = imagePath
    }
}

public enum MetricsEvaluation {
    /// The per-subject folder of an inference output (SPEC §5: `<split dir>/<subject:03d>/`), or the subject's own
    /// name when that is what exists; nil when neither folder exists.
    public static func subjectFolder(in predictionFolder: String, subject: String) -> String? {
        var candidates: [String] = []
        candidates.append(RunLayout.subjectFolderName(subject))
        if !candidates.contains(subject) { candidates.append(subject) }
        for name in candidates {
            var isDirectory: ObjCBool = false
            let path = predictionFolder + "/" + name
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue { return path }
        }
        return nil
    }

    /// The cases of an inference folder: for each subject (in the order given) that has a subject folder there,
    /// one case per structure with prediction `<subject folder>/<structure>.nii.gz`, the ground-truth file
    /// `groundTruth(subject, structure)` (nil: missing) and the thumbnail image `image(subject)`.
    /// Fails when no subject has a folder, or a subject folder lacks a structure's prediction.
    public static func cases(predictionFolder: String, subjects: [String], structures: [String],
                             groundTruth: (String, String) -> String?, image: (String) -> String? = { _ in nil }) throws -> [MetricsCase] {
        var result: [MetricsCase] = []
        for subject in subjects {
            guard let folder = subjectFolder(in: predictionFolder, subject: subject) else { continue }
            for structure in structures {
                let prediction = folder + "/" + structure + ".nii.gz"
                guard FileManager.default.fileExists(atPath: prediction) else {
                    throw IEError.badInput("prediction for structure '\(structure)' not found, expected the binary mask ie-infer writes", file: prediction)
                }
                result.append(MetricsCase(patient: subject, structure: structure, predictionPath: prediction,
                                          groundTruthPath: groundTruth(subject, structure), imagePath: image(subject)))
            }
        }
        guard !result.isEmpty else {
            throw IEError.badInput("no subject folder (<subject:03d>/) of the dataset found, expected ie-infer's output folder", file: predictionFolder)
        }
        return result
    }

    /// The subjects of `subjects` that have no folder in `predictionFolder`. A run's split must be complete
    /// (issue 11: a half-inferred split scored silently looked like a finished evaluation).
    public static func missingSubjects(in predictionFolder: String, subjects: [String]) -> [String] {
        subjects.filter { subjectFolder(in: predictionFolder, subject: $0) == nil }
    }

    /// Reads an image file as a volume; ie-metrics passes `NIfTI.read`, tests may pass in-memory volumes.
    public typealias VolumeLoader = (String) throws -> Volume<Float>

    /// A structure name from a mask file name: `lung_l.nii.gz` -> `lung_l`.
    public static func structureName(fromPath path: String) -> String {
        var name = URL(fileURLWithPath: path).lastPathComponent
        for suffix in [".gz", ".nii"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
        return name
    }

    /// A binary mask from a volume: every voxel must be 0 or 1 (SPEC §2), else a bad-input error naming the file.
    public static func binaryMask(_ volume: Volume<Float>, path: String) throws -> [Bool] {
        var mask = [Bool](repeating: false, count: volume.count)
        for (i, v) in volume.data.enumerated() {
            if v == 1 {
                mask[i] = true
            } else if v != 0 {
                let p = volume.position(ofIndex: i)
                throw IEError.badInput("voxel (z=\(p.z), y=\(p.y), x=\(p.x)) has value \(v), expected a binary mask (0 or 1)", file: path)
            }
        }
        return mask
    }

    /// The grid of `volume`, with the spacing the metrics use.
    public static func grid<T>(of volume: Volume<T>) -> VoxelGrid {
        VoxelGrid(shape: volume.shape, spacing: volume.spacing)
    }

    /// Fails unless the two volumes lie on one grid: the same shape and, within 1e-3 (GridComparison), the same
    /// spacing, origin and direction. Voxel arrays are compared index by index, so the same anatomy stored in
    /// another axis order or shifted in space must not be scored as if it were aligned (SimpleITK's overlap and
    /// distance filters refuse such a pair: "Inputs do not occupy the same physical space").
    public static func requireSameGrid<T, U>(_ a: Volume<T>, _ aPath: String, _ b: Volume<U>, _ bPath: String) throws {
        if let mismatch = a.gridMismatch(with: b) {
            throw IEError.badInput("\(mismatch) of \(bPath), expected both on one grid (shape, spacing, origin and direction; "
                                   + "resample one onto the other first)", file: aPath)
        }
    }

    /// Metrics of one prediction file against one ground-truth file (nil: structure missing, all NaN).
    public static func evaluate(predictionPath: String, groundTruthPath: String?, extras: [ExtraMetric] = [],
                                load: VolumeLoader = readNIfTI) throws -> SegmentationMetrics {
        let prediction = try load(predictionPath)
        let predictionMask = try binaryMask(prediction, path: predictionPath)
        guard let groundTruthPath else {
            return SegmentationMetrics.compute(prediction: predictionMask, groundTruth: nil, grid: grid(of: prediction), extras: extras)
        }
        let truth = try load(groundTruthPath)
        try requireSameGrid(prediction, predictionPath, truth, groundTruthPath)
        let truthMask = try binaryMask(truth, path: groundTruthPath)
        // Distances use the ground truth's spacing (the reference geometry).
        return SegmentationMetrics.compute(prediction: predictionMask, groundTruth: truthMask, grid: grid(of: truth), extras: extras)
    }

    /// Writes a thumbnail PNG (default: `writeThumbnail`, an atomic RGB PNG).
    public typealias PNGWriter = (MetricsRGBImage, String) throws -> Void

    /// Atomic 8-bit RGB PNG through the image module's libpng writer.
    public static func writeThumbnail(_ picture: MetricsRGBImage, to path: String) throws {
        try PNG.write(pixels: picture.pixels, width: picture.width, height: picture.height, format: .rgb, to: path)
    }

    /// Reads a NIfTI volume (the default loader).
    public static func readNIfTI(_ path: String) throws -> Volume<Float> {
        try NIfTI.read(path)
    }

    /// Evaluates every case (one subject's image loaded once), writes `<outputFolder>/metrics.csv` (sorted as
    /// SPEC §7) and, unless `writePNG` is nil, `<outputFolder>/thumbnails/<subject:03d>_<structure>_slice_<z:03d>.png`.
    /// Returns the rows in case order. `missingRows`: rows written as they are (the all-empty rows of subjects
    /// scored with --allow_missing). Subjects (runs of consecutive cases of one patient) are spread over `threads`
    /// threads; each case is scored by one thread alone, so the rows and files do not depend on the thread count.
    /// On a failure no further subject is started and the error of the earliest failed case is thrown. With more
    /// than one thread, `load` and `writePNG` are called from several threads at once.
    @discardableResult
    public static func run(cases: [MetricsCase], outputFolder: String, extras: [ExtraMetric] = [],
                           load: VolumeLoader = readNIfTI, writePNG: PNGWriter? = writeThumbnail,
                           missingRows: [MetricsRow] = [], threads: Int = 1) throws -> [MetricsRow] {
        var subjects: [Range<Int>] = []
        for index in cases.indices {
            if let last = subjects.last, cases[last.lowerBound].patient == cases[index].patient {
                subjects[subjects.count - 1] = last.lowerBound..<(index + 1)
            } else {
                subjects.append(index..<(index + 1))
            }
        }
        let progress = Progress("metrics", total: cases.count)
        var scored = [Result<MetricsRow, Error>?](repeating: nil, count: cases.count)
        let lock = NSLock()
        // After a failure no further subject starts (the first error is the one reported).
        WorkQueue(count: subjects.count).run(threads: threads) { queue in
            var cachedImage: (path: String, volume: Volume<Float>)?
            while let taken = queue.take() {
                for index in subjects[taken] {
                    let result = Result { try score(cases[index], extras: extras, load: load, writePNG: writePNG,
                                                    outputFolder: outputFolder, cachedImage: &cachedImage) }
                    lock.lock()
                    scored[index] = result
                    progress.step("\(cases[index].patient) \(cases[index].structure)")
                    lock.unlock()
                    if case .failure = result { queue.stop(); break }
                }
            }
        }
        var rows = missingRows
        for result in scored {
            if let result { rows.append(try result.get()) }
        }
        try MetricsCSVWriter.write(rows: rows, extras: extras, to: outputFolder + "/" + RunLayout.metricsFileName)
        return rows
    }

    /// One case's row, and its thumbnail when `writePNG` is given (`cachedImage`: the last image read).
    private static func score(_ item: MetricsCase, extras: [ExtraMetric], load: VolumeLoader, writePNG: PNGWriter?,
                              outputFolder: String, cachedImage: inout (path: String, volume: Volume<Float>)?) throws -> MetricsRow {
        let prediction = try load(item.predictionPath)
        let predictionMask = try binaryMask(prediction, path: item.predictionPath)
        var truthMask: [Bool]?
        var grid = grid(of: prediction)
        if let truthPath = item.groundTruthPath {
            let truth = try load(truthPath)
            try requireSameGrid(prediction, item.predictionPath, truth, truthPath)
            truthMask = try binaryMask(truth, path: truthPath)
            grid = self.grid(of: truth)
        }
        let metrics = SegmentationMetrics.compute(prediction: predictionMask, groundTruth: truthMask, grid: grid, extras: extras)
        if let writePNG, let z = MetricsThumbnail.largestSlice(groundTruth: truthMask, prediction: predictionMask, grid: grid) {
            var imageData: [Float]?
            if let imagePath = item.imagePath {
                if cachedImage?.path != imagePath {
                    let image = try load(imagePath)
                    try requireSameGrid(image, imagePath, prediction, item.predictionPath)
                    cachedImage = (imagePath, image)
                }
                imageData = cachedImage?.volume.data
            }
            let picture = MetricsThumbnail.render(image: imageData, groundTruth: truthMask, prediction: predictionMask,
                                                  grid: grid, z: z)
            let name = MetricsThumbnail.fileName(subject: item.patient, structure: item.structure, z: z)
            try writePNG(picture, SafeName.path(in: outputFolder + "/thumbnails", name))
        }
        return MetricsRow(patient: item.patient, structure: item.structure, metrics: metrics)
    }
}

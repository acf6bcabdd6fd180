import Foundation
import IECore
import IEConfig
import IEData
import IEImage
import IENet

/// One subject of a scalar model, loaded: its image (all image channels stacked), non-image features and label.
public struct ScalarSample: Sendable {
    public var id: String
    /// The first image file, and the dataset file and line that name it (in errors about the image).
    public var file: String
    public var datasetFile: String? = nil
    public var datasetLine: Int? = nil
    public var image: TransformImage
    public var features: [Float]
    public var label: [Float]
}

/// How a scalar model's subjects become network inputs (SPEC §13): the dataset options from the config, images
/// read (PNG through libpng, scaled to [0, 1] by the largest value of its bit depth as torchvision's ToTensor;
/// NIfTI as stored), transforms applied per (seed, epoch, subject, mode), batches stacked.
public struct ScalarInputs {
    public let dataset: ScalarDataset
    public let options: ScalarDatasetOptions
    public let categoricalColumns: [String]

    public init(csvPath: String, config: ModelConfig) throws {
        options = ScalarDatasetOptions(config: config)
        dataset = try ScalarDataset.load(path: csvPath, options: options)
        categoricalColumns = config.categoricalColumns
    }

    /// Numbers beside the image: numerical columns, then the one-hot categorical columns.
    public var featureCount: Int {
        guard let first = dataset.subjects.first else { return 0 }
        return first.numericalFeatures.count + dataset.encodedCategoricalFeatures(first, columns: categoricalColumns).count
    }

    public func subject(_ id: String) throws -> ScalarSubject {
        guard let s = dataset.subjects.first(where: { $0.id == id }) else {
            throw IEError.badInput("subject \(id) is not in the dataset, expected one of its subjects", file: dataset.path)
        }
        return s
    }

    /// Reads one image file as channels × depth × height × width.
    public static func readImage(_ path: String) throws -> TransformImage {
        if path.lowercased().hasSuffix(".png") {
            let png = try PNG.read(path: path)
            let scale: Float = png.bitDepth == 16 ? 65535 : 255
            var planar = [Float](repeating: 0, count: png.samples.count)
            let pixels = png.width * png.height
            for p in 0..<pixels { for c in 0..<png.channels { planar[c * pixels + p] = Float(png.samples[p * png.channels + c]) / scale } }
            return try TransformImage(channels: png.channels, height: png.height, width: png.width, values: planar)
        }
        let volume = try NIfTI.read(path)
        return try TransformImage(channels: 1, depth: volume.shape.z, height: volume.shape.y, width: volume.shape.x, values: volume.data)
    }

    /// Image files (one per image channel) read and stacked along the channels; every file must have the first's size.
    public static func readStacked(_ files: [String]) throws -> TransformImage {
        guard let first = files.first else { throw IEError.usage("no image file, expected one per image channel") }
        var image = try readImage(first)
        for file in files.dropFirst() {
            let next = try readImage(file)
            guard next.shape.dropFirst() == image.shape.dropFirst() else {
                throw IEError.badInput("image size \(next.shape.dropFirst().map(String.init).joined(separator: "x")) differs from the first channel's \(image.shape.dropFirst().map(String.init).joined(separator: "x")), expected one size", file: file)
            }
            image = try TransformImage(channels: image.channels + next.channels, depth: image.depth, height: image.height,
                                       width: image.width, values: image.values + next.values)
        }
        return image
    }

    /// The subject's images stacked along the channels, its features and label.
    public func load(_ id: String) throws -> ScalarSample {
        let s = try subject(id)
        guard !s.imageFiles.isEmpty else { throw IEError.badInput("subject \(id) has no image channels", file: dataset.path, line: s.labelLine) }
        let image = try ScalarInputs.readStacked(s.imageFiles)
        let features = (s.numericalFeatures + dataset.encodedCategoricalFeatures(s, columns: categoricalColumns)).map(Float.init)
        return ScalarSample(id: id, file: s.imageFiles.first ?? dataset.path, datasetFile: dataset.path, datasetLine: s.imageLine,
                            image: image, features: features, label: s.label.map(Float.init))
    }

    public func loadAll(_ ids: [String], label: String) throws -> [ScalarSample] {
        let progress = Progress("loading \(label)", total: ids.count)
        return try ids.map { id in
            let sample = try load(id)
            progress.step(id)
            return sample
        }
    }

    /// Images after a pipeline, stacked as [N, C, D, H, W], with the features [N, F] and labels. Every image must
    /// come out of the pipeline with the same size, and with `imageSize` when the config fixes it.
    /// `channels` is the model's: IENet is built with -Ounchecked, so the network's own shape precondition is gone
    /// and an image with other channels would be read out of bounds (a grey image for an RGB model gave NaN, an RGB
    /// image for a grey model its red plane only). Checked here, for every image, as an input error.
    public static func batch(_ samples: [ScalarSample], pipeline: TransformPipeline, seed: UInt64, epoch: Int, mode: String,
                             imageSize: [Int]?, channels: Int) throws -> (images: Tensor, features: Tensor, labels: [Float]) {
        var values: [Float] = [], features: [Float] = [], labels: [Float] = []
        var shape: [Int]?
        for sample in samples {
            let image = try pipeline.apply(sample.image, seed: seed, epoch: epoch, subject: sample.id, mode: mode)
            guard image.channels == channels else {
                throw IEError.badInput("subject \(sample.id): \(sample.file): image has \(image.channels) channel\(image.channels == 1 ? "" : "s") (an RGB PNG has 3), expected the model's \(channels)", file: sample.datasetFile ?? sample.file, line: sample.datasetLine)
            }
            if let size = imageSize {
                // A 2-D image_size is [H, W] of a 2-D image: a volume (depth > 1) does not match it.
                let spatial = size.count == 2 ? [image.height, image.width] : [image.depth, image.height, image.width]
                guard spatial == size, size.count == 3 || image.depth == 1 else {
                    let shown = size.count == 2 && image.depth > 1 ? [image.depth, image.height, image.width] : spatial
                    throw IEError.badInput("subject \(sample.id): \(sample.file): image size \(shown.map(String.init).joined(separator: "x")) after the \(mode) transforms, expected image_size \(size.map(String.init).joined(separator: "x")) (add a Resize or CenterCrop transform)", file: sample.datasetFile ?? sample.file, line: sample.datasetLine)
                }
            }
            if let shape, shape != image.shape {
                throw IEError.badInput("subject \(sample.id): \(sample.file): image shape \(image.shape) after the \(mode) transforms differs from the batch's \(shape), expected one size (add a Resize transform or set image_size)", file: sample.datasetFile ?? sample.file, line: sample.datasetLine)
            }
            shape = image.shape
            values += image.values
            features += sample.features
            labels += sample.label
        }
        let s = shape ?? [1, 1, 1, 1]
        return (Tensor(shape: [samples.count] + s, data: values),
                Tensor(shape: [samples.count, samples.first?.features.count ?? 0], data: features), labels)
    }
}

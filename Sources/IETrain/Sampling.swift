// Training crops (SPEC §4.2, InnerEye's random_select_patch_center / slicers_for_random_crop / PadSample):
// choose a class by class_weights (background first), a uniform voxel of that class inside the mask, centre
// the crop there (left = centre - crop/2, shifted back inside the image), after padding the subject to at
// least the crop size (ceil(diff/2) before) with padding_mode.
import IECore

/// One subject in memory, already normalised: image [C, Z, Y, X], one-hot labels [K, Z, Y, X] with
/// class 0 = background (1 where no structure is), and an optional mask [Z, Y, X] (nonzero = inside).
public struct SegmentationSubject: Sendable {
    public var id: String
    public var shape: Shape3D
    public var channels: Int
    public var image: [Float]
    public var classCount: Int
    public var labels: [UInt8]
    public var mask: [UInt8]?

    public init(id: String, shape: Shape3D, channels: Int, image: [Float], classCount: Int, labels: [UInt8],
                mask: [UInt8]? = nil) throws {
        guard image.count == channels * shape.count else {
            throw IEError.badInput("subject \(id): image has \(image.count) voxels, expected \(channels) x \(shape)")
        }
        guard labels.count == classCount * shape.count else {
            throw IEError.badInput("subject \(id): labels have \(labels.count) voxels, expected \(classCount) x \(shape)")
        }
        if let mask, mask.count != shape.count {
            throw IEError.badInput("subject \(id): mask has \(mask.count) voxels, expected \(shape.count)")
        }
        self.id = id; self.shape = shape; self.channels = channels; self.image = image
        self.classCount = classCount; self.labels = labels; self.mask = mask
    }

    /// Builds the one-hot labels from binary structure masks (each Z*Y*X, nonzero = inside), background
    /// being the voxels in no structure, as InnerEye's label stacking.
    public static func oneHot(structures: [[UInt8]], voxelCount: Int) -> [UInt8] {
        var labels = [UInt8](repeating: 0, count: (structures.count + 1) * voxelCount)
        for i in 0..<voxelCount { labels[i] = 1 }
        for (s, structure) in structures.enumerated() {
            precondition(structure.count == voxelCount)
            let base = (s + 1) * voxelCount
            for i in 0..<voxelCount where structure[i] != 0 { labels[base + i] = 1; labels[i] = 0 }
        }
        return labels
    }
}

/// A training crop: image [C, Z, Y, X], one-hot labels [K, Z, Y, X], mask [Z, Y, X] of crop size.
public struct Crop: Sendable {
    public var size: Shape3D
    public var image: [Float]
    public var labels: [UInt8]
    public var mask: [UInt8]
    /// The sampled centre voxel, in the (possibly padded) subject's coordinates.
    public var centre: Shape3D
    /// The crop's first voxel in the padded subject, and the padding offset of the subject.
    public var start: Shape3D
    public var paddingOffset: Shape3D
    /// The class drawn for the centre.
    public var chosenClass: Int

    /// Class index per voxel (the first set one-hot channel; 0 where none is set).
    public func classIndices(classCount: Int) -> [UInt8] {
        let n = size.count
        var out = [UInt8](repeating: 0, count: n)
        for k in stride(from: classCount - 1, through: 1, by: -1) {
            let base = k * n
            for i in 0..<n where labels[base + i] != 0 { out[i] = UInt8(k) }
        }
        return out
    }
}

public struct CropSampler: Sendable {
    public var cropSize: Shape3D
    /// Probability of each class (background first) being the centre's class; nil = uniform.
    public var classWeights: [Double]?
    public var paddingMode: PaddingMode

    public init(cropSize: Shape3D, classWeights: [Double]? = nil, paddingMode: PaddingMode = .edge) throws {
        guard cropSize.z > 0, cropSize.y > 0, cropSize.x > 0 else {
            throw IEError.usage("crop_size \(cropSize) is invalid, expected positive sizes")
        }
        if let classWeights {
            guard classWeights.allSatisfy({ $0 >= 0 }), abs(classWeights.reduce(0, +) - 1) < 1e-6 else {
                throw IEError.usage("class_weights \(classWeights) are invalid, expected non-negative values summing to 1")
            }
        }
        self.cropSize = cropSize; self.classWeights = classWeights; self.paddingMode = paddingMode
    }

    /// Pads a subject to at least the crop size: images and mask by paddingMode (mask and labels too, as
    /// InnerEye; with `.zero` the labels become background and the mask outside).
    public func padded(_ subject: SegmentationSubject) -> (subject: SegmentationSubject, offset: Shape3D) {
        let image = padToAtLeast(subject.image, channels: subject.channels, shape: subject.shape, target: cropSize,
                                 mode: paddingMode, fill: [Float](repeating: 0, count: subject.channels))
        if image.shape == subject.shape { return (subject, image.offset) }
        var labelFill = [UInt8](repeating: 0, count: subject.classCount)
        labelFill[0] = 1
        let labels = padToAtLeast(subject.labels, channels: subject.classCount, shape: subject.shape,
                                  target: cropSize, mode: paddingMode, fill: labelFill)
        let mask = subject.mask.map {
            padToAtLeast($0, channels: 1, shape: subject.shape, target: cropSize, mode: paddingMode, fill: [0]).data
        }
        var out = subject
        out.shape = image.shape; out.image = image.data; out.labels = labels.data; out.mask = mask
        return (out, image.offset)
    }

    /// Draws the centre's class and voxel (InnerEye: classes absent inside the mask are dropped and the
    /// remaining weights renormalised; if only zero-weight classes remain present, one of them is drawn
    /// uniformly rather than failing). Throws when no voxel of any class lies inside the mask.
    public func sampleCentre(_ subject: SegmentationSubject, using rng: inout Xoshiro256) throws -> (centre: Shape3D, chosenClass: Int) {
        let k = subject.classCount
        let weights = classWeights ?? [Double](repeating: 1.0 / Double(k), count: k)
        guard weights.count == k else {
            throw IEError.usage("class_weights has \(weights.count) values, expected \(k) (background and each structure)")
        }
        let n = subject.shape.count
        var available = Array(0..<k)
        while !available.isEmpty {
            var w = available.map { weights[$0] }
            if w.reduce(0, +) <= 0 { w = [Double](repeating: 1, count: available.count) }
            let pick = rng.weightedIndex(w)
            let cls = available[pick]
            // Count then select the r-th voxel: no index list, so memory stays O(1) per draw.
            let found: Int? = subject.labels.withUnsafeBufferPointer { labels in
                let classLabels = UnsafeBufferPointer(rebasing: labels[(cls * n)..<((cls + 1) * n)])
                func select(_ inside: (Int) -> Bool) -> Int? {
                    var count = 0
                    for i in 0..<n where classLabels[i] != 0 && inside(i) { count += 1 }
                    if count == 0 { return nil }
                    var target = rng.nextInt(below: count)
                    for i in 0..<n where classLabels[i] != 0 && inside(i) {
                        if target == 0 { return i }
                        target -= 1
                    }
                    return nil
                }
                if let mask = subject.mask {
                    return mask.withUnsafeBufferPointer { m in select { m[$0] != 0 } }
                }
                return select { _ in true }
            }
            guard let i = found else { available.remove(at: pick); continue }
            let s = subject.shape
            return (Shape3D(i / (s.y * s.x), (i / s.x) % s.y, i % s.x), cls)
        }
        throw IEError.badInput("subject \(subject.id): no labelled voxel inside the mask, expected at least one voxel to centre a crop on")
    }

    /// The crop's first voxel for a centre: centre - crop/2, shifted to end inside the image, then to start
    /// at 0 at least (InnerEye's order).
    public func cropStart(centre: Shape3D, shape: Shape3D) -> Shape3D {
        var start = Shape3D(0, 0, 0)
        for a in 0..<3 {
            var left = centre[a] - cropSize[a] / 2
            let right = left + cropSize[a]
            if right > shape[a] { left -= right - shape[a] }
            start[a] = max(left, 0)
        }
        return start
    }

    /// One random crop of a subject (padding it first when it is smaller than the crop).
    public func sample(_ original: SegmentationSubject, using rng: inout Xoshiro256) throws -> Crop {
        if paddingMode == .noPadding,
           (0..<3).contains(where: { original.shape[$0] < cropSize[$0] }) {
            throw IEError.badInput("subject \(original.id): image \(original.shape) is smaller than crop_size \(cropSize), expected padding_mode Edge or Zero to pad it")
        }
        let (subject, offset) = padded(original)
        let (centre, cls) = try sampleCentre(subject, using: &rng)
        let start = cropStart(centre: centre, shape: subject.shape)
        return crop(subject, start: start, centre: centre, chosenClass: cls, paddingOffset: offset)
    }

    func crop(_ subject: SegmentationSubject, start: Shape3D, centre: Shape3D, chosenClass: Int, paddingOffset: Shape3D) -> Crop {
        let image = extractBox(subject.image, channels: subject.channels, shape: subject.shape, start: start,
                               size: cropSize, mode: .edge, fill: [Float](repeating: 0, count: subject.channels))
        let labels = extractBox(subject.labels, channels: subject.classCount, shape: subject.shape, start: start,
                                size: cropSize, mode: .edge, fill: [UInt8](repeating: 0, count: subject.classCount))
        let mask = subject.mask.map {
            extractBox($0, channels: 1, shape: subject.shape, start: start, size: cropSize, mode: .edge, fill: [0])
        } ?? [UInt8](repeating: 1, count: cropSize.count)
        return Crop(size: cropSize, image: image, labels: labels, mask: mask, centre: centre, start: start,
                    paddingOffset: paddingOffset, chosenClass: chosenClass)
    }

    /// Validation crops: the same every epoch, because each subject's generator is derived from the seed and
    /// the subject id only (not from how many numbers training drew).
    public func validationCrops(_ subjects: [SegmentationSubject], seed: UInt64, cropsPerSubject: Int = 1) throws -> [Crop] {
        var crops = [Crop]()
        for subject in subjects {
            var rng = Xoshiro256(seed: seed, stream: "validation/" + subject.id)
            for _ in 0..<cropsPerSubject { crops.append(try sample(subject, using: &rng)) }
        }
        return crops
    }
}

/// Crops stacked for the network: images [B, C, Z, Y, X] and one-hot labels [B, K, Z, Y, X] as Float
/// (the layout IENet's tensors use), plus class indices [B, Z, Y, X] for losses that want them.
public struct CropBatch: Sendable {
    public var count: Int
    public var size: Shape3D
    public var images: [Float]
    public var labels: [Float]
    public var classIndices: [UInt8]

    public init(_ crops: [Crop], classCount: Int) {
        precondition(!crops.isEmpty, "a batch needs at least one crop")
        let size = crops[0].size
        precondition(crops.allSatisfy { $0.size == size }, "all crops of a batch must have one size")
        count = crops.count
        self.size = size
        images = crops.flatMap(\.image)
        labels = crops.flatMap { $0.labels.map(Float.init) }
        classIndices = crops.flatMap { $0.classIndices(classCount: classCount) }
    }
}

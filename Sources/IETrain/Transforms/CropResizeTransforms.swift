// Resize, CenterCrop, RandomResizedCrop and the flips (SPEC §13), with torchvision's semantics: sizes are
// (height, width) or (depth, height, width); a single number n means torchvision's rule for that transform.
// A 3-D image is cropped in-plane through all slices unless a depth is given.
import Foundation
import IECore

/// Python's round(): halves to even.
@inline(__always) func transformRoundHalfToEven(_ v: Double) -> Int { Int(v.rounded(.toNearestOrEven)) }

/// The target (depth, height, width) of a size list for an image: 2 values keep the depth.
fileprivate func targetShape(_ size: [Int], of image: TransformImage, single: (Int) -> (Int, Int)) -> (Int, Int, Int) {
    switch size.count {
    case 1: let (h, w) = single(size[0]); return (image.depth, h, w)
    case 2: return (image.depth, size[0], size[1])
    default: return (size[0], size[1], size[2])
    }
}

/// A transform whose only field is its `size`.
public protocol SizedTransform: ImageTransform {
    init(size: [Int], probability: Double)
}

extension SizedTransform {
    public init(fields: inout TransformFieldReader, probability: Double) throws {
        self.init(size: try fields.sizes("size", counts: [2, 3]) ?? [], probability: probability)
    }
}

/// torchvision Resize: bilinear (trilinear when the depth changes) with align_corners=False and no antialiasing.
/// A single size n resizes the smaller of height and width to n and the other to int(n * long / short).
public struct ResizeTransform: SizedTransform {
    public static let transformName = "Resize"
    public var probability: Double
    public var size: [Int]
    public init(size: [Int], probability: Double = 1) { self.size = size; self.probability = probability }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        let (d, h, w) = targetShape(size, of: image) { n in
            image.height <= image.width ? (n, n * image.width / image.height) : (n * image.height / image.width, n)
        }
        return image.resized(depth: d, height: h, width: w)
    }
}

/// The start of a centred crop of m out of n samples: torchvision's round((n - m) / 2) (halves to even), and
/// when m > n the zero padding torchvision adds first, (m - n) // 2 before the image.
fileprivate func centredCropStart(_ n: Int, _ m: Int) -> Int {
    m > n ? -((m - n) / 2) : transformRoundHalfToEven(Double(n - m) / 2)
}

/// torchvision CenterCrop; a single size n crops n x n; outside the image (crop larger than it) is 0.
public struct CenterCropTransform: SizedTransform {
    public static let transformName = "CenterCrop"
    public var probability: Double
    public var size: [Int]
    public init(size: [Int], probability: Double = 1) { self.size = size; self.probability = probability }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        let (d, h, w) = targetShape(size, of: image) { ($0, $0) }
        return image.cropped(z0: centredCropStart(image.depth, d), y0: centredCropStart(image.height, h),
                             x0: centredCropStart(image.width, w), depth: d, height: h, width: w)
    }
}

/// torchvision RandomResizedCrop: an in-plane box of area fraction U(scale) and aspect ratio (width / height)
/// log-uniform in `ratio` (10 tries, then the central fallback), through all slices, resized to `size`.
public struct RandomResizedCropTransform: ImageTransform {
    public static let transformName = "RandomResizedCrop"
    public var probability: Double
    public var size: [Int]
    public var scale: (Double, Double)
    public var ratio: (Double, Double)

    public init(size: [Int], scale: (Double, Double) = (0.08, 1), ratio: (Double, Double) = (3.0 / 4, 4.0 / 3),
                probability: Double = 1) {
        self.size = size; self.scale = scale; self.ratio = ratio; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let size = try fields.sizes("size", counts: [2, 3]) ?? []
        let scale = try fields.range("scale", default: (0.08, 1), expected: "a [min, max] pair of numbers > 0") { $0 > 0 }
        let ratio = try fields.range("ratio", default: (3.0 / 4, 4.0 / 3), expected: "a [min, max] pair of numbers > 0") { $0 > 0 }
        self.init(size: size, scale: scale ?? (0.08, 1), ratio: ratio ?? (3.0 / 4, 4.0 / 3), probability: probability)
    }

    /// The crop box (top, left, height, width) for an image of height x width.
    public func cropBox(height: Int, width: Int, using rng: inout Xoshiro256) -> (top: Int, left: Int, height: Int, width: Int) {
        let area = Double(height * width)
        let logRatio = (log(ratio.0), log(ratio.1))
        for _ in 0..<10 {
            let targetArea = area * rng.uniform(scale.0, scale.1)
            let aspect = exp(rng.uniform(logRatio.0, logRatio.1))
            let w = transformRoundHalfToEven((targetArea * aspect).squareRoot())
            let h = transformRoundHalfToEven((targetArea / aspect).squareRoot())
            if w > 0, w <= width, h > 0, h <= height {
                let top = rng.nextInt(below: height - h + 1)
                let left = rng.nextInt(below: width - w + 1)
                return (top, left, h, w)
            }
        }
        let inputRatio = Double(width) / Double(height)
        var w = width, h = height
        if inputRatio < min(ratio.0, ratio.1) {
            h = transformRoundHalfToEven(Double(w) / min(ratio.0, ratio.1))
        } else if inputRatio > max(ratio.0, ratio.1) {
            w = transformRoundHalfToEven(Double(h) * max(ratio.0, ratio.1))
        }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        let box = cropBox(height: image.height, width: image.width, using: &rng)
        let crop = image.cropped(z0: 0, y0: box.top, x0: box.left, depth: image.depth, height: box.height, width: box.width)
        let (d, h, w) = targetShape(size, of: image) { ($0, $0) }
        return crop.resized(depth: d, height: h, width: w)
    }
}

/// A flip of one spatial axis (TransformImage.flipped), p = 0.5 by default as torchvision's flips.
public protocol FlipTransform: ImageTransform {
    static var axis: Int { get }
    init(probability: Double)
}

extension FlipTransform {
    public static var defaultProbability: Double { 0.5 }
    public init(fields: inout TransformFieldReader, probability: Double) throws { self.init(probability: probability) }
    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        image.flipped(axis: Self.axis)
    }
}

/// torchvision RandomHorizontalFlip: reverses the width axis.
public struct RandomHorizontalFlipTransform: FlipTransform {
    public static let transformName = "RandomHorizontalFlip"
    public static let axis = 3
    public var probability: Double
    public init(probability: Double = 0.5) { self.probability = probability }
}

/// torchvision RandomVerticalFlip: reverses the height axis.
public struct RandomVerticalFlipTransform: FlipTransform {
    public static let transformName = "RandomVerticalFlip"
    public static let axis = 2
    public var probability: Double
    public init(probability: Double = 0.5) { self.probability = probability }
}

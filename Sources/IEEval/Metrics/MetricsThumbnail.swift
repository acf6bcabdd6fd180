import Foundation
import IECore

/// An 8-bit RGB picture, rows top to bottom, 3 bytes a pixel.
public struct MetricsRGBImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    public func pixel(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        let i = (y * width + x) * 3
        return (pixels[i], pixels[i + 1], pixels[i + 2])
    }
}

/// SPEC §7 thumbnails: the axial slice with the largest predicted area (the largest ground-truth area when the
/// prediction is empty), the image in grey, the ground-truth contour red, the prediction contour blue (magenta
/// where the two contours share a pixel).
public enum MetricsThumbnail {
    public static let groundTruthColour: (UInt8, UInt8, UInt8) = (255, 0, 0)
    public static let predictionColour: (UInt8, UInt8, UInt8) = (0, 0, 255)
    public static let sharedColour: (UInt8, UInt8, UInt8) = (255, 0, 255)

    /// The z index with the most predicted voxels (the lowest such z on ties); when the prediction is empty,
    /// the same for the ground truth; nil when both are empty (nothing to show).
    public static func largestSlice(groundTruth: [Bool]?, prediction: [Bool], grid: VoxelGrid) -> Int? {
        func best(_ mask: [Bool]) -> Int? {
            var bestZ: Int?
            var bestCount = 0
            let sliceSize = grid.ny * grid.nx
            for z in 0..<grid.nz {
                var count = 0
                for i in (z * sliceSize)..<((z + 1) * sliceSize) where mask[i] { count += 1 }
                if count > bestCount { bestCount = count; bestZ = z }
            }
            return bestZ
        }
        if let z = best(prediction) { return z }
        return groundTruth.flatMap(best)
    }

    /// Grey levels for an image slice. CT (a slice reaching -500 HU or below) gets a soft-tissue window,
    /// level 40 width 400 HU; any other image is stretched between its 1st and 99th percentiles.
    public static func greyLevels(_ slice: [Float]) -> [UInt8] {
        guard !slice.isEmpty else { return [] }
        let finite = slice.filter { $0.isFinite }
        guard let minimum = finite.min() else { return [UInt8](repeating: 0, count: slice.count) }
        var low: Float, high: Float
        if minimum <= -500 {
            low = 40 - 200; high = 40 + 200
        } else {
            let sorted = finite.sorted()
            low = sorted[Int(Double(sorted.count - 1) * 0.01)]
            high = sorted[Int(Double(sorted.count - 1) * 0.99)]
        }
        guard high > low else { return [UInt8](repeating: high > 0 ? 255 : 0, count: slice.count) }
        return slice.map { v in
            guard v.isFinite else { return 0 }
            let t = (v - low) / (high - low)
            return UInt8((min(max(t, 0), 1) * 255).rounded())
        }
    }

    /// The in-slice contour: mask pixels with a 4-neighbour outside the mask or outside the slice.
    public static func sliceContour(_ mask: ArraySlice<Bool>, width: Int, height: Int) -> [Bool] {
        let base = mask.startIndex
        var out = [Bool](repeating: false, count: width * height)
        for y in 0..<height {
            for x in 0..<width where mask[base + y * width + x] {
                let i = base + y * width + x
                let edge = x == 0 || x == width - 1 || y == 0 || y == height - 1
                    || !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width]
                if edge { out[y * width + x] = true }
            }
        }
        return out
    }

    /// Renders slice `z`: `image` may be nil (black background). Pixels are enlarged by a whole factor so the
    /// longer side reaches at least `minimumSize` pixels.
    public static func render(image: [Float]?, groundTruth: [Bool]?, prediction: [Bool], grid: VoxelGrid, z: Int,
                              minimumSize: Int = 256) -> MetricsRGBImage {
        let width = grid.nx, height = grid.ny, sliceSize = width * height
        let range = (z * sliceSize)..<((z + 1) * sliceSize)
        let grey = image.map { greyLevels(Array($0[range])) } ?? [UInt8](repeating: 0, count: sliceSize)
        let truthContour = groundTruth.map { sliceContour($0[range], width: width, height: height) }
        let predictionContour = sliceContour(prediction[range], width: width, height: height)
        let scale = max(1, (minimumSize + max(width, height) - 1) / max(max(width, height), 1))
        var pixels = [UInt8](repeating: 0, count: width * scale * height * scale * 3)
        for y in 0..<height {
            for x in 0..<width {
                let i = y * width + x
                let inTruth = truthContour?[i] ?? false, inPrediction = predictionContour[i]
                let colour: (UInt8, UInt8, UInt8)
                switch (inTruth, inPrediction) {
                case (true, true): colour = sharedColour
                case (true, false): colour = groundTruthColour
                case (false, true): colour = predictionColour
                case (false, false): colour = (grey[i], grey[i], grey[i])
                }
                for dy in 0..<scale {
                    var o = ((y * scale + dy) * width * scale + x * scale) * 3
                    for _ in 0..<scale {
                        pixels[o] = colour.0; pixels[o + 1] = colour.1; pixels[o + 2] = colour.2
                        o += 3
                    }
                }
            }
        }
        return MetricsRGBImage(width: width * scale, height: height * scale, pixels: pixels)
    }

    /// `<subject:03d>_<structure>_slice_<z:03d>.png`; a subject that is not a number is used as it is.
    public static func fileName(subject: String, structure: String, z: Int) -> String {
        return "\(RunLayout.subjectFolderName(subject))_\(structure)_slice_\(RunLayout.zeroPadded(z, width: 3)).png"
    }
}

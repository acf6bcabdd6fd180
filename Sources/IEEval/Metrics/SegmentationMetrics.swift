import Foundation
import IECore

/// Optional metrics beyond SPEC §7's three columns, requested as `--extra=hd95,assd,nsd@2`.
/// All three use MONAI's surface (`SurfaceDefinition.edgeIncludingImageBorder`) and distances from a surface
/// voxel of one mask to the nearest surface voxel of the other (MONAI `get_surface_distance`).
public enum ExtraMetric: Hashable, Sendable, CustomStringConvertible {
    /// 95th percentile (numpy's linear interpolation) of each directed surface distance list, the larger kept.
    case hd95
    /// Average symmetric surface distance: the mean of both directed lists concatenated.
    case assd
    /// Normalised surface Dice at a tolerance in mm: surface voxels of both masks within the tolerance of the
    /// other surface, over all surface voxels of both masks.
    case surfaceDice(toleranceMM: Double)

    /// The metrics.csv column name.
    public var columnName: String {
        switch self {
        case .hd95: return "HD95_mm"
        case .assd: return "ASSD_mm"
        case .surfaceDice(let tolerance): return "SurfaceDice_\(ExtraMetric.compactNumber(tolerance))mm"
        }
    }

    /// The `--extra` spelling.
    public var description: String {
        switch self {
        case .hd95: return "hd95"
        case .assd: return "assd"
        case .surfaceDice(let tolerance): return "nsd@\(ExtraMetric.compactNumber(tolerance))"
        }
    }

    static func compactNumber(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// Parses a comma-separated list such as `hd95,assd,nsd@2` (empty text: no extras).
    public static func parseList(_ text: String) throws -> [ExtraMetric] {
        var result: [ExtraMetric] = []
        for raw in text.split(separator: ",", omittingEmptySubsequences: true) {
            let item = raw.trimmingCharacters(in: .whitespaces).lowercased()
            let metric: ExtraMetric
            if item == "hd95" {
                metric = .hd95
            } else if item == "assd" {
                metric = .assd
            } else if item.hasPrefix("nsd@") {
                let number = item.dropFirst(4)
                guard let tolerance = Double(number), tolerance.isFinite, tolerance >= 0 else {
                    throw IEError.usage("--extra: bad tolerance in '\(raw)', expected nsd@<mm>, a number >= 0 such as nsd@2")
                }
                metric = .surfaceDice(toleranceMM: tolerance)
            } else {
                let hint = closestMatch(item, in: ["hd95", "assd", "nsd@2"]).map { " (did you mean '\($0)'?)" } ?? ""
                throw IEError.usage("--extra: unknown metric '\(raw)'\(hint), expected a list of hd95, assd, nsd@<mm>")
            }
            if !result.contains(metric) { result.append(metric) }
        }
        return result
    }
}

/// The SPEC §7 metrics of one (subject, structure): prediction A against ground truth B.
public struct SegmentationMetrics: Sendable, Equatable {
    public var dice: Double
    public var hausdorffDistanceMM: Double
    public var meanDistanceMM: Double
    /// Values of the requested extra metrics, in request order.
    public var extras: [Double]

    public init(dice: Double, hausdorffDistanceMM: Double, meanDistanceMM: Double, extras: [Double] = []) {
        self.dice = dice
        self.hausdorffDistanceMM = hausdorffDistanceMM
        self.meanDistanceMM = meanDistanceMM
        self.extras = extras
    }

    /// Equality that treats NaN as equal to NaN (for tests and comparisons of whole rows).
    public static func == (a: SegmentationMetrics, b: SegmentationMetrics) -> Bool {
        func same(_ x: Double, _ y: Double) -> Bool { x == y || (x.isNaN && y.isNaN) }
        return same(a.dice, b.dice) && same(a.hausdorffDistanceMM, b.hausdorffDistanceMM)
            && same(a.meanDistanceMM, b.meanDistanceMM) && a.extras.count == b.extras.count
            && zip(a.extras, b.extras).allSatisfy { same($0, $1) }
    }

    public static func allNaN(extras: [ExtraMetric]) -> SegmentationMetrics {
        SegmentationMetrics(dice: .nan, hausdorffDistanceMM: .nan, meanDistanceMM: .nan,
                            extras: extras.map { _ in .nan })
    }

    /// Metrics of `prediction` against `groundTruth` (nil: the structure is missing in the ground truth, so
    /// every value is NaN). Both masks are (Z, Y, X) with X fastest on `grid`.
    ///
    /// Cost: two exact distance transforms (up to four with extras), all restricted to the bounding box of
    /// A ∪ B, which holds every voxel the metrics look at.
    public static func compute(prediction: [Bool], groundTruth: [Bool]?, grid: VoxelGrid,
                               extras: [ExtraMetric] = []) -> SegmentationMetrics {
        precondition(prediction.count == grid.count, "prediction has \(prediction.count) voxels, grid \(grid.count)")
        guard let groundTruth else { return allNaN(extras: extras) }
        precondition(groundTruth.count == grid.count, "ground truth has \(groundTruth.count) voxels, grid \(grid.count)")
        // Every voxel the metrics read (mask voxels, hence surface voxels) lies in the bounding box of A ∪ B.
        guard let box = VoxelBox.bounding([prediction, groundTruth], grid: grid) else { return allNaN(extras: extras) }
        return compute(croppedPrediction: box.crop(prediction, grid: grid), croppedGroundTruth: box.crop(groundTruth, grid: grid),
                       box: box, imageGrid: grid, extras: extras)
    }

    /// The same metrics from the masks cropped to `box`, a box of the image `imageGrid` that holds every voxel of
    /// both masks (the bounding box of A ∪ B or any larger box: the values do not depend on it). `a` and `b` are
    /// the crops, (Z, Y, X) with X fastest on the box's shape. Label maps (`LabelMapMetrics`) call this directly
    /// with each label's box, so that they never build whole-image masks.
    public static func compute(croppedPrediction a: [Bool], croppedGroundTruth b: [Bool], box: VoxelBox,
                               imageGrid grid: VoxelGrid, extras: [ExtraMetric] = []) -> SegmentationMetrics {
        let cropGrid = VoxelGrid(shape: box.shape, spacing: grid.spacing)
        precondition(a.count == cropGrid.count && b.count == cropGrid.count,
                     "crops have \(a.count) and \(b.count) voxels, box \(cropGrid.count)")
        var countA = 0, countB = 0, countBoth = 0
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                for i in 0..<cropGrid.count {
                    let inA = a[i], inB = b[i]
                    if inA { countA += 1 }
                    if inB { countB += 1 }
                    if inA && inB { countBoth += 1 }
                }
            }
        }
        if countA == 0 && countB == 0 { return allNaN(extras: extras) }
        if countA == 0 || countB == 0 {
            return SegmentationMetrics(dice: 0, hausdorffDistanceMM: .infinity, meanDistanceMM: .infinity,
                                       extras: extras.map { extra in
                                           if case .surfaceDice = extra { return 0 }
                                           return .infinity
                                       })
        }
        let dice = 2 * Double(countBoth) / Double(countA + countB)
        let faces = [box.z0 == 0, box.z1 == grid.nz, box.y0 == 0, box.y1 == grid.ny, box.x0 == 0, box.x1 == grid.nx]

        // MeanDistance_mm as InnerEye computes it with SimpleITK: distances are sampled on LabelContour (face
        // neighbours) and read from |SignedMaurerDistanceMap|, which is the distance to the mask's fully connected
        // (26-neighbour) boundary, so both sets are needed. The crop is exact for both: the boundary test sees
        // `false` beyond a crop edge that is not the image border (those voxels exist and are outside A ∪ B), and
        // every boundary voxel, being a mask voxel, lies in the crop, as does every voxel where a distance is read.
        let contourA = MaskSurface.surface(of: a, grid: cropGrid, definition: .contourInsideImage, outsideGridIsImageBorder: faces)
        let contourB = MaskSurface.surface(of: b, grid: cropGrid, definition: .contourInsideImage, outsideGridIsImageBorder: faces)
        let boundaryA = MaskSurface.surface(of: a, grid: cropGrid, definition: .fullyConnectedBoundaryInsideImage, outsideGridIsImageBorder: faces)
        let boundaryB = MaskSurface.surface(of: b, grid: cropGrid, definition: .fullyConnectedBoundaryInsideImage, outsideGridIsImageBorder: faces)
        let toBoundaryA = DistanceTransform.squaredDistance(to: boundaryA, grid: cropGrid)
        let toBoundaryB = DistanceTransform.squaredDistance(to: boundaryB, grid: cropGrid)

        // Hausdorff over all voxels: h(A, B) = max over a in A of the distance to the nearest voxel of B. That is 0
        // for a in B, and for a outside B the nearest voxel of B is a boundary voxel of B (the step from it towards a
        // stays inside the image and leaves B), so the boundary distance map serves both metrics.
        var hausdorffSquared = 0.0
        var contourSum = 0.0, contourCount = 0
        for i in 0..<cropGrid.count {
            let inA = a[i], inB = b[i]
            if inA && !inB { hausdorffSquared = max(hausdorffSquared, toBoundaryB[i]) }
            if inB && !inA { hausdorffSquared = max(hausdorffSquared, toBoundaryA[i]) }
            if contourA[i] { contourSum += toBoundaryB[i].squareRoot(); contourCount += 1 }
            if contourB[i] { contourSum += toBoundaryA[i].squareRoot(); contourCount += 1 }
        }
        // A non-empty mask has an empty contour (and boundary) only when it fills the image: SPEC says NaN there
        // (InnerEye printed SimpleITK's 1.8e19 placeholder distance).
        let hasBothContours = contourA.contains(true) && contourB.contains(true)
        let meanDistance = hasBothContours ? contourSum / Double(contourCount) : .nan

        var extraValues: [Double] = []
        if !extras.isEmpty {
            let edgeA = MaskSurface.surface(of: a, grid: cropGrid, definition: .edgeIncludingImageBorder, outsideGridIsImageBorder: faces)
            let edgeB = MaskSurface.surface(of: b, grid: cropGrid, definition: .edgeIncludingImageBorder, outsideGridIsImageBorder: faces)
            // MONAI's edge and the Maurer boundary often coincide (shapes without diagonal-only boundary voxels,
            // away from the image border); reuse the maps when they do.
            let toEdgeA = edgeA == boundaryA ? toBoundaryA : DistanceTransform.squaredDistance(to: edgeA, grid: cropGrid)
            let toEdgeB = edgeB == boundaryB ? toBoundaryB : DistanceTransform.squaredDistance(to: edgeB, grid: cropGrid)
            var fromA: [Double] = [], fromB: [Double] = []
            for i in 0..<cropGrid.count {
                if edgeA[i] { fromA.append(toEdgeB[i].squareRoot()) }
                if edgeB[i] { fromB.append(toEdgeA[i].squareRoot()) }
            }
            extraValues = extras.map { SurfaceDistanceSummary.value(of: $0, fromPrediction: fromA, fromGroundTruth: fromB) }
        }
        return SegmentationMetrics(dice: dice, hausdorffDistanceMM: hausdorffSquared.squareRoot(),
                                   meanDistanceMM: meanDistance, extras: extraValues)
    }
}

/// Summaries of two directed surface-distance lists (non-empty masks, so both lists are non-empty).
public enum SurfaceDistanceSummary {
    public static func value(of metric: ExtraMetric, fromPrediction: [Double], fromGroundTruth: [Double]) -> Double {
        switch metric {
        case .hd95:
            return max(percentile(fromPrediction, 95), percentile(fromGroundTruth, 95))
        case .assd:
            let total = fromPrediction.count + fromGroundTruth.count
            guard total > 0 else { return .nan }
            return (fromPrediction.reduce(0, +) + fromGroundTruth.reduce(0, +)) / Double(total)
        case .surfaceDice(let tolerance):
            let total = fromPrediction.count + fromGroundTruth.count
            guard total > 0 else { return .nan }
            let within = fromPrediction.filter { $0 <= tolerance }.count + fromGroundTruth.filter { $0 <= tolerance }.count
            return Double(within) / Double(total)
        }
    }

    /// numpy.percentile with the default linear method: position (n - 1) * p / 100 in the sorted values.
    public static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let position = Double(sorted.count - 1) * p / 100
        let lower = Int(position.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        let fraction = position - Double(lower)
        let a = sorted[lower], b = sorted[upper]
        if a == b { return a }
        // Same rounding as numpy's _lerp, which interpolates from the nearer end.
        return fraction >= 0.5 ? b - (b - a) * (1 - fraction) : a + (b - a) * fraction
    }
}

import Foundation
import IECore

/// The metrics workload `ie-bench` times: two overlapping ellipsoids on a clinical-size grid.
public enum MetricsBenchmark {
    /// Prediction and ground truth: ellipsoids of semi-axes (60, 80, 70) mm, the prediction shifted by
    /// (6, 5, -4) mm and dented, so every metric has real work and the bounding box covers most of the image.
    public static func syntheticPair(shape: Shape3D = Shape3D(64, 256, 256),
                                     spacing: (z: Double, y: Double, x: Double) = (3, 0.8, 0.8))
        -> (prediction: [Bool], groundTruth: [Bool], grid: VoxelGrid) {
        let grid = VoxelGrid(shape: shape, spacing: spacing)
        let centre = (z: Double(shape.z) * spacing.z / 2, y: Double(shape.y) * spacing.y / 2, x: Double(shape.x) * spacing.x / 2)
        func ellipsoid(_ shift: (Double, Double, Double), dent: Bool) -> [Bool] {
            var mask = [Bool](repeating: false, count: grid.count)
            for z in 0..<shape.z {
                for y in 0..<shape.y {
                    for x in 0..<shape.x {
                        let dz = (Double(z) * spacing.z - centre.z - shift.0) / 60
                        let dy = (Double(y) * spacing.y - centre.y - shift.1) / 80
                        let dx = (Double(x) * spacing.x - centre.x - shift.2) / 70
                        var inside = dz * dz + dy * dy + dx * dx <= 1
                        if dent && dy > 0.5 && abs(dx) < 0.2 { inside = false }
                        mask[grid.index(z, y, x)] = inside
                    }
                }
            }
            return mask
        }
        return (ellipsoid((6, 5, -4), dent: true), ellipsoid((0, 0, 0), dent: false), grid)
    }

    /// Seconds for one `SegmentationMetrics.compute` on the pair (best of `repeats`), and its result.
    public static func time(repeats: Int = 3, extras: [ExtraMetric] = []) -> (seconds: Double, metrics: SegmentationMetrics) {
        let pair = syntheticPair()
        var best = Double.infinity
        var result = SegmentationMetrics(dice: .nan, hausdorffDistanceMM: .nan, meanDistanceMM: .nan)
        for _ in 0..<max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            result = SegmentationMetrics.compute(prediction: pair.prediction, groundTruth: pair.groundTruth,
                                                 grid: pair.grid, extras: extras)
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return (best, result)
    }
}

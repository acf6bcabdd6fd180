// MONAI's sliding-window rules (monai 1.6.1: inferers/utils.py sliding_window_inference and _get_scan_interval,
// data/utils.py dense_patch_slices, get_valid_patch_size, compute_importance_map), for the tilings `MONAI` and
// `MONAIGaussian` (SPEC §5). Written from the documented behaviour; the stitching itself is `SlidingWindow.run`.
import Foundation
import IECore

extension SlidingWindow {
    /// MONAI's geometry for an image of `shape`: the image is padded only where it is smaller than the patch
    /// (diff = patch - size, floor(diff/2) before and the rest after; never to a size multiple), the scan interval
    /// per axis is the patch where the padded size equals it, else max(int(patch * (1 - overlap)), 1); with
    /// `starts(length:patch:stride:)` that gives dense_patch_slices' windows (0, s, 2s, ... and one flush with the end).
    public static func monaiGeometry(shape: Shape3D, patch: Shape3D, overlap: Double)
        -> (padded: Shape3D, offset: Shape3D, interval: Shape3D) {
        var padded = shape, offset = Shape3D(0, 0, 0), interval = patch
        for a in 0..<3 {
            let diff = max(patch[a] - shape[a], 0)
            offset[a] = diff / 2
            padded[a] = shape[a] + diff
            if padded[a] != patch[a] {
                // Python's int() of a float64 truncates toward zero.
                interval[a] = max(Int((Double(patch[a]) * (1 - overlap)).rounded(.towardZero)), 1)
            }
        }
        return (padded, offset, interval)
    }

    /// MONAI's importance map for mode "gaussian", computed in float32 as MONAI does: per axis of length n,
    /// x = -(n-1)/2 ... (n-1)/2 and g = exp(x^2 / (-2 sigma^2)) with sigma = sigmaScale * n (not normalised: for an
    /// even n the peak is below 1); the map is the outer product ((g_z * g_y) * g_x); then every value below
    /// max(min(map), 1e-3) is raised to it (MONAI's clamp of non-positive weights).
    public static func monaiImportanceMap(patch: Shape3D, sigmaScale: Double) -> [Float] {
        func axis(_ n: Int) -> [Float] {
            let sigma = Double(n) * sigmaScale
            let denominator = Float(-2 * sigma * sigma)
            let first = -Float(n - 1) / 2
            return (0..<n).map { i in
                let x = first + Float(i)
                return Foundation.exp(x * x / denominator)
            }
        }
        let gz = axis(patch.z), gy = axis(patch.y), gx = axis(patch.x)
        var map = [Float](repeating: 0, count: patch.count)
        var i = 0
        for z in 0..<patch.z { for y in 0..<patch.y {
            let zy = gz[z] * gy[y]
            for x in 0..<patch.x { map[i] = zy * gx[x]; i += 1 }
        } }
        let floor = max(map.min() ?? 0, 1e-3)
        for j in map.indices where map[j] < floor { map[j] = floor }
        return map
    }
}

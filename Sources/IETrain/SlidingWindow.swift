// Sliding-window inference over a whole normalised image (SPEC §5). The image is (virtually) padded to a
// multiple of 16 and to at least one patch per axis (ceil(diff/2) before, as InnerEye's pad_images), patches
// start at 0, s, 2s, ... plus one flush with the padded end, each batch of patches goes through `predict`,
// and overlapping posteriors are averaged with uniform or Gaussian (sigma = patch/8, nnU-Net) weights.
// Only the original image's voxels are accumulated, in Float32: memory is K+1 floats per voxel plus one
// batch of patches, whatever the overlap.
// `runInnerEye` instead reproduces InnerEye's tiling (pipelines/inference.py with torchio 0.18.74's
// EnsureShapeMultiple, GridSampler and GridAggregator in "crop" mode), so that an InnerEye model gives InnerEye's
// segmentation exactly. `placement: .monai` with `weighting: .uniform` or `.monaiGaussian` gives MONAI's
// sliding_window_inference instead (MONAITiling.swift): its padding, windows and importance map, the same stitching.
import Foundation
import IECore

/// How the patches of a whole image become one posterior map (config `inference_tiling`, SPEC §5).
public enum InferenceTiling: String, Sendable, CaseIterable {
    /// Our default: pad to a multiple of 16 and at least one patch, average overlapping patches uniformly.
    case average = "Average"
    /// As average, with Gaussian weights (sigma = patch/8, nnU-Net).
    case gaussian = "Gaussian"
    /// InnerEye's: zero-pad to the size multiple, shrink the patch to a small image, stitch patch centres.
    case innerEye = "InnerEye"
    /// MONAI's sliding_window_inference, mode "constant" (`inference_overlap`; MONAITiling.swift).
    case monai = "MONAI"
    /// MONAI's sliding_window_inference, mode "gaussian" (sigma_scale 0.125).
    case monaiGaussian = "MONAIGaussian"
}

public struct SlidingWindow: Sendable {
    /// Per-voxel weights of a patch: all 1; ours Gaussian (sigma = patch/8, peak 1, at least 1e-6); MONAI's
    /// importance map (`monaiImportanceMap`).
    public enum Weighting: Sendable, Equatable { case uniform, gaussian, monaiGaussian(sigmaScale: Double) }
    /// Where the patches go: ours (padding to `multiple` and one patch, `stride`) or MONAI's (padding only to
    /// the patch, scan interval from `overlap`; `monaiGeometry`).
    public enum Placement: Sendable, Equatable { case padded, monai(overlap: Double) }

    /// Network call: `batch` holds `count` patches [count, C, pz, py, px]; the result must be the softmax
    /// posteriors [count, K, pz, py, px].
    public typealias Predictor = (_ batch: [Float], _ count: Int, _ patch: Shape3D) throws -> [Float]

    public var patch: Shape3D
    public var stride: Shape3D
    public var classCount: Int
    public var batchSize: Int
    public var paddingMode: PaddingMode
    public var weighting: Weighting
    public var placement: Placement
    /// Test-time augmentation: average over these mirrorings (each a set of flipped axes, 0 = Z, 1 = Y,
    /// 2 = X); `[[]]` = no mirroring. `allMirrorings` gives the 8 of nnU-Net.
    public var mirrorings: [[Int]]
    /// Padded sizes are rounded up to a multiple of this (the UNet's 2^4).
    public var multiple: Int

    public static let allMirrorings: [[Int]] = [[], [2], [1], [1, 2], [0], [0, 2], [0, 1], [0, 1, 2]]

    public init(patch: Shape3D, stride: Shape3D? = nil, classCount: Int, batchSize: Int = 8,
                paddingMode: PaddingMode = .edge, weighting: Weighting = .uniform, placement: Placement = .padded,
                mirrorings: [[Int]] = [[]], multiple: Int = 16) throws {
        let stride = stride ?? patch
        for a in 0..<3 {
            guard patch[a] > 0 else { throw IEError.usage("test_crop_size \(patch) is invalid, expected positive sizes") }
            guard stride[a] > 0, stride[a] <= patch[a] else {
                throw IEError.usage("inference_stride_size \(stride) is invalid, expected 1 ... test_crop_size \(patch) per axis")
            }
        }
        guard classCount > 1 else { throw IEError.usage("\(classCount) classes, expected background and at least one structure") }
        if case .monai(let overlap) = placement, !(overlap >= 0 && overlap < 1) {
            throw IEError.usage("inference_overlap \(overlap) is invalid, expected 0 <= overlap < 1 (MONAI's rule)")
        }
        if case .monaiGaussian(let scale) = weighting, !(scale > 0) {
            throw IEError.usage("sigma_scale \(scale) is invalid, expected a positive value")
        }
        guard batchSize > 0 else { throw IEError.usage("inference_batch_size \(batchSize) is invalid, expected >= 1") }
        guard !mirrorings.isEmpty, mirrorings.allSatisfy({ $0.allSatisfy { (0..<3).contains($0) } }) else {
            throw IEError.usage("mirrorings \(mirrorings) are invalid, expected lists of axes 0, 1, 2")
        }
        self.patch = patch; self.stride = stride; self.classCount = classCount; self.batchSize = batchSize
        self.paddingMode = paddingMode; self.weighting = weighting; self.placement = placement
        self.mirrorings = mirrorings; self.multiple = multiple
    }

    /// The padded shape: each axis rounded up to `multiple` and at least one patch.
    public func paddedShape(_ shape: Shape3D) -> Shape3D {
        var out = shape
        for a in 0..<3 {
            let rounded = (shape[a] + multiple - 1) / multiple * multiple
            out[a] = max(rounded, patch[a])
        }
        return out
    }

    /// Patch starts along one axis: 0, s, 2s, ... while the patch fits, plus one flush with the end.
    public static func starts(length: Int, patch: Int, stride: Int) -> [Int] {
        precondition(length >= patch)
        var starts = Array(Swift.stride(from: 0, through: length - patch, by: stride))
        if starts.last! != length - patch { starts.append(length - patch) }
        return starts
    }

    /// Per-voxel weights of one patch (`weighting`): all 1, ours Gaussian normalised to a maximum of 1, or MONAI's.
    public func weights() -> [Float] {
        if case .monaiGaussian(let scale) = weighting { return SlidingWindow.monaiImportanceMap(patch: patch, sigmaScale: scale) }
        guard weighting == .gaussian else { return [Float](repeating: 1, count: patch.count) }
        func axisWeights(_ n: Int) -> [Double] {
            let sigma = Double(n) / 8, centre = Double(n / 2)
            return (0..<n).map { exp(-0.5 * (Double($0) - centre) * (Double($0) - centre) / (sigma * sigma)) }
        }
        let wz = axisWeights(patch.z), wy = axisWeights(patch.y), wx = axisWeights(patch.x)
        var weights = [Float](repeating: 0, count: patch.count)
        let peak = wz.max()! * wy.max()! * wx.max()!
        var i = 0
        for z in 0..<patch.z { for y in 0..<patch.y { for x in 0..<patch.x {
            // Never exactly 0, so every voxel keeps a positive total weight (nnU-Net does the same).
            weights[i] = Float(max(wz[z] * wy[y] * wx[x] / peak, 1e-6)); i += 1
        } } }
        return weights
    }

    /// Patch origins of the padded space (z outer, x inner), the padded shape and where the original voxel
    /// (0, 0, 0) lies in it: ours (`paddedShape`, ceil(diff/2) before, `stride`) or MONAI's (`monaiGeometry`).
    public func geometry(for shape: Shape3D) -> (padded: Shape3D, offset: Shape3D, origins: [Shape3D]) {
        let padded: Shape3D, offset: Shape3D, step: Shape3D
        if case .monai(let overlap) = placement {
            (padded, offset, step) = SlidingWindow.monaiGeometry(shape: shape, patch: patch, overlap: overlap)
        } else {
            padded = paddedShape(shape)
            offset = Shape3D((padded.z - shape.z + 1) / 2, (padded.y - shape.y + 1) / 2, (padded.x - shape.x + 1) / 2)
            step = stride
        }
        var origins = [Shape3D]()
        for z in SlidingWindow.starts(length: padded.z, patch: patch.z, stride: step.z) {
            for y in SlidingWindow.starts(length: padded.y, patch: patch.y, stride: step.y) {
                for x in SlidingWindow.starts(length: padded.x, patch: patch.x, stride: step.x) {
                    origins.append(Shape3D(z, y, x))
                }
            }
        }
        return (padded, offset, origins)
    }

    /// Runs the whole image [C, Z, Y, X] and returns posteriors [K, Z, Y, X] of the original shape: each batch of
    /// patches is cut into one reused buffer, goes through `predict`, and is added (times `weights()`) straight into
    /// the K posterior sums and the weight sum of the original voxels; at the end each sum is divided by the weight sum.
    public func run(image: [Float], channels: Int, shape: Shape3D, progress: ((Int, Int) -> Void)? = nil,
                    predict: Predictor) throws -> [Float] {
        guard channels > 0, image.count == channels * shape.count else {
            throw IEError.badInput("image has \(image.count) voxels, expected \(channels) x \(shape)")
        }
        let (_, offset, origins) = geometry(for: shape)
        let n = shape.count, p = patch.count, k = classCount
        var sums = [Float](repeating: 0, count: k * n)
        var weightSums = [Float](repeating: 0, count: n)
        let weights = self.weights()
        let zeroFill = [Float](repeating: 0, count: channels)
        var batch = [Float](repeating: 0, count: min(batchSize, origins.count) * channels * p)

        var done = 0
        for batchStart in Swift.stride(from: 0, to: origins.count, by: batchSize) {
            let count = min(batchSize, origins.count - batchStart)
            // Patch origins in original-image coordinates (negative = in the padding).
            let imageStarts = origins[batchStart..<(batchStart + count)].map {
                Shape3D($0.z - offset.z, $0.y - offset.y, $0.x - offset.x)
            }
            if batch.count != count * channels * p { batch = [Float](repeating: 0, count: count * channels * p) }
            batch.withUnsafeMutableBufferPointer { buffer in
                for (b, s) in imageStarts.enumerated() {
                    extractBox(image, channels: channels, shape: shape, start: s, size: patch, mode: paddingMode,
                               fill: zeroFill, into: UnsafeMutableBufferPointer(rebasing: buffer[(b * channels * p)...]))
                }
            }
            let posteriors = try predictMirrored(batch, count: count, channels: channels, predict: predict)
            for (b, s) in imageStarts.enumerated() {
                accumulate(posteriors, patchOffset: b * k * p, start: s, shape: shape, weights: weights,
                           sums: &sums, weightSums: &weightSums)
            }
            done += count
            progress?(done, origins.count)
        }
        // MONAI's output / count_map: a division (not a reciprocal multiplication), so both round alike.
        sums.withUnsafeMutableBufferPointer { out in
            weightSums.withUnsafeBufferPointer { w in
                guard let base = out.baseAddress else { return }
                for c in 0..<k {
                    let plane = base + c * n
                    for i in 0..<n { plane[i] /= w[i] }
                }
            }
        }
        return sums
    }

    /// InnerEye's restrict_crop_size_to_image (models/architectures/base_model.py) on the zero-padded shape:
    /// unchanged when the patch fits on every axis; otherwise patch = ceil(min(patch, shape) / multiple) * multiple
    /// and stride = max(floor(stride / patch * new patch), 1) on every axis, in float64 as numpy does.
    public static func innerEyePatchAndStride(paddedShape: Shape3D, patch: Shape3D, stride: Shape3D,
                                              multiple: Int) -> (patch: Shape3D, stride: Shape3D) {
        if (0..<3).allSatisfy({ paddedShape[$0] >= patch[$0] }) { return (patch, stride) }
        var newPatch = patch, newStride = stride
        for a in 0..<3 {
            let m = Double(multiple)
            let cropped = (Double(min(patch[a], paddedShape[a])) / m).rounded(.up) * m
            let ratio = Double(stride[a]) / Double(patch[a])
            newPatch[a] = Int(cropped)
            newStride[a] = Int(max((ratio * cropped).rounded(.down), 1))
        }
        return (newPatch, newStride)
    }

    /// InnerEye's whole-image inference (SPEC §5, `inference_tiling: InnerEye`). The image is zero-padded, centred
    /// with ceil(diff/2) before, to a multiple of `multiple` (EnsureShapeMultiple); patch and stride are restricted
    /// to a smaller image (`innerEyePatchAndStride`); the overlap o = patch - stride must be even (torchio); the
    /// padded image is padded again by o/2 per side with `paddingMode` (GridSampler); patch starts are 0, s, 2s, ...
    /// plus one flush with the end; each patch's centre [o/2, patch - o/2) is written into the output in the
    /// sampler's (z, y, x) order, a later patch overwriting an earlier one (GridAggregator "crop"); the padding is
    /// cropped away. The result: posteriors [K, Z, Y, X] of the original shape.
    public func runInnerEye(image: [Float], channels: Int, shape: Shape3D, progress: ((Int, Int) -> Void)? = nil,
                            predict: Predictor) throws -> [Float] {
        guard channels > 0, image.count == channels * shape.count else {
            throw IEError.badInput("image has \(image.count) voxels, expected \(channels) x \(shape)")
        }
        guard paddingMode != .noPadding else {
            throw IEError.usage("padding_mode NoPadding with inference_tiling InnerEye, expected Edge, Zero or Reflect (torchio's GridSampler refuses no_padding)")
        }
        var multipleShape = shape
        for a in 0..<3 { multipleShape[a] = (shape[a] + multiple - 1) / multiple * multiple }
        let zeroFill = [Float](repeating: 0, count: channels)
        let padded = padToAtLeast(image, channels: channels, shape: shape, target: multipleShape, mode: .zero, fill: zeroFill)
        let (tile, step) = SlidingWindow.innerEyePatchAndStride(paddedShape: multipleShape, patch: patch,
                                                               stride: stride, multiple: multiple)
        let overlap = Shape3D(tile.z - step.z, tile.y - step.y, tile.x - step.x)
        for a in 0..<3 where overlap[a] % 2 != 0 || overlap[a] < 0 {
            throw IEError.usage("inference_tiling InnerEye: patch \(tile) and stride \(step) overlap by \(overlap), expected an even overlap per axis (torchio's GridSampler)")
        }
        let border = Shape3D(overlap.z / 2, overlap.y / 2, overlap.x / 2)
        // Starts in the sampler's space (the multiple-padded image plus the border on each side).
        let axisStarts = (0..<3).map { a in
            SlidingWindow.starts(length: multipleShape[a] + overlap[a], patch: tile[a], stride: step[a])
        }
        var origins = [Shape3D]()
        for z in axisStarts[0] { for y in axisStarts[1] { for x in axisStarts[2] { origins.append(Shape3D(z, y, x)) } } }
        let window = try SlidingWindow(patch: tile, stride: step, classCount: classCount, batchSize: batchSize,
                                       paddingMode: paddingMode, mirrorings: mirrorings, multiple: multiple)
        let n = shape.count, p = tile.count, k = classCount
        var output = [Float](repeating: 0, count: k * n)
        var done = 0
        for batchStart in Swift.stride(from: 0, to: origins.count, by: batchSize) {
            let batchOrigins = origins[batchStart..<min(batchStart + batchSize, origins.count)]
            var batch = [Float]()
            batch.reserveCapacity(batchOrigins.count * channels * p)
            for o in batchOrigins {
                // Sampler space minus the border = multiple-padded space; outside it, `paddingMode`.
                let start = Shape3D(o.z - border.z, o.y - border.y, o.x - border.x)
                batch.append(contentsOf: extractBox(padded.data, channels: channels, shape: multipleShape, start: start,
                                                    size: tile, mode: paddingMode, fill: zeroFill))
            }
            let posteriors = try window.predictMirrored(batch, count: batchOrigins.count, channels: channels, predict: predict)
            for (b, o) in batchOrigins.enumerated() {
                // Patch voxel i (as its input voxel) is original voxel o - border + i - offset.
                let shift = Shape3D(o.z - border.z - padded.offset.z, o.y - border.y - padded.offset.y,
                                   o.x - border.x - padded.offset.x)
                for z in border.z..<(tile.z - border.z) {
                    let iz = shift.z + z
                    guard iz >= 0 && iz < shape.z else { continue }
                    for y in border.y..<(tile.y - border.y) {
                        let iy = shift.y + y
                        guard iy >= 0 && iy < shape.y else { continue }
                        for x in border.x..<(tile.x - border.x) {
                            let ix = shift.x + x
                            guard ix >= 0 && ix < shape.x else { continue }
                            let voxel = (iz * shape.y + iy) * shape.x + ix, patchVoxel = (z * tile.y + y) * tile.x + x
                            for c in 0..<k { output[c * n + voxel] = posteriors[(b * k + c) * p + patchVoxel] }
                        }
                    }
                }
            }
            done += batchOrigins.count
            progress?(done, origins.count)
        }
        return output
    }

    /// Average of `predict` over the mirrorings (each input mirrored, each output mirrored back).
    func predictMirrored(_ batch: [Float], count: Int, channels: Int, predict: Predictor) throws -> [Float] {
        let expected = count * classCount * patch.count
        var mean = [Float]()
        for axes in mirrorings {
            let input = axes.isEmpty ? batch : mirror(batch, volumes: count * channels, axes: axes)
            var output = try predict(input, count, patch)
            guard output.count == expected else {
                throw IEError.failure("the network returned \(output.count) values for \(count) patches, expected \(expected) (\(classCount) classes x \(patch))")
            }
            if !axes.isEmpty { output = mirror(output, volumes: count * classCount, axes: axes) }
            if mean.isEmpty { mean = output } else { for i in mean.indices { mean[i] += output[i] } }
        }
        if mirrorings.count > 1 {
            let scale = 1 / Float(mirrorings.count)
            for i in mean.indices { mean[i] *= scale }
        }
        return mean
    }

    /// Flips `volumes` consecutive patch-shaped volumes along the given axes (an involution).
    public func mirror(_ data: [Float], volumes: Int, axes: [Int]) -> [Float] {
        let fz = axes.contains(0), fy = axes.contains(1), fx = axes.contains(2)
        var out = [Float](repeating: 0, count: data.count)
        let p = patch.count
        for v in 0..<volumes {
            let base = v * p
            for z in 0..<patch.z {
                let sz = fz ? patch.z - 1 - z : z
                for y in 0..<patch.y {
                    let sy = fy ? patch.y - 1 - y : y
                    let dst = base + (z * patch.y + y) * patch.x, src = base + (sz * patch.y + sy) * patch.x
                    if fx { for x in 0..<patch.x { out[dst + x] = data[src + patch.x - 1 - x] } }
                    else { for x in 0..<patch.x { out[dst + x] = data[src + x] } }
                }
            }
        }
        return out
    }

    /// Adds one patch's weighted posteriors to the voxels it covers inside the original image (row by row,
    /// contiguous in x, so the inner loops vectorise).
    func accumulate(_ posteriors: [Float], patchOffset: Int, start: Shape3D, shape: Shape3D, weights: [Float],
                    sums: inout [Float], weightSums: inout [Float]) {
        let n = shape.count, p = patch.count
        let z0 = max(0, -start.z), z1 = min(patch.z, shape.z - start.z)
        let y0 = max(0, -start.y), y1 = min(patch.y, shape.y - start.y)
        let x0 = max(0, -start.x), x1 = min(patch.x, shape.x - start.x)
        guard z0 < z1, y0 < y1, x0 < x1 else { return }
        precondition(posteriors.count >= patchOffset + classCount * p && weights.count == p
                     && sums.count == classCount * n && weightSums.count == n)
        let width = x1 - x0
        posteriors.withUnsafeBufferPointer { post in
            weights.withUnsafeBufferPointer { w in
                sums.withUnsafeMutableBufferPointer { out in
                    weightSums.withUnsafeMutableBufferPointer { total in
                        for z in z0..<z1 {
                            for y in y0..<y1 {
                                let patchRow = (z * patch.y + y) * patch.x + x0
                                let imageRow = ((start.z + z) * shape.y + (start.y + y)) * shape.x + start.x + x0
                                let wRow = w.baseAddress! + patchRow
                                let totalRow = total.baseAddress! + imageRow
                                for x in 0..<width { totalRow[x] += wRow[x] }
                                for c in 0..<classCount {
                                    let src = post.baseAddress! + patchOffset + c * p + patchRow
                                    let dst = out.baseAddress! + c * n + imageRow
                                    for x in 0..<width { dst[x] += src[x] * wRow[x] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

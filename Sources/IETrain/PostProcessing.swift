// Post-processing of stitched posteriors [K, Z, Y, X] (SPEC §5, InnerEye's inference pipeline post_process):
// mask -> optional Gaussian smoothing (sigma_mm / spacing per axis) -> argmax -> summed probability rules ->
// largest connected component (6-connectivity) per listed class -> slice exclusion rules -> uint8 outputs.
import Foundation
import IECore

/// InnerEye's summed_probability_rules and slice_exclusion_rules as class indices (1-based structures), each list
/// applied in its order.
public struct LabelRules: Sendable, Equatable {
    public struct SummedProbability: Sendable, Equatable {
        public var first: Int, second: Int, external: Int
        public init(first: Int, second: Int, external: Int) { self.first = first; self.second = second; self.external = external }
    }
    public struct SliceExclusion: Sendable, Equatable {
        public var higher: Int, lower: Int, higherDominates: Bool
        public init(higher: Int, lower: Int, higherDominates: Bool) {
            self.higher = higher; self.lower = lower; self.higherDominates = higherDominates
        }
    }
    public var summedProbability: [SummedProbability]
    public var sliceExclusion: [SliceExclusion]
    public init(summedProbability: [SummedProbability] = [], sliceExclusion: [SliceExclusion] = []) {
        self.summedProbability = summedProbability; self.sliceExclusion = sliceExclusion
    }
}

public enum PostProcessing {
    /// Outside the mask the background posterior becomes 1 and every other class 0.
    public static func applyMask(_ posteriors: inout [Float], classCount: Int, mask: [UInt8]) {
        let n = mask.count
        precondition(posteriors.count == classCount * n)
        for i in 0..<n where mask[i] == 0 {
            posteriors[i] = 1
            for k in 1..<classCount { posteriors[k * n + i] = 0 }
        }
    }

    /// Gaussian smoothing of each class map, sigma = sigma_mm / spacing per axis (scipy's gaussian_filter
    /// defaults: reflect boundary, truncate 4), as InnerEye's `gaussian_smooth_posteriors`.
    public static func smooth(_ posteriors: inout [Float], classCount: Int, shape: Shape3D,
                              sigmaMM: (z: Double, y: Double, x: Double),
                              spacing: (z: Double, y: Double, x: Double)) {
        let n = shape.count
        let sigma = (z: sigmaMM.z / spacing.z, y: sigmaMM.y / spacing.y, x: sigmaMM.x / spacing.x)
        for k in 0..<classCount {
            var map = Array(posteriors[(k * n)..<((k + 1) * n)])
            gaussianFilter(&map, shape: shape, sigma: sigma)
            posteriors.replaceSubrange((k * n)..<((k + 1) * n), with: map)
        }
    }

    /// The class of highest posterior per voxel; ties go to the lower class (numpy.argmax).
    public static func argmax(_ posteriors: [Float], classCount: Int) -> [UInt8] {
        let n = posteriors.count / classCount
        var labels = [UInt8](repeating: 0, count: n)
        var best = Array(posteriors[0..<n])
        for k in 1..<classCount {
            let base = k * n
            for i in 0..<n where posteriors[base + i] > best[i] { best[i] = posteriors[base + i]; labels[i] = UInt8(k) }
        }
        return labels
    }

    /// Keeps, for each listed class, only its largest 6-connected component; the removed voxels become
    /// background (InnerEye's `extract_largest_foreground_connected_component`; equal sizes keep the
    /// component met first in storage order, as numpy.argmax over scipy.ndimage.label's numbering).
    /// Memory: one byte per voxel besides the labels.
    public static func keepLargestComponent(_ labels: inout [UInt8], shape: Shape3D, classes: [Int]) {
        precondition(labels.count == shape.count)
        var visited = [Bool](repeating: false, count: labels.count)
        var stack = [Int]()
        // Flood fill from `seed` over voxels of class c, marking `visited` with `mark`; returns the size.
        func flood(_ seed: Int, _ c: UInt8, _ mark: Bool) -> Int {
            var size = 0
            visited[seed] = mark
            stack.append(seed)
            let plane = shape.x * shape.y
            while let v = stack.popLast() {
                size += 1
                let x = v % shape.x, y = (v / shape.x) % shape.y, z = v / plane
                @inline(__always) func visit(_ u: Int) {
                    if labels[u] == c && visited[u] != mark { visited[u] = mark; stack.append(u) }
                }
                if x > 0 { visit(v - 1) }
                if x + 1 < shape.x { visit(v + 1) }
                if y > 0 { visit(v - shape.x) }
                if y + 1 < shape.y { visit(v + shape.x) }
                if z > 0 { visit(v - plane) }
                if z + 1 < shape.z { visit(v + plane) }
            }
            return size
        }
        for cls in classes where cls > 0 && cls < 256 {
            let c = UInt8(cls)
            var components = 0, largestSeed = -1, largestSize = 0
            for seed in labels.indices where labels[seed] == c && !visited[seed] {
                let size = flood(seed, c, true)
                components += 1
                if size > largestSize { largestSize = size; largestSeed = seed }
            }
            guard components > 0 else { continue }
            // Unmark the largest component, then every class voxel still marked is removed.
            _ = flood(largestSeed, c, false)
            for i in labels.indices where labels[i] == c {
                if visited[i] { labels[i] = 0; visited[i] = false }
            }
        }
    }

    /// InnerEye's apply_summed_probability_rules for one rule: a voxel labelled `external` whose external
    /// posterior is below the float32 sum of the `first` and `second` posteriors becomes `first` if p(first) >=
    /// p(second), else `second`.
    public static func applySummedProbability(_ labels: inout [UInt8], posteriors: [Float], rule: LabelRules.SummedProbability) {
        let n = labels.count
        precondition(posteriors.count >= n * (max(rule.first, rule.second, rule.external) + 1))
        let external = UInt8(rule.external)
        for i in 0..<n where labels[i] == external {
            let a = posteriors[rule.first * n + i], b = posteriors[rule.second * n + i]
            if posteriors[rule.external * n + i] < a + b { labels[i] = UInt8(a >= b ? rule.first : rule.second) }
        }
    }

    /// InnerEye's apply_slice_exclusion_rules for one rule: if the lowest z slice holding `higher` is at or below
    /// the highest slice holding `lower`, every voxel of the replaced class in those slices (inclusive) becomes the
    /// dominant class (`higher` when higherDominates, else `lower`).
    public static func applySliceExclusion(_ labels: inout [UInt8], shape: Shape3D, rule: LabelRules.SliceExclusion) {
        precondition(labels.count == shape.count)
        let plane = shape.y * shape.x, higher = UInt8(rule.higher), lower = UInt8(rule.lower)
        var lowestHigher: Int?, highestLower: Int?
        for z in 0..<shape.z {
            let slice = labels[(z * plane)..<((z + 1) * plane)]
            if lowestHigher == nil && slice.contains(higher) { lowestHigher = z }
            if slice.contains(lower) { highestLower = z }
        }
        guard let from = lowestHigher, let to = highestLower, from <= to else { return }
        let (dominant, replaced) = rule.higherDominates ? (higher, lower) : (lower, higher)
        for i in (from * plane)..<((to + 1) * plane) where labels[i] == replaced { labels[i] = dominant }
    }

    /// Normalised entropy -sum p log2 p / log2 K in [0, 1] (0 log 0 = 0).
    public static func normalisedEntropy(_ posteriors: [Float], classCount: Int) -> [Float] {
        let n = posteriors.count / classCount
        let norm = log2(Double(classCount))
        var out = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var h = 0.0
            for k in 0..<classCount {
                let p = Double(posteriors[k * n + i])
                if p > 0 { h -= p * log2(p) }
            }
            out[i] = Float(h / norm)
        }
        return out
    }

    /// A [0, 1] map as uint8: value*255 truncated (values clamped to [0, 1] first; NaN, which no finite input
    /// produces, as 0 rather than a trap).
    public static func toUInt8(_ values: ArraySlice<Float>) -> [UInt8] {
        values.map { v in
            guard !v.isNaN else { return 0 }
            let scaled = Double(min(max(v, 0), 1)) * 255
            return UInt8(scaled.rounded(.towardZero))
        }
    }

    /// Everything after stitching, in InnerEye's order: returns the final posteriors (masked, smoothed) and the
    /// label map. `votes` (an ensemble's majority vote) replaces the argmax.
    public static func run(posteriors: [Float], classCount: Int, shape: Shape3D, mask: [UInt8]?,
                           smoothingMM: (z: Double, y: Double, x: Double)?,
                           spacing: (z: Double, y: Double, x: Double),
                           largestComponentClasses: [Int], rules: LabelRules = LabelRules(),
                           votes: [UInt8]? = nil) -> (posteriors: [Float], labels: [UInt8]) {
        var p = posteriors
        if let mask { applyMask(&p, classCount: classCount, mask: mask) }
        if let smoothingMM, smoothingMM.z > 0 || smoothingMM.y > 0 || smoothingMM.x > 0 {
            smooth(&p, classCount: classCount, shape: shape, sigmaMM: smoothingMM, spacing: spacing)
        }
        var labels = votes ?? argmax(p, classCount: classCount)
        for rule in rules.summedProbability { applySummedProbability(&labels, posteriors: p, rule: rule) }
        if !largestComponentClasses.isEmpty {
            keepLargestComponent(&labels, shape: shape, classes: largestComponentClasses)
        }
        for rule in rules.sliceExclusion { applySliceExclusion(&labels, shape: shape, rule: rule) }
        return (p, labels)
    }
}

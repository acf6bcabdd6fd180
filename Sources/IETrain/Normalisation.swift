// Photometric normalisation per image channel over the whole image, with InnerEye's formulas
// (InnerEye/ML/photometric_normalization.py and utils/transforms.py):
//   linear map     y = clip(g*x + c, out), g = (out1-out0)/(in1-in0), c = out1 - g*in1
//   CtWindow       input range = (level - window/2, level + window/2)
//   SimpleNorm     (x - mean) / std over voxels with mask == 1 (population std); output not clipped
//   TrimmedNorm    inside the mask: keep values strictly between the trim percentiles (numpy "midpoint"),
//                  robust (median, std = IQR / (2*0.67448975), min, max) of those; input range =
//                  (max(median - sharpen*std, min), min(median + sharpen*std, max)); outside the mask = out0
//   MriWindow      Otsu threshold t of the whole channel (256-bin histogram as skimage); robust stats of
//                  values > t; input range = (max(level - sharpen*std, t), min(max, level + tail*sharpen*std));
//                  values < t are set to 0 before the linear map. The mask is not used (as InnerEye).
import Foundation
import IECore

public enum NormalisationMethod: String, Sendable, CaseIterable {
    case ctWindow = "CtWindow"
    case mriWindow = "MriWindow"
    case trimmedNorm = "TrimmedNorm"
    case simpleNorm = "SimpleNorm"
    case none = "None"
}

/// The norm_method parameters of SPEC §1.4 (InnerEye names and defaults).
public struct PhotometricNormalisation: Sendable {
    public var method: NormalisationMethod
    public var window: Double = 600
    public var level: Double = 50
    public var outputRange: (low: Double, high: Double) = (-1, 1)
    public var sharpen: Double = 0.9
    /// MriWindow upper-tail factor, one per channel or one for all (InnerEye accepts a float or a list).
    public var tail: [Double] = [1.0]
    public var trimPercentiles: (low: Double, high: Double) = (1, 99)

    public init(method: NormalisationMethod, window: Double = 600, level: Double = 50,
                outputRange: (low: Double, high: Double) = (-1, 1), sharpen: Double = 0.9, tail: [Double] = [1.0],
                trimPercentiles: (low: Double, high: Double) = (1, 99)) {
        self.method = method; self.window = window; self.level = level; self.outputRange = outputRange
        self.sharpen = sharpen; self.tail = tail; self.trimPercentiles = trimPercentiles
    }

    /// Normalises every channel of a [C, Z, Y, X] image; `mask` (Z*Y*X, nonzero = inside) or nil for all.
    public func apply(image: [Float], channels: Int, mask: [UInt8]?) throws -> [Float] {
        guard channels > 0, image.count % channels == 0 else {
            throw IEError.badInput("image has \(image.count) voxels, expected a multiple of \(channels) channels")
        }
        let n = image.count / channels
        if let mask, mask.count != n {
            throw IEError.badInput("mask has \(mask.count) voxels, expected \(n) (the image's)")
        }
        var out = [Float]()
        out.reserveCapacity(image.count)
        for c in 0..<channels {
            let channel = Array(image[(c * n)..<((c + 1) * n)])
            out.append(contentsOf: try apply(channel: channel, channelIndex: c, mask: mask))
        }
        return out
    }

    /// Normalises one channel.
    public func apply(channel: [Float], channelIndex: Int = 0, mask: [UInt8]?) throws -> [Float] {
        switch method {
        case .none:
            return channel
        case .ctWindow:
            return linearTransform(channel, input: (level - window / 2, level + window / 2), output: outputRange)
        case .simpleNorm:
            let inside = selectInside(channel, mask: mask)
            guard !inside.isEmpty else { throw IEError.badInput("SimpleNorm: the mask is empty, expected voxels inside") }
            let mean = inside.reduce(0, +) / Double(inside.count)
            let variance = inside.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(inside.count)
            let std = variance.squareRoot()
            guard std > 0 else { throw IEError.badInput("SimpleNorm: the image is constant inside the mask, expected some contrast") }
            return channel.map { Float((Double($0) - mean) / std) }
        case .trimmedNorm:
            let inside = selectInside(channel, mask: mask)
            guard !inside.isEmpty else { throw IEError.badInput("TrimmedNorm: the mask is empty, expected voxels inside") }
            let sorted = inside.sorted()
            let lower = percentileMidpoint(sorted: sorted, trimPercentiles.low)
            let upper = percentileMidpoint(sorted: sorted, trimPercentiles.high)
            let kept = sorted.filter { $0 > lower && $0 < upper }
            guard !kept.isEmpty else {
                throw IEError.badInput("TrimmedNorm: no voxel lies strictly between the trim percentiles \(lower) and \(upper), expected a spread of values")
            }
            let stats = robustMeanStd(sorted: kept)
            let range = (max(stats.median - stats.std * sharpen, stats.min), min(stats.median + stats.std * sharpen, stats.max))
            var out = linearTransform(channel, input: range, output: outputRange)
            if let mask {
                for i in out.indices where mask[i] == 0 { out[i] = Float(outputRange.low) }
            }
            return out
        case .mriWindow:
            guard !channel.isEmpty else { return channel }
            let threshold = otsuThreshold(channel)
            let foreground = channel.lazy.map(Double.init).filter { $0 > threshold }.sorted()
            guard !foreground.isEmpty else {
                throw IEError.badInput("MriWindow: no voxel above the Otsu threshold \(threshold), expected a non-constant image")
            }
            let stats = robustMeanStd(sorted: foreground)
            let tailFactor = tail.count == 1 ? tail[0] : (channelIndex < tail.count ? tail[channelIndex] : tail.last!)
            let range = (max(stats.median - stats.std * sharpen, threshold),
                         min(stats.max, stats.median + tailFactor * stats.std * sharpen))
            let thresholded = channel.map { Double($0) < threshold ? Float(0) : $0 }
            return linearTransform(thresholded, input: range, output: outputRange)
        }
    }

    private func selectInside(_ channel: [Float], mask: [UInt8]?) -> [Double] {
        guard let mask else { return channel.map(Double.init) }
        var values = [Double]()
        for i in channel.indices where mask[i] != 0 { values.append(Double(channel[i])) }
        return values
    }
}

/// InnerEye's LinearTransform: the line through (in0, out0) and (in1, out1), clipped to the output range.
public func linearTransform(_ data: [Float], input: (Double, Double), output: (low: Double, high: Double)) -> [Float] {
    let gradient = (output.high - output.low) / (input.1 - input.0)
    let intercept = output.high - gradient * input.1
    let lo = min(output.low, output.high), hi = max(output.low, output.high)
    return data.map { Float(min(max(Double($0) * gradient + intercept, lo), hi)) }
}

/// numpy.percentile(..., interpolation="midpoint") of sorted values: the mean of the two order statistics
/// around position q/100*(n-1) (the single one when the position is whole).
public func percentileMidpoint(sorted: [Double], _ q: Double) -> Double {
    precondition(!sorted.isEmpty)
    let position = q / 100 * Double(sorted.count - 1)
    let below = Int(position.rounded(.down)), above = Int(position.rounded(.up))
    return (sorted[below] + sorted[min(above, sorted.count - 1)]) / 2
}

/// Median, IQR-based standard deviation (IQR / (2 * 0.67448975)), min and max of sorted values, with
/// midpoint percentiles, as InnerEye's `robust_mean_std`.
public func robustMeanStd(sorted: [Double]) -> (median: Double, std: Double, min: Double, max: Double) {
    let q25 = percentileMidpoint(sorted: sorted, 25)
    let median = percentileMidpoint(sorted: sorted, 50)
    let q75 = percentileMidpoint(sorted: sorted, 75)
    return (median, (q75 - q25) / (2 * 0.67448975), sorted.first!, sorted.last!)
}

/// Otsu's threshold as skimage.filters.threshold_otsu on a float image: a 256-bin histogram over
/// [min, max]; the threshold is the centre of the last bin of the lower class at the maximum
/// between-class variance. A constant image returns its value.
public func otsuThreshold(_ values: [Float], bins: Int = 256) -> Double {
    var lo = Double.infinity, hi = -Double.infinity
    for v in values { lo = min(lo, Double(v)); hi = max(hi, Double(v)) }
    if lo == hi { return lo }
    var histogram = [Double](repeating: 0, count: bins)
    let width = (hi - lo) / Double(bins)
    for v in values {
        // numpy.histogram: bins are half-open [e_i, e_i+1) except the last, which includes the maximum.
        var b = Int((Double(v) - lo) / width)
        if b >= bins { b = bins - 1 }
        histogram[b] += 1
    }
    let centres = (0..<bins).map { lo + (Double($0) + 0.5) * width }
    // Cumulative weights and means from below (class 1) and from above (class 2).
    var weightBelow = [Double](repeating: 0, count: bins), sumBelow = [Double](repeating: 0, count: bins)
    var w = 0.0, s = 0.0
    for i in 0..<bins { w += histogram[i]; s += histogram[i] * centres[i]; weightBelow[i] = w; sumBelow[i] = s }
    var weightAbove = [Double](repeating: 0, count: bins), sumAbove = [Double](repeating: 0, count: bins)
    w = 0; s = 0
    for i in stride(from: bins - 1, through: 0, by: -1) {
        w += histogram[i]; s += histogram[i] * centres[i]; weightAbove[i] = w; sumAbove[i] = s
    }
    var best = -1.0, bestIndex = 0
    for i in 0..<(bins - 1) {
        let w1 = weightBelow[i], w2 = weightAbove[i + 1]
        guard w1 > 0, w2 > 0 else { continue }
        let m1 = sumBelow[i] / w1, m2 = sumAbove[i + 1] / w2
        let variance = w1 * w2 * (m1 - m2) * (m1 - m2)
        if variance > best { best = variance; bestIndex = i }
    }
    return centres[bestIndex]
}

// Intensity transforms of the scalar models (SPEC §13): ColorJitter's brightness and contrast (torchvision's
// formulas), RandomGamma (TorchIO's log-gamma draw), GaussianNoise, RandomErasing (torchvision) and
// ExpandChannels (InnerEye's repeat of a grey image to N channels).
import Foundation
import IECore

extension TransformFieldReader {
    /// A boolean field.
    mutating func flag(_ key: String, default value: Bool) throws -> Bool {
        guard let field = take(key) else { return value }
        guard case .flag(let b) = field else { throw bad(key, field, expected: "true or false") }
        return b
    }
}

/// torchvision ColorJitter restricted to brightness and contrast: the two are applied in a random order, each
/// with a factor U(range) (a number v means [max(0, 1 - v), 1 + v]). Brightness: f x. Contrast:
/// f x + (1 - f) mean, the mean of the grey image (1 channel: itself; 3 channels: 0.2989 R + 0.587 G + 0.114 B)
/// over all pixels (all slices of a 3-D image). Results are clipped to [0, 1] as torchvision does for float
/// images, unless `clip: false`.
public struct ColorJitterTransform: ImageTransform {
    public static let transformName = "ColorJitter"
    public var probability: Double
    public var brightness: (Double, Double)?
    public var contrast: (Double, Double)?
    public var clip: Bool

    public init(brightness: (Double, Double)? = nil, contrast: (Double, Double)? = nil, clip: Bool = true,
                probability: Double = 1) {
        self.brightness = brightness; self.contrast = contrast; self.clip = clip; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let expected = "a number >= 0 or a [min, max] pair of factors >= 0"
        let brightness = try fields.range("brightness", default: nil, aroundOne: true, expected: expected) { $0 >= 0 }
        let contrast = try fields.range("contrast", default: nil, aroundOne: true, expected: expected) { $0 >= 0 }
        self.init(brightness: brightness, contrast: contrast, clip: try fields.flag("clip", default: true),
                  probability: probability)
    }

    public func adjustBrightness(_ image: TransformImage, factor: Double) -> TransformImage {
        var out = image
        out.values = image.values.map { clamped(factor * Double($0)) }
        return out
    }

    public func adjustContrast(_ image: TransformImage, factor: Double) throws -> TransformImage {
        let n = image.voxelsPerChannel
        let weights: [Double]
        switch image.channels {
        case 1: weights = [1]
        case 3: weights = [0.2989, 0.587, 0.114]
        default:
            throw IEError.badInput("ColorJitter contrast: the image has \(image.channels) channels, expected 1 or 3")
        }
        var sum = 0.0
        for c in 0..<image.channels { for i in 0..<n { sum += weights[c] * Double(image.values[c * n + i]) } }
        let mean = sum / Double(n)
        var out = image
        out.values = image.values.map { clamped(factor * Double($0) + (1 - factor) * mean) }
        return out
    }

    func clamped(_ v: Double) -> Float { Float(clip ? min(max(v, 0), 1) : v) }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        let brightnessFirst = rng.bernoulli(0.5)
        let b = brightness.map { rng.uniform($0.0, $0.1) }
        let c = contrast.map { rng.uniform($0.0, $0.1) }
        var out = image
        for step in brightnessFirst ? [0, 1] : [1, 0] {
            if step == 0, let b { out = adjustBrightness(out, factor: b) }
            if step == 1, let c { out = try adjustContrast(out, factor: c) }
        }
        return out
    }
}

/// TorchIO-style RandomGamma: gamma = exp(U(log_gamma)) (a number v means [-v, v]); x -> sign(x) |x|^gamma.
public struct RandomGammaTransform: ImageTransform {
    public static let transformName = "RandomGamma"
    public var probability: Double
    public var logGamma: (Double, Double)

    public init(logGamma: (Double, Double) = (-0.3, 0.3), probability: Double = 1) {
        self.logGamma = logGamma; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let range = try fields.range("log_gamma", default: (-0.3, 0.3), symmetric: true,
                                     expected: "a number >= 0 or a [min, max] pair") { abs($0) < 20 }
        self.init(logGamma: range ?? (-0.3, 0.3), probability: probability)
    }

    public static func adjust(_ image: TransformImage, gamma: Double) -> TransformImage {
        var out = image
        out.values = image.values.map { v in
            let magnitude = Float(pow(Double(abs(v)), gamma))
            return v < 0 ? -magnitude : magnitude
        }
        return out
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        RandomGammaTransform.adjust(image, gamma: exp(rng.uniform(logGamma.0, logGamma.1)))
    }
}

/// Additive Gaussian noise mean + sigma N(0, 1) per voxel; `std` a number (fixed sigma) or a [min, max]
/// pair (sigma U(min, max) per image). No clipping (torchvision's v2 GaussianNoise clips to [0, 1]).
public struct GaussianNoiseTransform: ImageTransform {
    public static let transformName = "GaussianNoise"
    public var probability: Double
    public var mean: Double
    public var std: (Double, Double)

    public init(std: (Double, Double), mean: Double = 0, probability: Double = 1) {
        self.std = std; self.mean = mean; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let expected = "a number >= 0 or a [min, max] pair of numbers >= 0"
        let std: (Double, Double)
        if case .number(let s)? = fields.raw("std"), s.isFinite, s >= 0 {
            std = (s, s)
        } else {
            std = try fields.range("std", default: (0.1, 0.1), expected: expected) { $0 >= 0 } ?? (0.1, 0.1)
        }
        self.init(std: std, mean: try fields.number("mean", default: 0), probability: probability)
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        let sigma = rng.uniform(std.0, std.1)
        var out = image
        for i in out.values.indices { out.values[i] = Float(Double(out.values[i]) + mean + sigma * rng.nextGaussian()) }
        return out
    }
}

/// torchvision RandomErasing (p = 0.5 by default): a rectangle of area fraction U(scale) and aspect ratio
/// (height / width) log-uniform in `ratio`, strictly smaller than the image (10 tries, else nothing is erased),
/// set to `value` (a number, or "random" for standard normal values); through all slices of a 3-D image.
public struct RandomErasingTransform: ImageTransform {
    public static let transformName = "RandomErasing"
    public static var defaultProbability: Double { 0.5 }
    public var probability: Double
    public var scale: (Double, Double)
    public var ratio: (Double, Double)
    /// nil: random normal values.
    public var value: Float?

    public init(scale: (Double, Double) = (0.02, 0.33), ratio: (Double, Double) = (0.3, 3.3), value: Float? = 0,
                probability: Double = 0.5) {
        self.scale = scale; self.ratio = ratio; self.value = value; self.probability = probability
    }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let scale = try fields.range("scale", default: (0.02, 0.33), expected: "a [min, max] pair in [0, 1]") { $0 >= 0 && $0 <= 1 }
        let ratio = try fields.range("ratio", default: (0.3, 3.3), expected: "a [min, max] pair of numbers > 0") { $0 > 0 }
        var value: Float? = 0
        switch fields.raw("value") {
        case nil: break
        case .number(let v)? where v.isFinite: value = Float(v)
        case .text("random")?: value = nil
        case let other?: throw fields.bad("value", other, expected: "a finite number or 'random'")
        }
        self.init(scale: scale ?? (0.02, 0.33), ratio: ratio ?? (0.3, 3.3), value: value, probability: probability)
    }

    /// The erased box (top, left, height, width), or nil when no try fits.
    public func box(height: Int, width: Int, using rng: inout Xoshiro256) -> (top: Int, left: Int, height: Int, width: Int)? {
        let area = Double(height * width)
        let logRatio = (log(ratio.0), log(ratio.1))
        for _ in 0..<10 {
            let eraseArea = area * rng.uniform(scale.0, scale.1)
            let aspect = exp(rng.uniform(logRatio.0, logRatio.1))
            let h = transformRoundHalfToEven((eraseArea * aspect).squareRoot()), w = transformRoundHalfToEven((eraseArea / aspect).squareRoot())
            guard h < height, w < width else { continue }
            return (rng.nextInt(below: height - h + 1), rng.nextInt(below: width - w + 1), h, w)
        }
        return nil
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        guard let b = box(height: image.height, width: image.width, using: &rng) else { return image }
        var out = image
        for c in 0..<image.channels { for z in 0..<image.depth {
            for y in b.top..<(b.top + b.height) { for x in b.left..<(b.left + b.width) {
                out[c, z, y, x] = value ?? Float(rng.nextGaussian())
            } }
        } }
        return out
    }
}

/// Repeats a 1-channel image to `channels` channels (for encoders that expect RGB input).
public struct ExpandChannelsTransform: ImageTransform {
    public static let transformName = "ExpandChannels"
    public var probability: Double
    public var channels: Int

    public init(channels: Int = 3, probability: Double = 1) { self.channels = channels; self.probability = probability }

    public init(fields: inout TransformFieldReader, probability: Double) throws {
        let channels = try fields.integer("channels", default: 3, expected: "an integer >= 1") { $0 >= 1 && $0 <= 4096 }
        self.init(channels: channels, probability: probability)
    }

    public func apply(_ image: TransformImage, using rng: inout Xoshiro256) throws -> TransformImage {
        guard image.channels == 1 else {
            throw IEError.badInput("ExpandChannels: the image has \(image.channels) channels, expected 1")
        }
        return try TransformImage(channels: channels, depth: image.depth, height: image.height, width: image.width,
                                  values: Array([[Float]](repeating: image.values, count: channels).joined()))
    }
}

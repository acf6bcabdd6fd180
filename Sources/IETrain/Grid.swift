// Plain-array building blocks shared by sampling, augmentation, sliding-window inference and post-processing.
// Arrays are [C, Z, Y, X] (X fastest) Float32 or UInt8, as IENet's NCDHW tensors without the batch axis,
// so a crop can be copied into a batch with one memcpy.
import IECore

/// How to fill voxels added around an image (InnerEye's padding_mode).
public enum PaddingMode: String, Sendable, CaseIterable {
    /// Repeat the border voxel (numpy "edge"; InnerEye's default).
    case edge
    /// Fill with a constant (0 for images; background for labels; outside for masks).
    case zero
    /// Mirror without repeating the border voxel (numpy "reflect").
    case reflect
    /// Mirror repeating the border voxel (numpy "symmetric": d c b a | a b c d | d c b a).
    case symmetric
    /// InnerEye's NoPadding: a training image smaller than the crop is an error; at inference the
    /// (cropped-away) padding is zero.
    case noPadding

    /// Accepts InnerEye's and numpy's spellings: Edge/edge, Zero/zero/constant, reflect, symmetric,
    /// NoPadding/no_padding (case-insensitive).
    public init?(configValue: String) {
        switch configValue.lowercased() {
        case "edge": self = .edge
        case "zero", "constant": self = .zero
        case "reflect": self = .reflect
        case "symmetric": self = .symmetric
        case "nopadding", "no_padding": self = .noPadding
        default: return nil
        }
    }

    /// The source index for a (possibly out-of-range) index along an axis of length n; nil means "constant".
    @inline(__always) func sourceIndex(_ i: Int, _ n: Int) -> Int? {
        if i >= 0 && i < n { return i }
        switch self {
        case .zero, .noPadding: return nil
        case .edge: return i < 0 ? 0 : n - 1
        case .reflect:
            if n == 1 { return 0 }
            let period = 2 * (n - 1)
            var m = i % period
            if m < 0 { m += period }
            return m < n ? m : period - m
        case .symmetric:
            let period = 2 * n
            var m = i % period
            if m < 0 { m += period }
            return m < n ? m : period - 1 - m
        }
    }
}

/// Copies a box of a multi-channel volume: output[c, z, y, x] = input[c, start + (z, y, x)], with
/// out-of-range source voxels filled per `mode` (`fill[c]` for `.zero`, per channel so one-hot label
/// background can be 1). Used for crops, padding and sliding-window patches alike.
public func extractBox<T>(_ input: [T], channels: Int, shape: Shape3D, start: Shape3D, size: Shape3D,
                          mode: PaddingMode, fill: [T]) -> [T] {
    [T](unsafeUninitializedCapacity: channels * size.count) { buffer, initialised in
        extractBox(input, channels: channels, shape: shape, start: start, size: size, mode: mode, fill: fill, into: buffer)
        initialised = channels * size.count
    }
}

/// As `extractBox`, writing the `channels * size.count` values into the start of `out` (no allocation: the
/// sliding window cuts each batch of patches into one reused buffer).
public func extractBox<T>(_ input: [T], channels: Int, shape: Shape3D, start: Shape3D, size: Shape3D,
                          mode: PaddingMode, fill: [T], into out: UnsafeMutableBufferPointer<T>) {
    precondition(input.count == channels * shape.count, "input has \(input.count) values, expected \(channels) x \(shape)")
    precondition(fill.count == channels && out.count >= channels * size.count)
    guard var o = out.baseAddress else { return }
    let sx = (0..<size.x).map { mode.sourceIndex(start.x + $0, shape.x) }
    let fullyInsideX = start.x >= 0 && start.x + size.x <= shape.x
    input.withUnsafeBufferPointer { source in
        guard let src = source.baseAddress else { return }
        for c in 0..<channels {
            let base = c * shape.count
            for z in 0..<size.z {
                let zs = mode.sourceIndex(start.z + z, shape.z)
                for y in 0..<size.y {
                    let ys = mode.sourceIndex(start.y + y, shape.y)
                    defer { o += size.x }
                    guard let zs, let ys else {
                        o.initialize(repeating: fill[c], count: size.x)
                        continue
                    }
                    let row = src + base + (zs * shape.y + ys) * shape.x
                    if fullyInsideX {
                        o.initialize(from: row + start.x, count: size.x)
                    } else {
                        for (x, xs) in sx.enumerated() { (o + x).initialize(to: xs.map { row[$0] } ?? fill[c]) }
                    }
                }
            }
        }
    }
}

/// Pads each axis up to `target` (never crops), `ceil(diff/2)` before and the rest after, as InnerEye's
/// `pad_images`. Returns the padded array, its shape and the offset of the original voxel (0,0,0).
public func padToAtLeast<T>(_ input: [T], channels: Int, shape: Shape3D, target: Shape3D,
                            mode: PaddingMode, fill: [T]) -> (data: [T], shape: Shape3D, offset: Shape3D) {
    var newShape = shape, offset = Shape3D(0, 0, 0)
    for a in 0..<3 where target[a] > shape[a] {
        let diff = target[a] - shape[a]
        offset[a] = (diff + 1) / 2
        newShape[a] = target[a]
    }
    if newShape == shape { return (input, shape, offset) }
    let start = Shape3D(-offset.z, -offset.y, -offset.x)
    return (extractBox(input, channels: channels, shape: shape, start: start, size: newShape, mode: mode, fill: fill),
            newShape, offset)
}

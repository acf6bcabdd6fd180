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
    precondition(input.count == channels * shape.count, "input has \(input.count) values, expected \(channels) x \(shape)")
    precondition(fill.count == channels)
    var out = [T]()
    out.reserveCapacity(channels * size.count)
    let sx = (0..<size.x).map { mode.sourceIndex(start.x + $0, shape.x) }
    let fullyInsideX = start.x >= 0 && start.x + size.x <= shape.x
    for c in 0..<channels {
        let base = c * shape.count
        for z in 0..<size.z {
            let zs = mode.sourceIndex(start.z + z, shape.z)
            for y in 0..<size.y {
                let ys = mode.sourceIndex(start.y + y, shape.y)
                guard let zs, let ys else {
                    out.append(contentsOf: repeatElement(fill[c], count: size.x))
                    continue
                }
                let row = base + (zs * shape.y + ys) * shape.x
                if fullyInsideX {
                    out.append(contentsOf: input[(row + start.x)..<(row + start.x + size.x)])
                } else {
                    for xs in sx { out.append(xs.map { input[row + $0] } ?? fill[c]) }
                }
            }
        }
    }
    return out
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

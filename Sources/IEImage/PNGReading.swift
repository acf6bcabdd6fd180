import CPNG
import Foundation
import IECore

/// A decoded PNG: `samples` row by row, top to bottom, the channels of a pixel side by side (1 grey, 2 grey +
/// alpha, 3 RGB, 4 RGBA), with the values Pillow's `numpy.asarray(Image.open(path))` gives (InnerEye's PNG
/// loader): 8-bit files and 16-bit grey as stored, 16-bit colour reduced to its high byte, 1-bit grey as 0/1,
/// 2/4-bit grey scaled to 0..255, palette images as their palette indices.
public struct DecodedPNG: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// Bits per decoded sample: 16 for 16-bit grey files, else 8.
    public var bitDepth: Int
    public var samples: [UInt16]

    /// Sample of channel `c` at row `y`, column `x`.
    public func sample(y: Int, x: Int, channel c: Int) -> UInt16 { samples[(y * width + x) * channels + c] }
}

extension PNG {
    /// Largest image accepted (pixels): a hostile header cannot make the reader allocate more.
    public static let maxPixels = 1 << 28

    /// Decodes PNG bytes; a damaged or truncated file is an error naming libpng's reason.
    public static func decode(_ data: Data, maxPixels: Int = PNG.maxPixels) throws -> DecodedPNG {
        var width: UInt32 = 0, height: UInt32 = 0, channels: Int32 = 0, depth: Int32 = 0
        var reader = ie_png_reader()
        let samples: UnsafeMutablePointer<UInt16>? = data.withUnsafeBytes { raw in
            reader.data = raw.baseAddress?.assumingMemoryBound(to: UInt8.self)
            reader.size = raw.count
            return ie_png_decode(&reader, UInt(maxPixels), &width, &height, &channels, &depth)
        }
        guard let samples else {
            let reason = withUnsafeBytes(of: reader.message) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
            throw IEError.badInput("not a readable PNG image: \(reason.isEmpty ? "unknown error" : reason)")
        }
        defer { free(samples) }
        let count = Int(width) * Int(height) * Int(channels)
        return DecodedPNG(width: Int(width), height: Int(height), channels: Int(channels), bitDepth: Int(depth),
                          samples: Array(UnsafeBufferPointer(start: samples, count: count)))
    }

    /// Reads and decodes a PNG file; errors name the file.
    public static func read(path: String, maxPixels: Int = PNG.maxPixels) throws -> DecodedPNG {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw IEError.badInput("cannot read the file", file: path)
        }
        do {
            return try decode(data, maxPixels: maxPixels)
        } catch let error as IEError {
            throw IEError(error.code, file: path, error.message)
        }
    }
}

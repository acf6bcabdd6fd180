import CPNG
import Foundation
import IECore

/// 8-bit PNG writing (thumbnails, plots) through libpng's simplified API, which keeps libpng's
/// setjmp/longjmp error handling inside C, away from Swift frames.
public enum PNG {
    public enum PixelFormat: Sendable {
        case grey   // one byte per pixel
        case rgb    // three bytes per pixel, R G B

        public var channels: Int { self == .grey ? 1 : 3 }
        var libpngFormat: UInt32 { self == .grey ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB) }
    }

    /// Encodes `pixels` (rows top to bottom, `width * channels` bytes per row, no padding) as PNG bytes.
    public static func encode(pixels: [UInt8], width: Int, height: Int, format: PixelFormat) throws -> Data {
        guard width > 0, height > 0, width <= 1 << 24, height <= 1 << 24 else {
            throw IEError.failure("PNG size \(width)x\(height) is invalid, expected positive width and height")
        }
        let rowBytes = width * format.channels
        guard pixels.count == rowBytes * height else {
            throw IEError.failure("PNG pixel buffer has \(pixels.count) bytes, expected \(rowBytes * height) (\(width)x\(height)x\(format.channels))")
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format.libpngFormat
        defer { png_image_free(&image) }

        return try pixels.withUnsafeBytes { buffer in
            var size: png_alloc_size_t = 0
            // First call with no memory: libpng reports the size it needs.
            guard png_image_write_to_memory(&image, nil, &size, 0, buffer.baseAddress, Int32(rowBytes), nil) != 0, size > 0 else {
                throw IEError.failure("libpng could not encode the image: \(message(of: image))")
            }
            var output = [UInt8](repeating: 0, count: Int(size))
            let ok = output.withUnsafeMutableBytes { out in
                png_image_write_to_memory(&image, out.baseAddress, &size, 0, buffer.baseAddress, Int32(rowBytes), nil)
            }
            guard ok != 0 else {
                throw IEError.failure("libpng could not encode the image: \(message(of: image))")
            }
            return Data(output.prefix(Int(size)))
        }
    }

    /// Writes an 8-bit grey or RGB PNG atomically.
    public static func write(pixels: [UInt8], width: Int, height: Int, format: PixelFormat, to path: String) throws {
        let data: Data
        do {
            data = try encode(pixels: pixels, width: width, height: height, format: format)
        } catch let error as IEError {
            throw IEError(error.code, file: path, error.message)
        }
        try AtomicFile.write(data, to: path)
    }

    private static func message(of image: png_image) -> String {
        withUnsafeBytes(of: image.message) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return bytes.isEmpty ? "unknown error" : String(decoding: bytes, as: UTF8.self)
        }
    }
}

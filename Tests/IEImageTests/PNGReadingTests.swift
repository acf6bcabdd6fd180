import Foundation
import IECore
import IEImage
import XCTest

/// PNG reading against Pillow, which InnerEye's loader uses (`numpy.asarray(PngImageFile(path))`): Pillow writes
/// each kind of PNG with random pixels and reports the array it reads back.
final class PNGReadingTests: XCTestCase {
    static let writeScript = #"""
import sys, json, numpy as np
from PIL import Image
folder = sys.argv[1]
rng = np.random.default_rng()
def save(name, image, **kw):
    path = f"{folder}/{name}.png"; image.save(path, **kw)
    a = np.asarray(Image.open(path))
    return dict(path=path, shape=list(a.shape), values=a.astype(np.int64).ravel().tolist())
h, w = 7, 11
out = [
  save("grey8", Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L")),
  save("grey16", Image.fromarray(rng.integers(0, 65536, (h, w)).astype(np.uint16))),
  save("rgb8", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")),
  save("rgba8", Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), "RGBA")),
  save("greyalpha8", Image.fromarray(rng.integers(0, 256, (h, w, 2), dtype=np.uint8), "LA")),
  save("bilevel", Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255, "L").convert("1")),
  save("palette", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB").convert("P", palette=Image.ADAPTIVE, colors=16)),
  save("interlaced", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB"), interlace=1),
]
print(json.dumps(out))
"""#

    func testReadsEveryKindAsPillowDoes() throws {
        let folder = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cases = try XCTUnwrap(PythonReference.run(Self.writeScript, arguments: [folder]) as? [[String: Any]])
        XCTAssertEqual(cases.count, 8)
        for c in cases {
            let path = c.string("path")
            let shape = c.ints("shape")
            let image = try PNG.read(path: path)
            XCTAssertEqual(image.height, shape[0], path)
            XCTAssertEqual(image.width, shape[1], path)
            XCTAssertEqual(image.channels, shape.count > 2 ? shape[2] : 1, path)
            XCTAssertEqual(image.samples.map(Int.init), c.ints("values"), path)
            XCTAssertEqual(image.bitDepth, path.hasSuffix("grey16.png") ? 16 : 8, path)
        }
    }

    /// Damaged files: every truncation of a valid PNG, a corrupted byte in the image data, a lying header
    /// (huge size), not a PNG at all: each an error naming the file, never a crash.
    func testDamagedFilesAreErrors() throws {
        let folder = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let pixels = (0..<(13 * 9 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 37) }
        let valid = try PNG.encode(pixels: pixels, width: 13, height: 9, format: .rgb)
        XCTAssertEqual(try PNG.decode(valid).samples.map(UInt8.init), pixels)
        for length in stride(from: 0, to: valid.count - 12, by: 7) {   // the last 12 bytes are the IEND chunk
            XCTAssertThrowsError(try PNG.decode(valid.prefix(length)), "truncated to \(length) bytes")
        }
        var corrupted = valid
        corrupted[corrupted.count - 20] ^= 0xFF   // inside the IDAT chunk (its CRC no longer matches)
        XCTAssertThrowsError(try PNG.decode(corrupted))
        var huge = valid
        huge.replaceSubrange(16..<24, with: [0x00, 0x0F, 0xFF, 0xFF, 0x00, 0x0F, 0xFF, 0xFF] as [UInt8])
        XCTAssertThrowsError(try PNG.decode(huge)) { error in
            XCTAssertTrue("\(error)".contains("PNG"), "\(error)")
        }
        let text = folder + "/not-an-image.png"
        try Data("subject,channel\n".utf8).write(to: URL(fileURLWithPath: text))
        XCTAssertThrowsError(try PNG.read(path: text)) { error in
            let e = error as? IEError
            XCTAssertEqual(e?.code, .badInput)
            XCTAssertTrue("\(error)".contains(text), "\(error)")
        }
        XCTAssertThrowsError(try PNG.decode(valid, maxPixels: 100))
    }
}

import Foundation
import IECore
import IEImage
import XCTest

/// We write PNGs with libpng; a small independent pure-Python decoder (zlib + the five PNG row filters)
/// reads them back.
final class PNGTests: XCTestCase {
    static let decodeScript = #"""
import sys, json, struct, zlib
out = []
for path in sys.argv[1:]:
    data = open(path, 'rb').read()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'bad signature'
    pos, idat, crc_ok = 8, b'', True
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc_ok &= struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b'IHDR':
            width, height, depth, colour, _, _, interlace = struct.unpack('>IIBBBBB', body)
        elif kind == b'IDAT':
            idat += body
        pos += 12 + length
    channels = {0: 1, 2: 3}[colour]
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line); prev = line
    out.append(dict(width=width, height=height, depth=depth, colour=colour, interlace=interlace, crc_ok=crc_ok,
                    pixels=[v for r in rows for v in r]))
print(json.dumps(out))
"""#

    func testGreyAndRGBPixelsSurviveAnIndependentDecoder() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (width, height) = (7, 5)
        // Patterns that exercise every byte value range and make rows differ (so the filters matter).
        let grey = (0..<(width * height)).map { UInt8(($0 * 37 + $0 / width * 11) % 256) }
        let rgb = (0..<(width * height * 3)).map { UInt8(($0 * 91 + 13) % 256) }
        try PNG.write(pixels: grey, width: width, height: height, format: .grey, to: dir + "/grey.png")
        try PNG.write(pixels: rgb, width: width, height: height, format: .rgb, to: dir + "/rgb.png")
        let decoded = try XCTUnwrap(PythonReference.run(Self.decodeScript, arguments: [dir + "/grey.png", dir + "/rgb.png"]) as? [[String: Any]])
        XCTAssertEqual(decoded.count, 2)
        for (item, (pixels, colour)) in zip(decoded, [(grey, 0), (rgb, 2)]) {
            XCTAssertEqual(item.ints("pixels"), pixels.map(Int.init))
            XCTAssertEqual(item.double("width"), Double(width))
            XCTAssertEqual(item.double("height"), Double(height))
            XCTAssertEqual(item.double("depth"), 8)
            XCTAssertEqual(item.double("colour"), Double(colour))
            XCTAssertEqual(item["crc_ok"] as? Bool, true)
        }
    }

    func testRejectsAWrongBufferSizeWithoutWritingAFile() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try PNG.write(pixels: [1, 2, 3], width: 2, height: 2, format: .grey, to: dir + "/bad.png")) { error in
            XCTAssertEqual((error as? IEError)?.file, dir + "/bad.png")
        }
        XCTAssertThrowsError(try PNG.encode(pixels: [], width: 0, height: 3, format: .rgb))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }
}

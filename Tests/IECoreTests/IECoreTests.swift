import Foundation
import XCTest
@testable import IECore

final class SHA256Tests: XCTestCase {
    // Test vectors from FIPS 180-4 / NIST examples.
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testMillionAInChunksMatchesOneShot() {
        var s = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 1000)
        for _ in 0..<1000 { s.update(chunk) }
        let hex = s.finalize().map { String(format: "%02x", $0) }.joined()
        XCTAssertEqual(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testOddChunkBoundaries() {
        let text = Data((0..<300).map { UInt8($0 % 251) })
        var s = SHA256()
        var i = 0
        for step in [1, 63, 2, 64, 65, 17, 88] where i < text.count {
            let end = min(i + step, text.count)
            s.update(text.subdata(in: i..<end))
            i = end
        }
        if i < text.count { s.update(text.subdata(in: i..<text.count)) }
        XCTAssertEqual(s.finalize().map { String(format: "%02x", $0) }.joined(), SHA256.hex(text))
    }
}

final class CSVTests: XCTestCase {
    func testQuotedFieldsAndLineNumbers() throws {
        let text = "subject,filePath,channel\n1,\"a,b.nii\",ct\n\n2,\"multi\nline\",\"say \"\"hi\"\"\"\n3,c.nii,mask\n"
        let t = try CSVTable.parse(text, source: "x.csv")
        XCTAssertEqual(t.header, ["subject", "filePath", "channel"])
        XCTAssertEqual(t.rows.count, 3)
        XCTAssertEqual(t.rows[0], ["1", "a,b.nii", "ct"])
        XCTAssertEqual(t.rows[1], ["2", "multi\nline", "say \"hi\""])
        XCTAssertEqual(t.lineNumbers, [2, 4, 6])
        XCTAssertEqual(t.value("channel", row: 2), "mask")
        XCTAssertNil(t.value("nope", row: 0))
    }

    func testRoundTripThroughSerialisation() throws {
        let t = CSVTable(header: ["a", "b"], rows: [["x,y", "q\"uote"], ["", "plain"]])
        let back = try CSVTable.parse(t.serialized())
        XCTAssertEqual(back.rows, t.rows)
    }

    func testEmptyFileIsAnErrorNamingTheFile() {
        XCTAssertThrowsError(try CSVTable.parse("", source: "empty.csv")) { error in
            let e = error as! IEError
            XCTAssertEqual(e.code, .badInput)
            XCTAssertTrue(e.description.hasPrefix("empty.csv:1: "))
        }
    }
}

final class AtomicFileTests: XCTestCase {
    func testWriteReplacesAndLeavesNoTemporaries() throws {
        let dir = NSTemporaryDirectory() + "ie-atomic-\(UUID().uuidString)"
        let path = dir + "/sub/file.txt"
        try AtomicFile.write("one", to: path)
        try AtomicFile.write("two", to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "two")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/sub")
        XCTAssertEqual(names, ["file.txt"])
        try? FileManager.default.removeItem(atPath: dir)
    }

    func testClosestMatch() {
        XCTAssertEqual(closestMatch("crop_sise", in: ["crop_size", "test_crop_size", "l_rate"]), "crop_size")
        XCTAssertEqual(closestMatch("lrate", in: ["crop_size", "l_rate"]), "l_rate")
    }

    func testErrorDescriptionFormat() {
        let e = IEError.badInput("duplicate row, expected one row per (subject, channel)", file: "d.csv", line: 7)
        XCTAssertEqual(e.description, "d.csv:7: duplicate row, expected one row per (subject, channel)")
        XCTAssertEqual(e.code.rawValue, 3)
    }
}

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

    /// A record whose first field is quoted across lines is reported at the line where it starts, and a
    /// byte-order mark is not part of the first column's name.
    func testRecordsStartingWithAMultiLineFieldAndAByteOrderMark() throws {
        let t = try CSVTable.parse("\u{FEFF}a,b\n\"1\nx\",2\n\n\"3\n\n4\",5\n6,7\n", source: "m.csv")
        XCTAssertEqual(t.header, ["a", "b"])
        XCTAssertEqual(t.rows, [["1\nx", "2"], ["3\n\n4", "5"], ["6", "7"]])
        XCTAssertEqual(t.lineNumbers, [2, 5, 8])
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

    /// A FIFO (or device) given as the output is written as it is: renaming a file over it would replace the
    /// node and leave its reader waiting. The reader gets the text and the FIFO stays a FIFO.
    func testAFIFOTargetIsWrittenInPlace() throws {
        let dir = NSTemporaryDirectory() + "ie-atomic-fifo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fifo = dir + "/out.csv"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        let received = Expectation()
        let reader = Thread {
            let fd = open(fifo, O_RDONLY)
            if fd >= 0 {
                received.value = String(decoding: (try? StandardStream.readAll(from: fd, name: "fifo")) ?? Data(), as: UTF8.self)
                close(fd)
            }
            received.done.signal()
        }
        reader.start()
        try AtomicFile.write("a,b\n1,2\n", to: fifo)
        XCTAssertEqual(received.done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(received.value, "a,b\n1,2\n")
        var status = stat()
        XCTAssertEqual(stat(fifo, &status), 0)
        XCTAssertEqual(status.st_mode & S_IFMT, S_IFIFO)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out.csv"])
    }

    final class Expectation: @unchecked Sendable {
        var value = ""
        let done = DispatchSemaphore(value: 0)
    }

    /// A target whose name is near the 255-byte limit still gets a (short) temporary name; a failure names the
    /// target, not the temporary file; temporary paths keep a NIfTI suffix for libraries that choose by it.
    func testLongNamesAndErrorsNameTheTarget() throws {
        let dir = NSTemporaryDirectory() + "ie-atomic-long-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let long = dir + "/" + String(repeating: "b", count: 251) + ".csv"
        try AtomicFile.write("x\n", to: long)
        XCTAssertEqual(try String(contentsOfFile: long, encoding: .utf8), "x\n")
        XCTAssertTrue(AtomicFile.temporaryPath(for: dir + "/" + String(repeating: "c", count: 240) + ".nii.gz").hasSuffix(".nii.gz"))
        // A regular file where a folder of the output should be: one line naming the output, not an NSError.
        try AtomicFile.write("f", to: dir + "/file")
        XCTAssertThrowsError(try AtomicFile.write("x", to: dir + "/file/sub/m.csv")) { error in
            XCTAssertEqual("\(error)", "\(dir)/file/sub/m.csv: cannot write into \(dir)/file: it is not a folder")
        }
        let readOnly = dir + "/ro"
        try FileManager.default.createDirectory(atPath: readOnly, withIntermediateDirectories: true)
        XCTAssertEqual(chmod(readOnly, 0o500), 0)
        defer { chmod(readOnly, 0o700) }
        if getuid() != 0 {  // root writes anyway
            XCTAssertThrowsError(try AtomicFile.write("x", to: readOnly + "/m.csv")) { error in
                XCTAssertTrue("\(error)".hasPrefix(readOnly + "/m.csv: "), "\(error)")
            }
        }
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

/// Closed and full standard streams, the file-name rule, and non-UTF-8 CSV input.
final class HostileStreamAndNameTests: XCTestCase {
    func testWritingToAFullDeviceThrowsInsteadOfTrapping() throws {
        let fd = open("/dev/full", O_WRONLY)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertThrowsError(try StandardStream.write("x\n", to: fd)) { error in
            XCTAssertEqual((error as? IEError)?.code, .failure)
            XCTAssertTrue("\(error)".contains("No space left on device"), "\(error)")
        }
    }

    func testReadingAClosedStreamThrows() throws {
        let fd = open("/dev/null", O_RDONLY)
        close(fd)   // now a closed descriptor, as stdin after `<&-`
        XCTAssertThrowsError(try StandardStream.readAll(from: fd)) { error in
            XCTAssertTrue("\(error)".contains("Bad file descriptor"), "\(error)")
        }
    }

    func testSafeNames() {
        for good in ["1", "subject_07", "prostate", "zz_femur l", "é"] { XCTAssertNil(SafeName.problem(good), good) }
        XCTAssertEqual(SafeName.problem(""), "is empty")
        XCTAssertEqual(SafeName.problem(".."), "is '..'")
        XCTAssertEqual(SafeName.problem("."), "is '.'")
        XCTAssertEqual(SafeName.problem("../../x"), "contains '/'")
        XCTAssertEqual(SafeName.problem("a\u{7}b"), "contains a control character")
        XCTAssertThrowsError(try SafeName.require("a/b", what: "subject", file: "d.csv", line: 4)) { error in
            XCTAssertEqual("\(error)", "d.csv:4: subject 'a/b' contains '/', expected a name usable as a file name (no '/', '..' or control characters)")
        }
    }

    func testNonUTF8CSVNamesTheLine() {
        var data = Data("a,b\n1,2\n".utf8)
        data.append(contentsOf: [0x41, 0xE9, 0x2C, 0x33, 0x0A])
        XCTAssertThrowsError(try CSVTable.parse(data, source: "x.csv")) { error in
            XCTAssertEqual((error as? IEError)?.code, .badInput)
            XCTAssertTrue("\(error)".hasPrefix("x.csv:3: text is not valid UTF-8"), "\(error)")
        }
        XCTAssertNoThrow(try CSVTable.parse(Data("a,b\nü,2\n".utf8), source: "ok.csv"))
    }
}

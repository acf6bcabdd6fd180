import Foundation
import IECore
import IEImage
import XCTest

/// Files whose header lies: sizes that would need terabytes, impossible dimension counts, zero or non-finite
/// spacing, non-finite voxels. Each must be one error line (IEError.badInput, exit 3) before any large allocation.
final class NIfTIHostileTests: XCTestCase {
    private var folder = ""

    override func setUpWithError() throws {
        folder = try TestFiles.temporaryDirectory("nifti-hostile")
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    /// A valid 4x5x6 float32 image written by our writer, then header fields patched in place (little endian).
    private func patchedImage(_ name: String, gzip: Bool = false, patch: (inout Data) -> Void) throws -> String {
        let volume = Volume<Float>(shape: Shape3D(4, 5, 6), spacing: (2, 1, 1), data: (0..<120).map(Float.init))
        let plain = folder + "/" + name + ".nii"
        try NIfTI.write(volume, to: plain, datatype: .float32)
        var data = try Data(contentsOf: URL(fileURLWithPath: plain))
        patch(&data)
        try data.write(to: URL(fileURLWithPath: plain))
        guard gzip else { return plain }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-f", plain]
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        return plain + ".gz"
    }

    private func setInt16(_ data: inout Data, at offset: Int, _ value: Int16) {
        withUnsafeBytes(of: value.littleEndian) { data.replaceSubrange(offset..<(offset + 2), with: $0) }
    }

    private func setFloat(_ data: inout Data, at offset: Int, _ value: Float) {
        withUnsafeBytes(of: value.bitPattern.littleEndian) { data.replaceSubrange(offset..<(offset + 4), with: $0) }
    }

    private func assertBadInput(_ path: String, contains expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try NIfTI.read(path), file: file, line: line) { error in
            guard let e = error as? IEError else { return XCTFail("not an IEError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.code, .badInput, file: file, line: line)
            XCTAssertTrue(e.description.contains(expected), e.description, file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), "one line: \(e.description)", file: file, line: line)
        }
    }

    func testTheUnpatchedImageReads() throws {
        let path = try patchedImage("plain") { _ in }
        XCTAssertEqual(try NIfTI.read(path).data.count, 120)
    }

    /// A FIFO would block the reader until a writer appears (forever, for a hostile path); a device has no end.
    /// Both are refused before opening. If the FIFO were opened, the test unblocks it and fails instead of hanging.
    func testAFIFOOrADeviceIsRefusedWithoutBlocking() throws {
        let fifo = folder + "/p.nii"
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        final class Outcome: @unchecked Sendable { var error: Error?; let done = DispatchSemaphore(value: 0) }
        let outcome = Outcome()
        Thread {
            do { _ = try NIfTI.read(fifo) } catch { outcome.error = error }
            outcome.done.signal()
        }.start()
        if outcome.done.wait(timeout: .now() + 10) == .timedOut {
            let fd = open(fifo, O_WRONLY)  // let the blocked reader go
            close(fd)
            _ = outcome.done.wait(timeout: .now() + 10)
            return XCTFail("reading a FIFO blocked")
        }
        XCTAssertTrue("\(outcome.error.map { "\($0)" } ?? "no error")".contains("a FIFO, expected a NIfTI image file"),
                      "\(String(describing: outcome.error))")
        assertBadInput("/dev/zero", contains: "a device, expected a NIfTI image file")
    }

    /// A symbolic link to a plain .nii is read through (the size check looks at the file it points to).
    func testASymbolicLinkToAPlainImageReads() throws {
        let path = try patchedImage("target") { _ in }
        let link = folder + "/link.nii"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        XCTAssertEqual(try NIfTI.read(link).data, try NIfTI.read(path).data)
    }

    /// A few hundred bytes of gzip can claim (and inflate to) a 1024^3 volume: more voxels than the limit
    /// (IE_MAX_IMAGE_VOXELS, here lowered to 100 for a 120-voxel image) are refused before anything is allocated.
    func testImagesOverTheVoxelLimitAreRefused() throws {
        let path = try patchedImage("limit", gzip: true) { _ in }
        setenv("IE_MAX_IMAGE_VOXELS", "100", 1)
        defer { unsetenv("IE_MAX_IMAGE_VOXELS") }
        assertBadInput(path, contains: "image of 6 x 5 x 4 = 120 voxels, more than the limit of 100 (IE_MAX_IMAGE_VOXELS)")
        unsetenv("IE_MAX_IMAGE_VOXELS")
        XCTAssertEqual(NIfTI.maximumVoxels, 1 << 30)
        XCTAssertEqual(try NIfTI.read(path).data.count, 120)
    }

    /// A .nii.gz whose deflate data is damaged but still inflates to the header's size: "corrupt gzip data" from
    /// the stream's CRC and length check, not wrong voxels (nor a negative byte count).
    func testCorruptGzipDataIsNamed() throws {
        let path = try patchedImage("corrupt", gzip: true) { _ in }
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        for i in (data.count - 60)..<(data.count - 8) { data[i] ^= 0x5A }
        try data.write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try NIfTI.read(path)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("corrupt gzip data"), text)
            XCTAssertFalse(text.contains(": -1 of"), text)
        }
    }

    /// dims 32767^3 float32 (140 TB) in a file of a few hundred bytes: refused from the file size.
    func testHugeDimensionsInASmallPlainFileAreRefusedBeforeAllocating() throws {
        // 1000^3 (4 GB of float32) is within the voxel limit, so the file size is what refuses it.
        let path = try patchedImage("huge") { d in for axis in 1...3 { setInt16(&d, at: 40 + 2 * axis, 1000) } }
        assertBadInput(path, contains: "voxel data truncated")
    }

    /// The same lie in a .nii.gz: inflated in bounded chunks, so the error comes when the data ends.
    func testHugeDimensionsInACompressedFileFailWhenTheDataEnds() throws {
        let path = try patchedImage("huge-gz", gzip: true) { d in
            setInt16(&d, at: 42, 1000); setInt16(&d, at: 44, 1000); setInt16(&d, at: 46, 1000)
        }
        assertBadInput(path, contains: "voxel data truncated: 480 of 4000000000 bytes")
        // Beyond the voxel limit (32767^3) it is refused from the header alone.
        let beyond = try patchedImage("beyond-gz", gzip: true) { d in for axis in 1...3 { setInt16(&d, at: 40 + 2 * axis, 32767) } }
        assertBadInput(beyond, contains: "= 35181150961663 voxels, more than the limit of 1073741824")
    }

    func testImpossibleDimensionCountsAreOurOneLineError() throws {
        let eight = try patchedImage("dim0-8") { d in setInt16(&d, at: 40, 8) }
        assertBadInput(eight, contains: "dim[0] is 8, expected 1 to 7 dimensions")
        let negative = try patchedImage("dim2-negative") { d in setInt16(&d, at: 44, -5) }
        assertBadInput(negative, contains: "dim[2] is -5, expected a size of at least 1")
        let zero = try patchedImage("dim3-zero") { d in setInt16(&d, at: 46, 0) }
        assertBadInput(zero, contains: "dim[3] is 0")
    }

    /// Found by `make fuzz`: a NaN vox_offset trapped in the Float-to-Int conversion, and a datatype code outside
    /// NIfTI-1's table made libnifti print its own error line before ours.
    func testNonFiniteVoxelOffsetAndUnknownDatatypeAreOurErrors() throws {
        let nanOffset = try patchedImage("vox-offset-nan") { d in setFloat(&d, at: 108, .nan) }
        assertBadInput(nanOffset, contains: "vox_offset is not a usable byte offset")
        let unknownType = try patchedImage("datatype-9999") { d in setInt16(&d, at: 70, 9999) }
        assertBadInput(unknownType, contains: "unsupported NIfTI datatype 9999")
    }

    func testZeroOrNonFiniteSpacingIsRefused() throws {
        for (name, value) in [("zero", Float(0)), ("nan", Float.nan), ("inf", Float.infinity)] {
            let path = try patchedImage("pixdim-\(name)") { d in setFloat(&d, at: 76 + 4 * 2, value) }   // pixdim[2] = y
            assertBadInput(path, contains: "voxel spacing (pixdim) along y is")
        }
    }

    func testNonFiniteVoxelsAreNamedWithTheirPosition() throws {
        var volume = Volume<Float>(shape: Shape3D(2, 3, 4), data: [Float](repeating: 1, count: 24))
        XCTAssertNoThrow(try volume.requireFiniteVoxels(what: "image"))
        volume[1, 2, 3] = .nan
        XCTAssertThrowsError(try volume.requireFiniteVoxels(what: "image", file: "ct.nii.gz")) { error in
            XCTAssertEqual((error as? IEError)?.code, .badInput)
            XCTAssertTrue("\(error)".contains("NaN voxel at (z=1, y=2, x=3)"), "\(error)")
        }
    }
}

import Foundation
import XCTest
import IECore
import IEImage
@testable import IEData

/// Every bad-input class of SPEC §2: exit code 3 and a message naming the CSV and the line.
final class DatasetValidationTests: XCTestCase {
    /// Writes the test images with nibabel (independent of our NIfTI writer). Shapes below are nibabel's (x, y, z).
    static func writeImages(into folder: String) throws {
        _ = try runPython("""
            import numpy as np, nibabel as nib, os
            d = '\(folder)'
            rng = np.random.default_rng(0)
            aff = np.diag([1.0, 1.0, 2.0, 1.0])
            def save(name, data, affine=aff):
                nib.save(nib.Nifti1Image(data, affine), os.path.join(d, name))
            ct = rng.normal(0, 100, (4, 5, 6)).astype(np.float32)
            a = np.zeros((4, 5, 6), np.uint8); a[0:2, 0:2, 0:3] = 1
            b = np.zeros((4, 5, 6), np.uint8); b[2:4, 3:5, 3:6] = 1
            save('ct.nii.gz', ct)
            save('ct2.nii.gz', (ct * 2).astype(np.int16))
            save('a.nii.gz', a)
            save('b.nii.gz', b)
            save('mask.nii.gz', np.ones((4, 5, 6), np.uint8))
            over = b.copy(); over[1, 1, 2] = 1
            save('b_overlap.nii.gz', over)
            save('ct_2d.nii.gz', ct[:, :, 0])
            save('ct_4d.nii.gz', np.stack([ct, ct], axis=3))
            save('ct_shape.nii.gz', rng.normal(0, 1, (4, 5, 7)).astype(np.float32))
            save('ct_spacing.nii.gz', ct, np.diag([1.0, 1.0, 2.01, 1.0]))
            save('ct_spacing_ok.nii.gz', ct, np.diag([1.0, 1.0, 2.0005, 1.0]))
            shifted = aff.copy(); shifted[2, 3] = 5.0
            save('ct_origin.nii.gz', ct, shifted)
            nb = a.copy(); nb[3, 4, 5] = 2
            save('a_nonbinary.nii.gz', nb)
            half = np.ones((4, 5, 6), np.float32); half[0, 0, 0] = 0.5
            save('mask_half.nii.gz', half)
            nan = ct.copy(); nan[1, 2, 3] = np.nan
            save('ct_nan.nii.gz', nan)
            inf = ct.copy(); inf[0, 0, 1] = np.inf
            save('ct_inf.nii.gz', inf)
            open(os.path.join(d, 'garbage.nii.gz'), 'wb').write(b'this is not an image at all' * 20)
            """)
    }

    static let scratch: Scratch = {
        let s = try! Scratch()
        try! writeImages(into: s.root)
        return s
    }()

    /// A static Scratch is never deinitialised: its folder would stay in TMPDIR after every run.
    override class func tearDown() {
        try? FileManager.default.removeItem(atPath: scratch.root)
        super.tearDown()
    }

    let request = SubjectRequest(imageChannels: ["ct", "ct2"], groundTruthIds: ["a", "b"], maskId: "mask")

    /// A two-subject CSV; `replace` swaps the file of (subject 2, channel).
    func csv(_ name: String, replace: [String: String] = [:], drop: String? = nil, extra: String = "") throws -> String {
        var text = "subject,filePath,channel\n"
        for s in ["1", "2"] {
            for c in ["ct", "ct2", "a", "b", "mask"] where !(s == "2" && c == drop) {
                text += "\(s),\(s == "2" ? replace[c] ?? "\(c).nii.gz" : "\(c).nii.gz"),\(c)\n"
            }
        }
        text += extra
        return try Self.scratch.write("\(name).csv", text)
    }

    /// Subject 2's rows start at line 7 (header, then five rows of subject 1): ct 7, ct2 8, a 9, b 10, mask 11.
    func assertBad(_ name: String, replace: [String: String] = [:], drop: String? = nil, request: SubjectRequest? = nil,
                   line: Int, _ fragments: [String], file: StaticString = #filePath, callLine: UInt = #line) throws {
        let path = try csv(name, replace: replace, drop: drop)
        let dataset = try Dataset.load(path: path)
        XCTAssertNoThrow(try dataset.loadSubject("1", request ?? self.request), file: file, line: callLine)
        assertIEError(.badInput, contains: ["\(path):\(line):"] + fragments, file: file, line: callLine) {
            _ = try dataset.loadSubject("2", request ?? self.request)
        }
    }

    func testGoodSubjectLoads() throws {
        let dataset = try Dataset.load(path: csv("good"))
        let s = try dataset.loadSubject("2", request)
        XCTAssertEqual(s.channels.count, 2)
        XCTAssertEqual(s.shape.z, 6); XCTAssertEqual(s.shape.y, 5); XCTAssertEqual(s.shape.x, 4)
        XCTAssertEqual(s.channels[0].spacing.z, 2)
        XCTAssertEqual(s.structures.compactMap { $0?.data.reduce(0) { $0 + Int($1) } }, [12, 12])
        XCTAssertEqual(s.mask?.data.allSatisfy { $0 == 1 }, true)
        // nibabel index (x=0..1, y=0..1, z=0..2) is ours (z, y, x).
        XCTAssertEqual(s.structures[0]![2, 1, 1], 1)
        XCTAssertEqual(s.structures[0]![3, 1, 1], 0)
        XCTAssertEqual(dataset.subjects, ["1", "2"])
        // Within the 1e-3 relative tolerance is fine.
        XCTAssertNoThrow(try Dataset.load(path: csv("spacing_ok", replace: ["ct2": "ct_spacing_ok.nii.gz"])).loadSubject("2", request))
    }

    func testMissingColumn() throws {
        let path = try Self.scratch.write("nocol.csv", "subject,file,channel\n1,ct.nii.gz,ct\n")
        assertIEError(.badInput, contains: ["\(path):1:", "missing column 'filePath'", "closest: file"]) { _ = try Dataset.load(path: path) }
    }

    func testByteOrderMarkAndShortRows() throws {
        let bom = try Self.scratch.write("bom.csv", "\u{FEFF}subject,filePath,channel\n1,ct.nii.gz,ct\n")
        XCTAssertEqual(try Dataset.load(path: bom).subjectsInFileOrder, ["1"])
        let short = try Self.scratch.write("short.csv", "subject,filePath,channel\n1,ct.nii.gz,ct\n2,ct.nii.gz\n")
        assertIEError(.badInput, contains: ["\(short):3:", "2 fields, expected 3"]) { _ = try Dataset.load(path: short) }
        let empty = try Self.scratch.write("emptysubject.csv", "subject,filePath,channel\n,ct.nii.gz,ct\n")
        assertIEError(.badInput, contains: ["\(empty):2:", "empty subject"]) { _ = try Dataset.load(path: empty) }
    }

    /// "1", "01" and "+1" are different subjects but the same output folder `001`: refused at load, naming both.
    func testSubjectsSharingAnOutputFolderAreRefused() throws {
        for other in ["01", "+1", "001"] {
            let path = try Self.scratch.write("collide\(other).csv", "subject,filePath,channel\n1,ct.nii.gz,ct\n\(other),ct.nii.gz,ct\n")
            assertIEError(.badInput, contains: ["\(path):3:", "subjects 1 (line 2) and \(other) both have output folder 001"]) {
                _ = try Dataset.load(path: path)
            }
        }
        let fine = try Self.scratch.write("nocollide.csv", "subject,filePath,channel\n1,ct.nii.gz,ct\n10,ct.nii.gz,ct\nsubject_1,ct.nii.gz,ct\n")
        XCTAssertEqual(try Dataset.load(path: fine).subjectsInFileOrder, ["1", "10", "subject_1"])
    }

    func testDuplicateRow() throws {
        let path = try csv("dup", extra: "2,ct.nii.gz,ct\n")
        assertIEError(.badInput, contains: ["\(path):12:", "duplicate row", "subject 2 channel ct", "line 7"]) { _ = try Dataset.load(path: path) }
    }

    func testMissingRow() throws {
        try assertBad("missing_ct2", drop: "ct2", line: 7, ["subject 2", "no row for channel ct2"])
        try assertBad("missing_b", drop: "b", line: 7, ["subject 2", "no row for channel b"])
        // allow_incomplete_labels forgives a missing structure, never a missing image channel or mask.
        var lenient = request
        lenient.allowIncompleteLabels = true
        let dataset = try Dataset.load(path: csv("missing_b2", drop: "b"))
        let s = try dataset.loadSubject("2", lenient)
        XCTAssertNil(s.structures[1])
        XCTAssertNotNil(s.structures[0])
        try assertBad("missing_mask", drop: "mask", request: lenient, line: 7, ["no row for channel mask"])
    }

    func testMissingAndUnreadableFiles() throws {
        try assertBad("nofile", replace: ["ct2": "nope.nii.gz"], line: 8, ["channel ct2", "nope.nii.gz", "not found"])
        try assertBad("garbage", replace: ["a": "garbage.nii.gz"], line: 9, ["channel a", "garbage.nii.gz", "not a NIfTI"])
    }

    func testNonVolumeImages() throws {
        try assertBad("two_d", replace: ["ct": "ct_2d.nii.gz"], line: 7, ["ct_2d.nii.gz", "expected a 3-D volume"])
        try assertBad("four_d", replace: ["ct2": "ct_4d.nii.gz"], line: 8, ["ct_4d.nii.gz", "expected a 3-D volume"])
    }

    func testGeometryMismatch() throws {
        try assertBad("shape", replace: ["b": "ct_shape.nii.gz"], line: 10, ["channel b has shape 7x5x4", "channel ct has 6x5x4", "one shape per subject"])
        try assertBad("spacing", replace: ["ct2": "ct_spacing.nii.gz"], line: 8, ["spacing (2.01, 1, 1)", "(2, 1, 1)", "0.001 relative"])
        try assertBad("origin", replace: ["mask": "ct_origin.nii.gz"], line: 11, ["origin", "expected them to agree"])
    }

    func testNonBinaryMasks() throws {
        try assertBad("nonbinary", replace: ["a": "a_nonbinary.nii.gz"], line: 9, ["structure a has value 2.0 at voxel (z=5, y=4, x=3)", "binary"])
        try assertBad("halfmask", replace: ["mask": "mask_half.nii.gz"], line: 11, ["mask mask has value 0.5", "binary"])
    }

    func testNonFiniteVoxels() throws {
        try assertBad("nan", replace: ["ct2": "ct_nan.nii.gz"], line: 8, ["NaN voxel at (z=3, y=2, x=1)", "finite"])
        try assertBad("inf", replace: ["ct": "ct_inf.nii.gz"], line: 7, ["infinite voxel at (z=1, y=0, x=0)"])
    }

    func testOverlappingStructures() throws {
        try assertBad("overlap", replace: ["b": "b_overlap.nii.gz"], line: 10, ["structures a and b overlap at voxel (z=2, y=1, x=1)", "check_exclusive"])
        var lenient = request
        lenient.checkExclusive = false
        XCTAssertNoThrow(try Dataset.load(path: csv("overlap2", replace: ["b": "b_overlap.nii.gz"])).loadSubject("2", lenient))
    }

    /// The real InnerEye toy data: region and region_1 are the same file, so they overlap (hence InnerEye's
    /// check_exclusive=False for it); the region has 210 535 foreground voxels (counted upstream).
    func testRealInnerEyeImages() throws {
        let path = try Self.scratch.write("real/dataset.csv", """
            subject,filePath,channel,institutionId
            1,\(fixtures)/id1_mask.nii.gz,channel1,1
            1,\(fixtures)/id1_mask.nii.gz,mask,1
            1,\(fixtures)/id1_region.nii.gz,region,1
            1,\(fixtures)/id1_region.nii.gz,region_1,1

            """)
        let dataset = try Dataset.load(path: path)
        let strict = SubjectRequest(imageChannels: ["channel1"], groundTruthIds: ["region", "region_1"], maskId: "mask")
        assertIEError(.badInput, contains: ["\(path):5:", "structures region and region_1 overlap"]) { _ = try dataset.loadSubject("1", strict) }
        var lenient = strict
        lenient.checkExclusive = false
        let s = try dataset.loadSubject("1", lenient)
        XCTAssertEqual(s.shape.z, 75); XCTAssertEqual(s.shape.y, 75); XCTAssertEqual(s.shape.x, 75)
        XCTAssertEqual(s.structures[0]!.data.reduce(0) { $0 + Int($1) }, 210_535)
        XCTAssertEqual(s.mask!.data.count, 421_875)
    }
}

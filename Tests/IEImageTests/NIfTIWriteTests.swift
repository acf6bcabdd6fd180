import Foundation
import IECore
import IEImage
import XCTest

/// We write volumes; nibabel reads them back: same values (get_fdata), same affine, same header fields.
final class NIfTIWriteTests: XCTestCase {
    static let describeScript = #"""
import sys, json, numpy as np, nibabel as nib
out = []
for path in sys.argv[1:]:
    img = nib.load(path)
    h = img.header
    out.append(dict(values=np.asarray(img.get_fdata()).ravel(order='F').tolist(), affine=img.affine.tolist(),
                    shape=list(img.shape), dtype=h.get_data_dtype().name,
                    zooms=[float(z) for z in h.get_zooms()[:3]],
                    codes=[int(h['qform_code']), int(h['sform_code'])],
                    quatern=[float(h[k]) for k in ('quatern_b', 'quatern_c', 'quatern_d', 'qoffset_x', 'qoffset_y', 'qoffset_z')],
                    qfac=float(h['pixdim'][0]),
                    srow=[[float(v) for v in h[k]] for k in ('srow_x', 'srow_y', 'srow_z')],
                    qform=h.get_qform().tolist()))
print(json.dumps(out))
"""#

    /// A rotated, anisotropic, offset volume made in Swift (no stored header geometry).
    func makeVolume() -> Volume<Float> {
        let shape = Shape3D(z: 3, y: 4, x: 5)
        // Rotation of 30° about an oblique axis, built from a unit quaternion (a, b, c, d).
        let (a, b, c, d) = (0.9, 0.3, -0.2, 0.1)
        let n = (a * a + b * b + c * c + d * d).squareRoot()
        let (qa, qb, qc, qd) = (a / n, b / n, c / n, d / n)
        let direction = [
            qa * qa + qb * qb - qc * qc - qd * qd, 2 * (qb * qc - qa * qd), 2 * (qb * qd + qa * qc),
            2 * (qb * qc + qa * qd), qa * qa + qc * qc - qb * qb - qd * qd, 2 * (qc * qd - qa * qb),
            2 * (qb * qd - qa * qc), 2 * (qc * qd + qa * qb), qa * qa + qd * qd - qc * qc - qb * qb,
        ]
        var data: [Float] = []
        for i in 0..<(shape.z * shape.y * shape.x) { data.append(Float(i) * 7.25 - 200.5) }
        return Volume(shape: shape, spacing: (z: 3.0, y: 0.8, x: 1.2), origin: (z: -150.0, y: 22.5, x: 101.0),
                      direction: direction, data: data)
    }

    func testNibabelReadsWhatWeWrite() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let volume = makeVolume()
        let labels = volume.map { UInt8(Int($0.magnitude) % 3) }
        let outputs: [(String, NIfTIDataType, [Double])] = [
            ("float32.nii.gz", .float32, volume.data.map(Double.init)),
            ("float32.nii", .float32, volume.data.map(Double.init)),
            // int16: rounded to nearest (x.5 values away from zero: -200.5 -> -201).
            ("int16.nii.gz", .int16, volume.data.map { Double($0).rounded() }),
            // uint8: rounded then clamped to 0...255.
            ("uint8_clamped.nii", .uint8, volume.data.map { min(max(Double($0).rounded(), 0), 255) }),
        ]
        for (name, type, _) in outputs { try NIfTI.write(volume, to: dir + "/" + name, datatype: type) }
        try NIfTI.write(labels, to: dir + "/labels.nii.gz", datatype: .uint8)

        let paths = outputs.map { dir + "/" + $0.0 } + [dir + "/labels.nii.gz"]
        let described = try XCTUnwrap(PythonReference.run(Self.describeScript, arguments: paths) as? [[String: Any]])
        let expectedValues = outputs.map { $0.2 } + [labels.data.map(Double.init)]
        let expectedTypes = outputs.map { $0.1.description } + ["uint8"]
        let ourAffine = NIfTI.affine(of: volume)
        for (i, item) in described.enumerated() {
            let name = URL(fileURLWithPath: paths[i]).lastPathComponent
            XCTAssertEqual(item.ints("shape"), [5, 4, 3], name)
            XCTAssertEqual(item.string("dtype"), expectedTypes[i], name)
            XCTAssertEqual(item.doubles("values"), expectedValues[i], name)
            XCTAssertEqual(item.doubles("zooms"), [1.2, 0.8, 3.0].map { Double(Float($0)) }, name)
            XCTAssertEqual(item.ints("codes"), [1, 1], name)
            let affine = item.matrix("affine"), qform = item.matrix("qform")
            for row in 0..<4 {
                for col in 0..<4 {
                    // sform (float32 rows) and qform (float32 quaternion) both describe the volume.
                    XCTAssertEqual(affine[row][col], ourAffine[row][col], accuracy: 1e-4, "\(name) sform")
                    XCTAssertEqual(qform[row][col], ourAffine[row][col], accuracy: 1e-4, "\(name) qform")
                }
            }
        }
    }

    func testLeftHandedDirectionGetsNegativeQfac() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // y and z swapped: a reflection, determinant -1.
        let volume = Volume<Int16>(shape: Shape3D(z: 2, y: 2, x: 2), spacing: (z: 2.5, y: 1, x: 1),
                                   origin: (z: 10, y: 20, x: 30), direction: [1, 0, 0, 0, 0, 1, 0, 1, 0],
                                   data: [1, 2, 3, 4, 5, 6, 7, 8])
        try NIfTI.write(volume, to: dir + "/flip.nii", datatype: .int16)
        let item = try XCTUnwrap((PythonReference.run(Self.describeScript, arguments: [dir + "/flip.nii"]) as? [[String: Any]])?.first)
        XCTAssertEqual(item.double("qfac"), -1)
        let qform = item.matrix("qform")
        let expected = NIfTI.affine(of: volume)
        for row in 0..<4 { for col in 0..<4 { XCTAssertEqual(qform[row][col], expected[row][col], accuracy: 1e-5) } }
        XCTAssertEqual(item.doubles("values"), [1, 2, 3, 4, 5, 6, 7, 8].map(Double.init))
    }

    /// Reading a nibabel file with unusual qform/sform fields and writing it back keeps the fields bit for bit,
    /// while a volume whose geometry changed gets a fresh, correct header.
    func testRoundTripCopiesQformAndSformExactly() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let makeSource = #"""
import sys, numpy as np, nibabel as nib
aff = np.array([[0.0, -1.1, 0.0, 12.3], [0.0, 0.0, 2.7, -45.6], [0.9, 0.0, 0.0, 78.9], [0, 0, 0, 1]])
img = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(5, 4, 3), aff, dtype=np.int16)
img.set_sform(aff, code=4)
qaff = np.diag([0.9, 1.1, 2.7, 1.0]); qaff[:3, 3] = [1, 2, 3]
img.set_qform(qaff, code=3)
nib.save(img, sys.argv[1])
print('[]')
"""#
        let source = dir + "/source.nii.gz"
        _ = try PythonReference.run(makeSource, arguments: [source])
        let volume = try NIfTI.read(source)
        XCTAssertEqual(volume.geometry?.sformCode, 4)
        XCTAssertEqual(volume.geometry?.qformCode, 3)
        try NIfTI.write(volume.map { $0 * 2 }, to: dir + "/copy.nii.gz", datatype: .float32)
        var moved = volume
        moved.origin.x += 10      // no longer what the stored header says: must not be copied
        try NIfTI.write(moved, to: dir + "/moved.nii", datatype: .int16)

        let items = try XCTUnwrap(PythonReference.run(Self.describeScript, arguments: [source, dir + "/copy.nii.gz", dir + "/moved.nii"]) as? [[String: Any]])
        let (original, copy, movedItem) = (items[0], items[1], items[2])
        XCTAssertEqual(copy.ints("codes"), [3, 4])
        XCTAssertEqual(copy.doubles("quatern"), original.doubles("quatern"))
        XCTAssertEqual(copy.matrix("srow"), original.matrix("srow"))
        XCTAssertEqual(copy.double("qfac"), original.double("qfac"))
        XCTAssertEqual(copy.doubles("values"), original.doubles("values").map { $0 * 2 })

        let expectedMoved = NIfTI.affine(of: moved)
        let movedAffine = movedItem.matrix("affine")
        XCTAssertEqual(movedAffine[0][3], original.matrix("affine")[0][3] + 10, accuracy: 1e-4)
        for row in 0..<4 { for col in 0..<4 { XCTAssertEqual(movedAffine[row][col], expectedMoved[row][col], accuracy: 1e-4) } }
    }

    func testWriteRejectsUnknownSuffixAndLeavesNoFileBehind() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try NIfTI.write(makeVolume(), to: dir + "/image.png", datatype: .float32)) { error in
            XCTAssertEqual((error as? IEError)?.code, .usage)
        }
        try NIfTI.write(makeVolume(), to: dir + "/nested/out.nii.gz", datatype: .float32)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/nested"), ["out.nii.gz"])
    }

    func testSameVolumeWritesIdenticalBytes() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try NIfTI.write(makeVolume(), to: dir + "/a.nii.gz", datatype: .float32)
        try NIfTI.write(makeVolume(), to: dir + "/b.nii.gz", datatype: .float32)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a.nii.gz"), FileManager.default.contents(atPath: dir + "/b.nii.gz"))
    }
}

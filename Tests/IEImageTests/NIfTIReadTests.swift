import Foundation
import IECore
import IEImage
import XCTest

/// nibabel writes NIfTI files of every datatype and geometry flavour; we read them and compare voxel values
/// (nibabel's get_fdata, with scl_slope/scl_inter applied) and geometry (nibabel's img.affine and zooms).
final class NIfTIReadTests: XCTestCase {
    /// Writes the cases into argv[1] and prints, per file, nibabel's view of it as JSON.
    static let writeCasesScript = #"""
import sys, json, gzip, struct, os
import numpy as np, nibabel as nib

out = sys.argv[1]
rng = np.random.default_rng(1234)

def rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx

def affine(zooms, offset, angles, flip=False):
    a = np.eye(4)
    r = rotation(*angles)
    if flip:
        r = r @ np.diag([1, 1, -1])   # left-handed: qfac = -1
    a[:3, :3] = r @ np.diag(zooms)
    a[:3, 3] = offset
    return a

def patch_scaling(path, slope, inter):
    # Set scl_slope/scl_inter (header bytes 112..119) without letting nibabel rescale the stored voxels.
    raw = gzip.decompress(open(path, 'rb').read()) if path.endswith('.gz') else open(path, 'rb').read()
    endian = '<' if struct.unpack('<i', raw[:4])[0] == 348 else '>'
    raw = raw[:112] + struct.pack(endian + 'ff', slope, inter) + raw[120:]
    open(path, 'wb').write(gzip.compress(raw) if path.endswith('.gz') else raw)

cases = []
def add(name, data, aff, dtype, qform=1, sform=2, slope_inter=None, endian=None, qaff=None):
    path = os.path.join(out, name)
    hdr = nib.Nifti1Header(endianness=endian) if endian else None
    img = nib.Nifti1Image(data.astype(dtype), aff, header=hdr, dtype=dtype)
    img.set_data_dtype(dtype)
    img.set_sform(aff if sform else None, code=sform)
    img.set_qform(qaff if qaff is not None else aff, code=qform)
    nib.save(img, path)
    if slope_inter is not None:
        patch_scaling(path, *slope_inter)
    back = nib.load(path)
    h = back.header
    values = np.asarray(back.get_fdata(), dtype=np.float64)
    cases.append(dict(name=name, shape=list(back.shape), values=values.ravel(order='F').tolist(),
                      affine=back.affine.tolist(), zooms=[float(z) for z in h.get_zooms()[:3]],
                      slope=float(back.dataobj.slope), dtype=h.get_data_dtype().name,
                      codes=[int(h['qform_code']), int(h['sform_code'])], qfac=float(h['pixdim'][0])))

shape = (5, 4, 3)   # x, y, z
ranges = {'uint8': (0, 255), 'int8': (-128, 127), 'int16': (-32768, 32767), 'uint16': (0, 65535),
          'int32': (-2**31, 2**31 - 1), 'uint32': (0, 2**32 - 1), 'int64': (-2**40, 2**40), 'uint64': (0, 2**40)}
for i, dtype in enumerate(['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64']):
    lo, hi = ranges[dtype]
    data = rng.integers(lo, hi, size=shape, endpoint=True)
    ext = '.nii.gz' if i % 2 == 0 else '.nii'
    add('type_' + dtype + ext, data, affine((0.7 + i * 0.1, 1.3, 2.9), (-12.5 + i, 40.25, 7.0), (0.3, -0.2, 0.5 + i * 0.1)), dtype)
add('type_float32.nii.gz', rng.normal(0, 300, size=shape), affine((0.9, 0.9, 3.0), (100.0, -80.5, -300.0), (0.1, 0.2, -1.0)), 'float32')
add('type_float64.nii', rng.normal(0, 1e6, size=shape), affine((2.0, 1.5, 1.0), (1.0, 2.0, 3.0), (1.2, 0.4, 0.0)), 'float64')

# Scaling: raw int16 / uint8 voxels with slope and intercept in the header.
add('scaled_int16.nii.gz', rng.integers(-2000, 2000, size=shape, endpoint=True), affine((1, 1, 3), (0, 0, 0), (0, 0, 0.2)), 'int16', slope_inter=(0.25, -1024.0))
add('scaled_uint8.nii', rng.integers(0, 255, size=shape, endpoint=True), affine((1, 2, 3), (5, 6, 7), (0.5, 0, 0)), 'uint8', slope_inter=(1.5, 3.0))
# (slope 0 with a nonzero intercept: nibabel drops the intercept, SimpleITK adds it; NIfTISimpleITKParityTests)
add('slope_zero_means_unscaled.nii.gz', rng.integers(-50, 50, size=shape, endpoint=True), affine((1, 1, 1), (0, 0, 0), (0, 0, 0)), 'int16', slope_inter=(0.0, 0.0))

# Geometry flavours: qform only (left-handed, qfac -1), sform differing from qform (sform wins), neither.
add('qform_only_left_handed.nii.gz', rng.integers(0, 9, size=shape), affine((0.8, 1.1, 2.5), (-30.0, 12.0, 55.5), (0.2, 0.3, -0.4), flip=True), 'int16', qform=1, sform=0)
add('sform_wins.nii.gz', rng.integers(0, 9, size=shape), affine((1.25, 1.25, 4.0), (9.0, -9.0, 90.0), (0.0, 0.6, 0.1)), 'int16', qform=1, sform=2, qaff=affine((1.25, 1.25, 4.0), (0, 0, 0), (0, 0, 0)))
add('no_transform_codes.nii', rng.integers(0, 9, size=shape), affine((1.5, 2.5, 3.5), (1, 2, 3), (0, 0, 0)), 'uint8', qform=0, sform=0)
add('rotation_180_about_z.nii.gz', rng.integers(0, 9, size=shape), np.diag([-1.0, -2.0, 3.0, 1.0]), 'int16', qform=1, sform=0)
add('big_endian.nii', rng.normal(0, 10, size=shape), affine((1.1, 1.2, 1.3), (3, 2, 1), (0.1, 0.1, 0.1)), 'float32', endian='>')
add('four_d_single_volume.nii.gz', rng.integers(0, 9, size=shape + (1,)), affine((1, 1, 1), (0, 0, 0), (0, 0, 0)), 'int16')
print(json.dumps(cases))
"""#

    func testReadsEveryDatatypeScalingAndGeometryLikeNibabel() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = try XCTUnwrap(PythonReference.run(Self.writeCasesScript, arguments: [dir]) as? [[String: Any]])
        XCTAssertEqual(cases.count, 19)
        var sawSlope = false
        for c in cases {
            let name = c.string("name")
            let path = dir + "/" + name
            let volume = try NIfTI.read(path)
            let shape = c.ints("shape")
            XCTAssertEqual([volume.shape.x, volume.shape.y, volume.shape.z], Array(shape.prefix(3)), name)
            let expected = c.doubles("values")
            XCTAssertEqual(volume.data.count, expected.count, name)
            for (ours, theirs) in zip(volume.data, expected) {
                // Float32 storage: the only allowed difference is rounding nibabel's float64 to float32.
                XCTAssertEqual(Double(ours), Double(Float(theirs)), accuracy: abs(theirs) * 1e-7, "\(name) voxel value")
            }
            if c.double("slope") != 0 && c.double("slope") != 1 { sawSlope = true }
            assertGeometry(volume, affine: c.matrix("affine"), zooms: c.doubles("zooms"), name)

            let header = try NIfTI.readHeader(path)
            XCTAssertEqual(header.dataType?.description, c.string("dtype"), name)
            XCTAssertTrue(header.isVolume3D, name)
            for row in 0..<4 {
                for col in 0..<4 {
                    XCTAssertEqual(header.affine[row][col], c.matrix("affine")[row][col], accuracy: 1e-5, "\(name) affine")
                }
            }
        }
        XCTAssertTrue(sawSlope, "the scaled cases must really carry a slope")
        // The geometry cases really are the flavours they are named after.
        let byName = Dictionary(uniqueKeysWithValues: cases.map { ($0.string("name"), $0) })
        XCTAssertEqual(byName["qform_only_left_handed.nii.gz"]?.ints("codes"), [1, 0])
        XCTAssertEqual(byName["qform_only_left_handed.nii.gz"]?.double("qfac"), -1)
        XCTAssertEqual(byName["sform_wins.nii.gz"]?.ints("codes"), [1, 2])
        XCTAssertEqual(byName["no_transform_codes.nii"]?.ints("codes"), [0, 0])
    }

    func testReadsRealInnerEyeFilesLikeNibabel() throws {
        let script = #"""
import sys, json, numpy as np, nibabel as nib
out = []
for path in sys.argv[1:]:
    img = nib.load(path)
    out.append(dict(values=np.asarray(img.get_fdata()).ravel(order='F').tolist(), affine=img.affine.tolist(),
                    zooms=[float(z) for z in img.header.get_zooms()[:3]], shape=list(img.shape)))
print(json.dumps(out))
"""#
        let names = ["id1_channel1.nii.gz", "test_img.nii.gz", "scale_and_unscale_image.nii.gz"]
        let paths = names.map { TestFiles.fixture($0) }
        let reference = try XCTUnwrap(PythonReference.run(script, arguments: paths) as? [[String: Any]])
        for (name, (path, expected)) in zip(names, zip(paths, reference)) {
            let volume = try NIfTI.read(path)
            XCTAssertEqual([volume.shape.x, volume.shape.y, volume.shape.z], expected.ints("shape"), name)
            XCTAssertEqual(volume.data.map(Double.init), expected.doubles("values"), name)
            assertGeometry(volume, affine: expected.matrix("affine"), zooms: expected.doubles("zooms"), name)
        }
        // Hand-checked facts from the InnerEye test-data README: 75³ int16 values in -999...999, 1 mm spacing.
        let ct = try NIfTI.read(paths[0])
        XCTAssertEqual(ct.count, 75 * 75 * 75)
        XCTAssertGreaterThanOrEqual(ct.data.min()!, -999)
        XCTAssertLessThanOrEqual(ct.data.max()!, 999)
        XCTAssertEqual(ct.spacing.z, 1)
    }

    func testRejectsNonVolumesAndBadFilesWithBadInputNamingTheFile() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let script = #"""
import sys, os, numpy as np, nibabel as nib
d = sys.argv[1]
nib.save(nib.Nifti1Image(np.zeros((4, 3, 2, 2), np.int16), np.eye(4)), os.path.join(d, 'time_series.nii.gz'))
nib.save(nib.Nifti1Image(np.zeros((4, 3), np.int16), np.eye(4)), os.path.join(d, 'two_d.nii'))
nib.save(nib.Nifti1Image(np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2), np.eye(4)), os.path.join(d, 'whole.nii'))
raw = open(os.path.join(d, 'whole.nii'), 'rb').read()
open(os.path.join(d, 'truncated.nii'), 'wb').write(raw[:-10])
import gzip
open(os.path.join(d, 'truncated.nii.gz'), 'wb').write(gzip.compress(raw)[:-40])
open(os.path.join(d, 'not_nifti.nii'), 'wb').write(b'hello, this is not an image' * 20)
print('[]')
"""#
        _ = try PythonReference.run(script, arguments: [dir])
        // numpy's C-order arange over (x, y, z) = (4, 3, 2) holds x*6 + y*2 + z at [x, y, z]; we store x fastest.
        var expected: [Float] = []
        for z in 0..<2 { for y in 0..<3 { for x in 0..<4 { expected.append(Float(x * 6 + y * 2 + z)) } } }
        XCTAssertEqual(try NIfTI.read(dir + "/whole.nii").data, expected)
        for name in ["time_series.nii.gz", "two_d.nii", "truncated.nii", "truncated.nii.gz", "not_nifti.nii", "missing.nii.gz"] {
            let path = dir + "/" + name
            XCTAssertThrowsError(try NIfTI.read(path), name) { error in
                let e = error as? IEError
                XCTAssertEqual(e?.code, .badInput, name)
                XCTAssertEqual(e?.file, path, name)
            }
        }
        // The header alone is still readable for a time series, and says it is not a volume.
        let header = try NIfTI.readHeader(dir + "/time_series.nii.gz")
        XCTAssertEqual(header.dims, [4, 3, 2, 2])
        XCTAssertFalse(header.isVolume3D)
    }

    /// Spacing = nibabel's zooms; origin and direction * spacing = nibabel's affine.
    func assertGeometry(_ v: Volume<Float>, affine: [[Double]], zooms: [Double], _ name: String,
                        file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(v.spacing.x, zooms[0], accuracy: 1e-6, name, file: file, line: line)
        XCTAssertEqual(v.spacing.y, zooms[1], accuracy: 1e-6, name, file: file, line: line)
        XCTAssertEqual(v.spacing.z, zooms[2], accuracy: 1e-6, name, file: file, line: line)
        XCTAssertEqual(v.origin.x, affine[0][3], accuracy: 1e-5, name, file: file, line: line)
        XCTAssertEqual(v.origin.y, affine[1][3], accuracy: 1e-5, name, file: file, line: line)
        XCTAssertEqual(v.origin.z, affine[2][3], accuracy: 1e-5, name, file: file, line: line)
        let spacing = [v.spacing.x, v.spacing.y, v.spacing.z]
        for row in 0..<3 {
            for col in 0..<3 {
                XCTAssertEqual(v.direction[row * 3 + col] * spacing[col], affine[row][col], accuracy: 1e-5,
                               "\(name) direction[\(row)][\(col)]", file: file, line: line)
            }
        }
    }
}

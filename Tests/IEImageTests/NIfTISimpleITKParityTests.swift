import Foundation
import IECore
import IEImage
import XCTest

/// InnerEye reads every image with SimpleITK (`io_util.load_nifti_image`: `sitk.ReadImage`, `GetArrayFromImage`,
/// `GetSpacing/GetOrigin/GetDirection`), its metrics in mm use that spacing, and its outputs carry that header.
/// Where nibabel and SimpleITK disagree on a header, these tests hold our reader and writer to SimpleITK.
final class NIfTISimpleITKParityTests: XCTestCase {
    /// Writes the cases into argv[1] and prints, per file, what SimpleITK reads (or its error) as JSON.
    /// Spacing/origin/direction are ITK's (x, y, z; LPS world); values are GetArrayFromImage's (Z, Y, X) order,
    /// which is our storage order.
    static let casesScript = #"""
import sys, os, json, struct
import numpy as np, nibabel as nib, SimpleITK as sitk
sitk.ProcessObject.SetGlobalWarningDisplay(False)
out = sys.argv[1]
rng = np.random.default_rng(99)
shape = (5, 4, 3)   # x, y, z

def rotated(zooms, offset, angles):
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rz @ ry @ rx @ np.diag(zooms)
    a[:3, 3] = offset
    return a

BASE = rotated((1.2, 0.8, 2.5), (10.0, -20.0, 30.0), (0.1, 0.2, 0.3))

def patch(path, fmt, offset, *values):
    # Overwrite header bytes of a plain .nii in its own byte order (nibabel would "fix" these fields).
    raw = open(path, 'rb').read()
    endian = '<' if struct.unpack('<i', raw[:4])[0] == 348 else '>'
    raw = raw[:offset] + struct.pack(endian + fmt, *values) + raw[offset + struct.calcsize(fmt):]
    open(path, 'wb').write(raw)

cases = []
def add(name, dtype='int16', data=None, aff=BASE, qaff=None, qform=1, sform=1, endian=None, patches=(), origin_is_ours=True):
    # origin_is_ours: the header's qform and sform agree (or only one is set), so SimpleITK's origin is the
    # same point as ours; where they disagree ITK picks by its own rules (reported, internal to us).
    path = os.path.join(out, name)
    if data is None:
        data = rng.integers(-300, 300, size=shape)
    hdr = nib.Nifti1Header(endianness=endian) if endian else None
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), aff, header=hdr, dtype=dtype)
    img.set_sform(aff, code=sform)
    img.set_qform(aff if qaff is None else qaff, code=qform)
    nib.save(img, path)
    for p in patches:
        patch(path, *p)
    case = dict(name=name, origin_is_ours=origin_is_ours)
    try:
        im = sitk.ReadImage(path)
        case.update(dim=im.GetDimension(), size=list(im.GetSize()), spacing=list(im.GetSpacing()),
                    origin=list(im.GetOrigin()), direction=list(im.GetDirection()),
                    values=sitk.GetArrayFromImage(im).astype(np.float64).ravel().tolist())
    except RuntimeError as e:
        case['error'] = str(e)
    cases.append(case)

XYZT, PIXDIM1, SLOPE = 123, 80, 112   # byte offsets of xyzt_units, pixdim[1], scl_slope
# Spatial units: ITK scales spacing and origin to mm (meters x1000, microns x0.001); nibabel ignores them.
add('units_meter_sec.nii', patches=[('b', XYZT, 1 | 8)])
add('units_micron.nii', patches=[('b', XYZT, 3)])
add('units_unknown.nii', patches=[('b', XYZT, 0)])
add('units_meter_qform_only.nii', sform=0, patches=[('b', XYZT, 1)])
# Negative pixdim: spacing is |pixdim|, ITK flips that axis' direction (the written file must keep the sign).
add('negative_pixdim_x.nii', patches=[('f', PIXDIM1, -1.2)])
add('negative_pixdim_y_qform_only.nii', sform=0, patches=[('f', PIXDIM1 + 4, -0.8)])
# Scaling: ITK applies scl_inter even when scl_slope is 0 (or not finite, or below double epsilon: slope 1).
add('slope_zero_inter_17.nii', patches=[('ff', SLOPE, 0.0, 17.0)])
add('slope_nan_inter_17.nii', patches=[('ff', SLOPE, float('nan'), 17.0)])
add('slope_tiny_inter_3.nii', patches=[('ff', SLOPE, 1e-20, 3.0)])
add('slope_inf_inter_0.nii', patches=[('ff', SLOPE, float('inf'), 0.0)])
add('slope_1_inter_nan.nii', patches=[('ff', SLOPE, 1.0, float('nan'))])
add('slope_quarter_inter_minus_1024.nii', patches=[('ff', SLOPE, 0.25, -1024.0)])
add('big_endian_scaled.nii', endian='>', patches=[('ff', SLOPE, 0.5, 1.0)])
ranges = {'uint8': (0, 255), 'int8': (-128, 127), 'uint16': (0, 65535), 'int32': (-2**20, 2**20),
          'uint32': (0, 2**20), 'int64': (-2**20, 2**20), 'float64': (-1e6, 1e6)}
for dtype, (lo, hi) in ranges.items():
    data = rng.uniform(lo, hi, size=shape) if dtype == 'float64' else rng.integers(lo, hi, size=shape, endpoint=True)
    add('type_' + dtype + '.nii', dtype=dtype, data=data)
# Trailing dimensions of size 1: ITK reads a 3-D image.
add('four_d_t1.nii', data=rng.integers(0, 9, size=shape + (1,)))
add('five_d_1_1.nii', data=rng.integers(0, 9, size=shape + (1, 1)))
# Geometry flavours where ITK's choice of qform/sform differs from nibabel's (spacing and values still agree).
QAFF = rotated((1.2, 0.8, 2.5), (0, 0, 0), (0, 0, 0))
add('qform1_sform2_differ.nii', qaff=QAFF, qform=1, sform=2, origin_is_ours=False)
add('qform2_sform1_differ.nii', qaff=QAFF, qform=2, sform=1)
add('qform_only.nii', sform=0)
add('sform_only_aligned.nii', qform=0, sform=2)
add('no_transform_codes.nii', qform=0, sform=0, origin_is_ours=False)
# A sheared sform with no qform: SimpleITK refuses it ("orthonormal direction cosines").
SHEAR = BASE.copy()
SHEAR[0, 1] += 0.5
add('sheared_sform_only.nii', aff=SHEAR, qform=0, sform=1)
print(json.dumps(cases))
"""#

    /// argv: pairs of (input, our written copy); prints what SimpleITK reads from each.
    static let readBackScript = #"""
import sys, json, numpy as np, SimpleITK as sitk
sitk.ProcessObject.SetGlobalWarningDisplay(False)
out = []
for path in sys.argv[1:]:
    im = sitk.ReadImage(path)
    out.append(dict(spacing=list(im.GetSpacing()), origin=list(im.GetOrigin()), direction=list(im.GetDirection()),
                    values=sitk.GetArrayFromImage(im).astype(np.float64).ravel().tolist()))
print(json.dumps(out))
"""#

    private func readCases(into dir: String) throws -> [[String: Any]] {
        try XCTUnwrap(PythonReference.run(Self.casesScript, arguments: [dir]) as? [[String: Any]])
    }

    func testSpacingOriginAndVoxelValuesAreSimpleITKs() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = try readCases(into: dir)
        XCTAssertEqual(cases.count, 28)
        for c in cases where c["error"] == nil {
            let name = c.string("name")
            let volume = try NIfTI.read(dir + "/" + name)
            XCTAssertEqual(c.ints("size"), [volume.shape.x, volume.shape.y, volume.shape.z], name)
            XCTAssertEqual(c.double("dim"), 3, "\(name): SimpleITK reads a 3-D image")
            let spacing = c.doubles("spacing")
            for (ours, theirs) in zip([volume.spacing.x, volume.spacing.y, volume.spacing.z], spacing) {
                XCTAssertEqual(ours, theirs, accuracy: 1e-6 * theirs, "\(name) spacing")
            }
            if c["origin_is_ours"] as? Bool == true {
                // ITK's world is LPS: x and y negated against NIfTI's RAS.
                let theirs = c.doubles("origin")
                for (ours, theirs) in zip([-volume.origin.x, -volume.origin.y, volume.origin.z], theirs) {
                    XCTAssertEqual(ours, theirs, accuracy: 1e-4 * max(1, abs(theirs)), "\(name) origin")
                }
            }
            let expected = c.doubles("values")
            // Float32 storage: the only allowed difference is rounding SimpleITK's value to float32.
            XCTAssertEqual(volume.data, expected.map(Float.init), "\(name) voxel values")
        }
    }

    /// The one file SimpleITK refuses and we read: a sheared sform with no qform. Spacing comes from pixdim in
    /// both readers (ITK never takes spacing from the sform), so ours is what ITK would use; kept readable.
    func testShearedSformOnlyIsRefusedBySimpleITKAndReadByUsWithPixdimSpacing() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = try readCases(into: dir)
        let sheared = try XCTUnwrap(cases.first { $0.string("name") == "sheared_sform_only.nii" })
        XCTAssertTrue(sheared.string("error").contains("orthonormal"), sheared.string("error"))
        XCTAssertEqual(cases.filter { $0["error"] != nil }.count, 1, "only the sheared case is refused by SimpleITK")
        XCTAssertNoThrow(try NIfTI.read(dir + "/sheared_sform_only.nii"))
    }

    /// Every file we write from a read image reads back in SimpleITK with the input's spacing, origin and
    /// direction as SimpleITK read them (InnerEye writes its outputs with that header), and the same values.
    func testSimpleITKReadsOurWrittenCopiesLikeTheInputs() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cases = try readCases(into: dir)
        var paths: [String] = []
        for c in cases where c["error"] == nil {
            let name = c.string("name")
            let input = dir + "/" + name
            let output = dir + "/written_" + name + ".gz"
            try NIfTI.write(try NIfTI.read(input), to: output, datatype: .float32)
            paths += [input, output]
        }
        let read = try XCTUnwrap(PythonReference.run(Self.readBackScript, arguments: paths) as? [[String: Any]])
        XCTAssertEqual(read.count, paths.count)
        for pair in stride(from: 0, to: read.count - 1, by: 2) {
            let name = URL(fileURLWithPath: paths[pair]).lastPathComponent
            let (theirs, ours) = (read[pair], read[pair + 1])
            for key in ["spacing", "origin", "direction"] {
                for (a, b) in zip(ours.doubles(key), theirs.doubles(key)) {
                    XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, abs(b)), "\(name) \(key) read back by SimpleITK")
                }
            }
            XCTAssertEqual(ours.doubles("values").map(Float.init), theirs.doubles("values").map(Float.init), name)
        }
    }
}

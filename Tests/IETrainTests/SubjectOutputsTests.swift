import Foundation
import XCTest
import IECore
import IEImage
@testable import IETrain

final class SubjectOutputsTests: XCTestCase {
    func testWritesAllFilesWithReferenceGeometryAndValues() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ietrain-out-\(getpid())-\(UInt64.random(in: 0...UInt64.max))").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A reference "first channel" with anisotropic spacing, an origin and an oblique direction,
        // written and read back so it carries a real NIfTI geometry.
        let shape = Shape3D(z: 3, y: 4, x: 5), n = 60
        let c = cos(0.3), s = sin(0.3)
        let source = Volume<Float>(shape: shape, spacing: (3.0, 0.8, 1.2), origin: (-20, 15.5, 7.25),
                                   direction: [c, -s, 0, s, c, 0, 0, 0, 1], data: (0..<n).map(Float.init))
        let referencePath = dir + "/ct.nii.gz"
        try NIfTI.write(source, to: referencePath, datatype: .float32)
        let reference = try NIfTI.read(referencePath)

        let fg = testValues(n, seed: 12)
        let posteriors = fg.map { 1 - $0 } + fg
        let labels = PostProcessing.argmax(posteriors, classCount: 2)
        try SubjectOutputs.write(directory: dir + "/001", posteriors: posteriors, labels: labels,
                                 classNames: ["background", "bladder"], reference: reference)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir + "/001").sorted()
        XCTAssertEqual(names, SubjectOutputs.fileNames(classNames: ["background", "bladder"]).sorted())

        let script = """
import sys, json, numpy as np, nibabel as nib
d = json.load(sys.stdin)
ref = nib.load(d['ref'])
out = {}
for name in d['names']:
    im = nib.load(d['dir'] + '/' + name)
    a = np.asanyarray(im.dataobj)
    out[name] = {'dtype': str(a.dtype), 'shape': list(a.shape),
                 'affine_ok': bool(np.allclose(im.affine, ref.affine, atol=1e-4)),
                 'zyx': np.transpose(a, (2, 1, 0)).flatten().astype(int).tolist()}
p = np.array(d['p'], dtype=np.float32).reshape(2, -1)
out['expected_posterior_bladder'] = np.floor(p[1] * 255).astype(int).tolist()
ent = -np.nansum(np.where(p > 0, p * np.log2(np.where(p > 0, p, 1)), 0), axis=0) / np.log2(2)
out['expected_uncertainty'] = np.floor(ent.astype(np.float32) * np.float32(255)).astype(int).tolist()
print(json.dumps(out))
"""
        let ref = try pythonReference(script, input: ["ref": referencePath, "dir": dir + "/001", "names": names,
                                                      "p": posteriors.map(Double.init)]) as! [String: Any]
        for name in names {
            let info = ref[name] as! [String: Any]
            XCTAssertEqual(info["dtype"] as? String, "uint8", name)
            XCTAssertEqual(ints(info["shape"]), [5, 4, 3], name)
            XCTAssertEqual(info["affine_ok"] as? Bool, true, "\(name) geometry differs from the first channel")
        }
        func values(_ name: String) -> [Int] { ints((ref[name] as! [String: Any])["zyx"]) }
        XCTAssertEqual(values("segmentation.nii.gz"), labels.map(Int.init))
        XCTAssertEqual(values("bladder.nii.gz"), labels.map { $0 == 1 ? 1 : 0 })
        XCTAssertEqual(values("background.nii.gz"), labels.map { $0 == 0 ? 1 : 0 })
        XCTAssertEqual(values("posterior_bladder.nii.gz"), ints(ref["expected_posterior_bladder"]))
        let uncertainty = values("uncertainty.nii.gz"), expected = ints(ref["expected_uncertainty"])
        // Entropy computed in float vs double may differ by one unit where v*255 lands on an integer.
        XCTAssertEqual(uncertainty.count, expected.count)
        XCTAssert(zip(uncertainty, expected).allSatisfy { abs($0 - $1) <= 1 })
        XCTAssertGreaterThan(Set(labels).count, 1)
    }

    func testRejectsMismatchedClassNames() {
        let reference = Volume<Float>(shape: Shape3D(1, 1, 2), data: [0, 0])
        XCTAssertThrowsError(try SubjectOutputs.write(directory: "/tmp/unused", posteriors: [1, 1, 0, 0], labels: [0, 0],
                                                      classNames: ["background"], reference: reference))
        XCTAssertThrowsError(try SubjectOutputs.write(directory: "/tmp/unused", posteriors: [1, 1, 0, 0], labels: [0, 0],
                                                      classNames: ["a", "a"], reference: reference))
    }
}

import IECore
import XCTest
@testable import IETrain

final class PostProcessingTests: XCTestCase {
    func testMaskSetsBackgroundToOneOutside() {
        var p: [Float] = [0.2, 0.3, /* class 1 */ 0.5, 0.4, /* class 2 */ 0.3, 0.3]
        PostProcessing.applyMask(&p, classCount: 3, mask: [1, 0])
        XCTAssertEqual(p, [0.2, 1, 0.5, 0, 0.3, 0])
    }

    func testArgmaxTiesGoToTheLowerClass() {
        let p: [Float] = [0.5, 0.2, 0.4, /* 1 */ 0.5, 0.3, 0.1, /* 2 */ 0, 0.5, 0.5]
        XCTAssertEqual(PostProcessing.argmax(p, classCount: 3), [0, 2, 2])
    }

    func testUncertaintyAndUInt8HandValues() {
        // K = 2: p = (0.5, 0.5) -> entropy 1; (1, 0) -> 0; (0.25, 0.75) -> 0.811278 -> 206.88 -> 206.
        let p: [Float] = [0.5, 1, 0.25, 0.5, 0, 0.75]
        let h = PostProcessing.normalisedEntropy(p, classCount: 2)
        XCTAssertEqual(h[0], 1, accuracy: 1e-6)
        XCTAssertEqual(h[1], 0)
        XCTAssertEqual(h[2], 0.811278, accuracy: 1e-5)
        XCTAssertEqual(PostProcessing.toUInt8(h[...]), [255, 0, 206])
        // K = 4 uniform -> 1.
        XCTAssertEqual(PostProcessing.normalisedEntropy([0.25, 0.25, 0.25, 0.25], classCount: 4)[0], 1, accuracy: 1e-6)
        XCTAssertEqual(PostProcessing.toUInt8([1, 0.999, 0.5, 0.0039, 0, 1.0000001, -0.0000001]), [255, 254, 127, 0, 0, 255, 0])
    }

    func testLargestComponentHandExample() {
        // One z slice, 4x5. Class 1: a 3-voxel L, a 2-voxel bar and a voxel touching the L only diagonally.
        // Class 2 has two components but is not listed, so it stays.
        let shape = Shape3D(1, 4, 5)
        var labels: [UInt8] = [
            1, 1, 0, 2, 0,
            1, 0, 1, 0, 2,
            0, 0, 0, 0, 0,
            1, 1, 0, 0, 0,
        ]
        PostProcessing.keepLargestComponent(&labels, shape: shape, classes: [1])
        XCTAssertEqual(labels, [
            1, 1, 0, 2, 0,
            1, 0, 0, 0, 2,
            0, 0, 0, 0, 0,
            0, 0, 0, 0, 0,
        ])
        // Connectivity through z counts (6-connectivity in 3-D).
        var stacked: [UInt8] = [1, 0, 0, /* z=1 */ 1, 0, 1]
        PostProcessing.keepLargestComponent(&stacked, shape: Shape3D(2, 1, 3), classes: [1])
        XCTAssertEqual(stacked, [1, 0, 0, 1, 0, 0])
    }

    func testLargestComponentAgainstScipyLabel() throws {
        let shape = Shape3D(7, 9, 11)
        let labels = testValues(shape.count, seed: 21).map { v -> UInt8 in v < 0.35 ? 1 : (v < 0.55 ? 2 : 0) }
        var ours = labels
        PostProcessing.keepLargestComponent(&ours, shape: shape, classes: [1, 2])
        let script = """
import sys, json, numpy as np
from scipy.ndimage import label
d = json.load(sys.stdin)
a = np.array(d['labels']).reshape(7, 9, 11)
out = a.copy()
for c in (1, 2):
    fg = out == c
    lab, n = label(fg)
    sizes = np.bincount(lab.flatten()); sizes[0] = 0
    keep = lab == np.argmax(sizes)
    out[fg & ~keep] = 0
print(json.dumps(out.flatten().tolist()))
"""
        let ref = ints(try pythonReference(script, input: ["labels": labels.map(Int.init)]))
        XCTAssertEqual(ours.map(Int.init), ref)
        XCTAssertNotEqual(ours, labels, "the example has components to remove")
    }

    func testSmoothingMatchesScipyGaussianFilterWithSpacing() throws {
        let shape = Shape3D(6, 8, 10)
        let n = shape.count
        let raw = testValues(n, seed: 8)
        let posteriors = raw.map { 1 - $0 } + raw
        let spacing = (z: 3.0, y: 0.8, x: 1.0)
        let sigmaMM = (z: 2.0, y: 1.0, x: 1.5)
        var smoothed = posteriors
        PostProcessing.smooth(&smoothed, classCount: 2, shape: shape, sigmaMM: sigmaMM, spacing: spacing)
        let script = """
import sys, json, numpy as np
from scipy.ndimage import gaussian_filter
d = json.load(sys.stdin)
p = np.array(d['p'], dtype=np.float32).reshape(2, 6, 8, 10)
sigma = np.array([2.0, 1.0, 1.5]) / np.array([3.0, 0.8, 1.0])
print(json.dumps(np.stack([gaussian_filter(x, sigma=sigma) for x in p]).flatten().astype(float).tolist()))
"""
        let ref = doubles(try pythonReference(script, input: ["p": posteriors.map(Double.init)]))
        assertClose(smoothed, ref, tolerance: 2e-6, "smoothed posteriors")
    }

    func testRunChainsMaskArgmaxAndComponents() {
        let shape = Shape3D(1, 1, 6)
        // Class 1 wins at x = 0, 1, 3, 4, 5, but x = 5 is outside the mask; LCC keeps x = 3, 4.
        let fg: [Float] = [0.9, 0.8, 0.1, 0.7, 0.6, 0.9]
        let posteriors = fg.map { 1 - $0 } + fg
        let (p, labels) = PostProcessing.run(posteriors: posteriors, classCount: 2, shape: shape,
                                             mask: [1, 1, 1, 1, 1, 0], smoothingMM: nil, spacing: (1, 1, 1),
                                             largestComponentClasses: [1])
        // Equal-size components (2 each): the first in storage order is kept.
        XCTAssertEqual(labels, [1, 1, 0, 0, 0, 0])
        XCTAssertEqual(p[5], 1); XCTAssertEqual(p[11], 0)
    }
}

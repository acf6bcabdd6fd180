import IECore
import XCTest
@testable import IETrain

final class AugmentationTests: XCTestCase {
    /// A crop of size s with 2 image channels (distinct values everywhere) and 3 one-hot classes.
    func makeCrop(_ s: Shape3D, seed: UInt64 = 1) -> Crop {
        let n = s.count
        let image = testValues(2 * n, seed: seed, range: -1...1)
        var classes = [UInt8](repeating: 0, count: n)
        for z in 0..<s.z { for y in 0..<s.y { for x in 0..<s.x {
            // An asymmetric pattern: class 1 an off-centre block, class 2 a row.
            if y < s.y / 2 && x < s.x / 3 { classes[s.index(z, y, x)] = 1 }
            if y == s.y - 2 { classes[s.index(z, y, x)] = 2 }
        } } }
        var labels = [UInt8](repeating: 0, count: 3 * n)
        for i in 0..<n { labels[Int(classes[i]) * n + i] = 1 }
        return Crop(size: s, image: image, labels: labels, mask: [UInt8](repeating: 1, count: n), centre: Shape3D(0, 0, 0),
                    start: Shape3D(0, 0, 0), paddingOffset: Shape3D(0, 0, 0), chosenClass: 0)
    }

    func assertOneHot(_ crop: Crop, classCount: Int, file: StaticString = #filePath, line: UInt = #line) {
        let n = crop.size.count
        for i in 0..<n {
            var sum = 0
            for k in 0..<classCount {
                let v = crop.labels[k * n + i]
                XCTAssert(v == 0 || v == 1, file: file, line: line)
                sum += Int(v)
            }
            XCTAssertEqual(sum, 1, "voxel \(i) is not one-hot", file: file, line: line)
        }
    }

    func testIdentityParametersAreTheIdentity() {
        let original = makeCrop(Shape3D(5, 6, 7))
        var crop = original
        Augmentations.affine(&crop, channels: 2, classCount: 3, parameters: AffineParameters(), spacing: (2.5, 1, 0.7))
        XCTAssertEqual(crop.image, original.image)
        XCTAssertEqual(crop.labels, original.labels)
        crop = original
        Augmentations.blur(&crop, channels: 2, sigma: (0, 0, 0))
        XCTAssertEqual(crop.image, original.image)
        crop = original
        Augmentations.motion(&crop, channels: 2, parameters: MotionParameters(axis: 1, shifts: [0, 0], ghostWeight: 0))
        XCTAssertEqual(crop.image, original.image)
        crop = original
        var rng = Xoshiro256(seed: 3)
        Augmentations.noise(&crop, std: 0, using: &rng)
        XCTAssertEqual(crop.image, original.image)
    }

    func testRotationBy90DegreesAboutZPermutesThePattern() {
        // numpy.rot90(a, 1, axes=(1, 2)): out[z, y, x] = a[z, x, N-1-y], on a square (y, x) plane.
        let s = Shape3D(3, 6, 6), n = s.count
        let original = makeCrop(s)
        var crop = original
        Augmentations.affine(&crop, channels: 2, classCount: 3, parameters: AffineParameters(degrees: (90, 0, 0)))
        for c in 0..<2 { for z in 0..<3 { for y in 0..<6 { for x in 0..<6 {
            XCTAssertEqual(crop.image[c * n + s.index(z, y, x)], original.image[c * n + s.index(z, x, 5 - y)], accuracy: 1e-6)
        } } } }
        for k in 0..<3 { for z in 0..<3 { for y in 0..<6 { for x in 0..<6 {
            XCTAssertEqual(crop.labels[k * n + s.index(z, y, x)], original.labels[k * n + s.index(z, x, 5 - y)])
        } } } }
        XCTAssertNotEqual(crop.labels, original.labels)
    }

    func testRotationBy90DegreesAboutXPermutesZAndY() {
        // Rotation in the (z, y) plane: out[z, y, x] = a[y, N-1-z, x] (numpy.rot90(a, 1, axes=(0, 1))).
        let s = Shape3D(5, 5, 3), n = s.count
        let original = makeCrop(s, seed: 2)
        var crop = original
        Augmentations.affine(&crop, channels: 2, classCount: 3, parameters: AffineParameters(degrees: (0, 0, 90)))
        for z in 0..<5 { for y in 0..<5 { for x in 0..<3 {
            XCTAssertEqual(crop.image[n + s.index(z, y, x)], original.image[n + s.index(y, 4 - z, x)], accuracy: 1e-6)
            XCTAssertEqual(crop.labels[s.index(z, y, x)], original.labels[s.index(y, 4 - z, x)])
        } } }
    }

    func testScalingInterpolatesLinearly() {
        // Scale 2 along x about the centre of a linear ramp: the output is the ramp with half the slope.
        let s = Shape3D(1, 1, 9)
        var crop = makeCrop(s)
        crop.image = (0..<9).map { Float($0) } + (0..<9).map { Float(2 * $0) }
        Augmentations.affine(&crop, channels: 2, classCount: 3, parameters: AffineParameters(scales: (1, 1, 2)))
        for x in 0..<9 {
            XCTAssertEqual(Double(crop.image[x]), 4 + (Double(x) - 4) / 2, accuracy: 1e-6)
            XCTAssertEqual(Double(crop.image[9 + x]), 2 * (4 + (Double(x) - 4) / 2), accuracy: 1e-6)
        }
    }

    func testRandomAugmentationsKeepLabelsOneHotAndShapes() {
        let augmenter = Augmenter(outputRange: (-1, 1), spacing: (3, 1, 1), probability: 1)
        var rng = Xoshiro256(seed: 77)
        for i in 0..<5 {
            var crop = makeCrop(Shape3D(6, 10, 12), seed: UInt64(i + 10))
            let before = crop
            augmenter.apply(&crop, channels: 2, classCount: 3, using: &rng)
            XCTAssertEqual(crop.image.count, before.image.count)
            XCTAssertEqual(crop.labels.count, before.labels.count)
            assertOneHot(crop, classCount: 3)
            XCTAssertNotEqual(crop.image, before.image)
            XCTAssert(crop.image.allSatisfy { $0.isFinite })
        }
    }

    func testNoiseHasTheRequestedStandardDeviation() {
        var crop = makeCrop(Shape3D(20, 20, 20))
        let before = crop.image
        var rng = Xoshiro256(seed: 4)
        Augmentations.noise(&crop, std: 0.3, using: &rng)
        let d = zip(crop.image, before).map { Double($0 - $1) }
        let mean = d.reduce(0, +) / Double(d.count)
        let sd = (d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(d.count)).squareRoot()
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(sd, 0.3, accuracy: 0.01)
        XCTAssertEqual(Augmenter(outputRange: (-1, 1)).maxNoiseStd, 0.5)
    }

    func testBlurMatchesScipyGaussianFilter() throws {
        var crop = makeCrop(Shape3D(5, 6, 7))
        let original = crop.image
        Augmentations.blur(&crop, channels: 2, sigma: (0.7, 1.3, 2.0))
        let script = """
import sys, json, numpy as np
from scipy.ndimage import gaussian_filter
a = np.array(json.load(sys.stdin), dtype=np.float32).reshape(2, 5, 6, 7)
print(json.dumps(np.stack([gaussian_filter(c, sigma=(0.7, 1.3, 2.0)) for c in a]).flatten().astype(float).tolist()))
"""
        let ref = doubles(try pythonReference(script, input: original.map(Double.init)))
        assertClose(crop.image, ref, tolerance: 2e-6, "blur")
    }

    func testNearestBoundaryFilterMatchesScipy() throws {
        let shape = Shape3D(4, 5, 9)
        var volume = testValues(shape.count, seed: 31)
        let original = volume
        gaussianFilter(&volume, shape: shape, sigma: (0, 1.7, 0.6), boundary: .nearest)
        let script = """
import sys, json, numpy as np
from scipy.ndimage import gaussian_filter
a = np.array(json.load(sys.stdin), dtype=np.float32).reshape(4, 5, 9)
print(json.dumps(gaussian_filter(a, sigma=(0, 1.7, 0.6), mode='nearest').flatten().astype(float).tolist()))
"""
        assertClose(volume, doubles(try pythonReference(script, input: original.map(Double.init))), tolerance: 2e-6, "nearest")
        XCTAssertEqual(gaussianKernel(sigma: 1).count, 9)   // radius int(4 * 1 + 0.5) = 4
    }

    func testMotionShiftAndGhostHandValues() {
        // One line along x: 0 1 2 3. Shifts [0, 1]: mean of the line and the line moved right by one voxel
        // (edge clamped): (0+0)/2, (1+0)/2, (2+1)/2, (3+2)/2.
        let s = Shape3D(1, 1, 4)
        var crop = makeCrop(s)
        crop.image = [0, 1, 2, 3, 0, 10, 20, 30]
        Augmentations.motion(&crop, channels: 2, parameters: MotionParameters(axis: 2, shifts: [0, 1]))
        XCTAssertEqual(crop.image, [0, 0.5, 1.5, 2.5, 0, 5, 15, 25])
        // Ghost with weight 0.5: each voxel mixed with the one half a line away (circularly).
        crop.image = [0, 1, 2, 3, 0, 10, 20, 30]
        Augmentations.motion(&crop, channels: 2, parameters: MotionParameters(axis: 2, shifts: [0], ghostWeight: 0.5))
        XCTAssertEqual(crop.image, [1, 2, 1, 2, 10, 20, 10, 20])
    }
}

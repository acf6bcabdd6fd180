import XCTest
@testable import IETrain

final class NormalisationTests: XCTestCase {
    func testCtWindowHandValues() throws {
        // window 600, level 50 -> input range (-250, 350) mapped linearly onto (-1, 1), clipped.
        let norm = PhotometricNormalisation(method: .ctWindow, window: 600, level: 50, outputRange: (-1, 1))
        let out = try norm.apply(channel: [-1000, -250, 50, 200, 350, 3000], mask: nil)
        let expected: [Float] = [-1, -1, 0, 0.5, 1, 1]
        for (a, b) in zip(out, expected) { XCTAssertEqual(a, b, accuracy: 1e-6) }
        // Other output range: (0, 255) with window 100 level 0 -> -50 .. 50.
        let out2 = try PhotometricNormalisation(method: .ctWindow, window: 100, level: 0, outputRange: (0, 255))
            .apply(channel: [-60, -50, 0, 25, 50], mask: nil)
        for (a, b) in zip(out2, [0, 0, 127.5, 191.25, 255] as [Float]) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }

    func testSimpleNormUsesMaskedMeanAndPopulationStd() throws {
        // Inside the mask: 1, 2, 3, 4 -> mean 2.5, std sqrt(1.25). The masked-out 100 does not count.
        let norm = PhotometricNormalisation(method: .simpleNorm)
        let out = try norm.apply(channel: [1, 2, 3, 4, 100], mask: [1, 1, 1, 1, 0])
        let s = 1.25.squareRoot()
        let expected = [1, 2, 3, 4, 100].map { Float(($0 - 2.5) / s) }
        for (a, b) in zip(out, expected) { XCTAssertEqual(a, b, accuracy: 1e-5) }
        XCTAssertThrowsError(try norm.apply(channel: [1, 2], mask: [0, 0]))
    }

    func testNoneIsIdentityAndChannelsAreIndependent() throws {
        let image: [Float] = [1, 2, 3, -5, 10, 20]
        XCTAssertEqual(try PhotometricNormalisation(method: .none).apply(image: image, channels: 2, mask: nil), image)
        let ct = PhotometricNormalisation(method: .ctWindow, window: 2, level: 0, outputRange: (-1, 1))
        let both = try ct.apply(image: [0, 0.5, 1, -1, -0.5, 0], channels: 2, mask: nil)
        XCTAssertEqual(both, [0, 0.5, 1, -1, -0.5, 0])
    }

    func testPercentileMidpointHandValues() {
        let v: [Double] = [1, 2, 3, 4]
        XCTAssertEqual(percentileMidpoint(sorted: v, 50), 2.5)   // position 1.5 -> (2+3)/2
        XCTAssertEqual(percentileMidpoint(sorted: v, 25), 1.5)   // position 0.75 -> (1+2)/2
        XCTAssertEqual(percentileMidpoint(sorted: v, 0), 1)
        XCTAssertEqual(percentileMidpoint(sorted: v, 100), 4)
        XCTAssertEqual(percentileMidpoint(sorted: [1, 2, 3, 4, 5], 50), 3) // whole position
    }

    func testOtsuOnTwoSeparatedClusters() {
        // Values 0..9 and 90..99: every threshold between the clusters separates them; Otsu picks the
        // first bin centre after the lower cluster's last value whose variance is maximal, i.e. below 90.
        let values = (0..<10).map(Float.init) + (90..<100).map(Float.init)
        let t = otsuThreshold(values)
        XCTAssertGreaterThanOrEqual(t, 9)
        XCTAssertLessThan(t, 90)
        XCTAssertEqual(otsuThreshold([5, 5, 5]), 5)
    }

    private let referenceScript = """
import sys, json, numpy as np
d = json.load(sys.stdin)
img = np.array(d['image'], dtype=np.float64); mask = np.array(d['mask']) > 0
lo_out, hi_out = d['out']; sharpen = d['sharpen']
def lin(x, r):
    g = (hi_out - lo_out) / (r[1] - r[0]); c = hi_out - g * r[1]
    return np.clip(x * g + c, lo_out, hi_out)
def robust(v):
    q = np.percentile(v, (0, 25, 50, 75, 100), method='midpoint')
    return q[2], (q[3] - q[1]) / (2 * 0.67448975), q[0], q[4]
# TrimmedNorm
pix = img[mask]
lo, hi = np.percentile(pix, d['trim'], method='midpoint')
kept = pix[(pix > lo) & (pix < hi)]
med, std, mn, mx = robust(kept)
trimmed = lin(img, (max(med - std * sharpen, mn), min(med + std * sharpen, mx)))
trimmed[~mask] = lo_out
# MriWindow, Otsu by brute force over the 256 bin centres (between-class variance from masks).
hist, edges = np.histogram(img, bins=256, range=(img.min(), img.max()))
centres = (edges[:-1] + edges[1:]) / 2
best, t = -1, centres[0]
for i in range(255):
    a = hist[:i+1]; b = hist[i+1:]
    if a.sum() == 0 or b.sum() == 0: continue
    m1 = (a * centres[:i+1]).sum() / a.sum(); m2 = (b * centres[i+1:]).sum() / b.sum()
    v = a.sum() * b.sum() * (m1 - m2) ** 2
    if v > best: best, t = v, centres[i]
med, std, _, mx = robust(img[img > t])
rng = (max(med - std * sharpen, t), min(mx, med + d['tail'] * std * sharpen))
th = img.copy(); th[th < t] = 0
mri = lin(th, rng)
print(json.dumps({'trimmed': trimmed.tolist(), 'mri': mri.tolist(), 'otsu': float(t)}))
"""

    func testTrimmedNormAndMriWindowAgainstNumpy() throws {
        // A bimodal "MR" image: dark air around a bright body with texture, plus a few outliers.
        let n = 6 * 10 * 12
        var image = testValues(n, seed: 3, range: 0...40)
        let body = testValues(n, seed: 4, range: 300...700)
        var mask = [UInt8](repeating: 0, count: n)
        for i in 0..<n where (i % 12) >= 3 && (i % 12) < 10 { image[i] = body[i]; mask[i] = 1 }
        image[100] = 5000; image[200] = -300
        mask[100] = 1
        let ref = try pythonReference(referenceScript, input: [
            "image": image.map(Double.init), "mask": mask.map(Int.init), "out": [-1.0, 1.0], "sharpen": 1.9,
            "trim": [2.0, 98.0], "tail": 1.5,
        ]) as! [String: Any]
        let trimmed = try PhotometricNormalisation(method: .trimmedNorm, outputRange: (-1, 1), sharpen: 1.9,
                                                   trimPercentiles: (2, 98)).apply(channel: image, mask: mask)
        assertClose(trimmed, doubles(ref["trimmed"]), tolerance: 1e-5, "TrimmedNorm")
        XCTAssertEqual(otsuThreshold(image), (ref["otsu"] as! NSNumber).doubleValue, accuracy: 1e-6)
        let mri = try PhotometricNormalisation(method: .mriWindow, outputRange: (-1, 1), sharpen: 1.9, tail: [1.5])
            .apply(channel: image, mask: mask)
        assertClose(mri, doubles(ref["mri"]), tolerance: 1e-5, "MriWindow")
        // The result really spans the output range (the test is not vacuous).
        XCTAssertEqual(mri.min(), -1); XCTAssertEqual(mri.max(), 1)
        XCTAssertEqual(trimmed.min(), -1); XCTAssertEqual(trimmed.max(), 1)
    }
}

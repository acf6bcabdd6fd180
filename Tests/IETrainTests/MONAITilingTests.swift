import Foundation
import IECore
import IEConfig
import XCTest
@testable import IETrain

/// The MONAI tilings (SPEC §5): window placement by hand, and the stitched posteriors against a numpy
/// re-implementation of MONAI 1.6.1's documented sliding_window_inference rules (padding to the roi only, floor half
/// before; scan interval int(roi * (1 - overlap)); dense_patch_slices; compute_importance_map; output / count map),
/// computed in float32 as MONAI does, with a known position-dependent "network" so that every placement error shows.
final class MONAITilingTests: XCTestCase {
    func testWindowPlacementAndPadding() throws {
        // A CT-like volume: no padding, interval 48, the last window flush with the end.
        var g = SlidingWindow.monaiGeometry(shape: Shape3D(96, 256, 250), patch: Shape3D(64, 64, 64), overlap: 0.25)
        XCTAssertEqual(g.padded, Shape3D(96, 256, 250)); XCTAssertEqual(g.offset, Shape3D(0, 0, 0))
        XCTAssertEqual(g.interval, Shape3D(48, 48, 48))
        XCTAssertEqual(SlidingWindow.starts(length: 96, patch: 64, stride: 48), [0, 32])
        XCTAssertEqual(SlidingWindow.starts(length: 256, patch: 64, stride: 48), [0, 48, 96, 144, 192])
        XCTAssertEqual(SlidingWindow.starts(length: 250, patch: 64, stride: 48), [0, 48, 96, 144, 186])
        // Smaller than the patch: padded to it with floor(diff/2) before (31 -> 15, 24 -> 12); an axis equal to the
        // patch scans with the patch itself; int(64 * 0.9) = 57 (truncated), int(16 * 0.01) = 0 -> 1.
        g = SlidingWindow.monaiGeometry(shape: Shape3D(33, 40, 64), patch: Shape3D(64, 64, 64), overlap: 0.1)
        XCTAssertEqual(g.padded, Shape3D(64, 64, 64)); XCTAssertEqual(g.offset, Shape3D(15, 12, 0))
        XCTAssertEqual(g.interval, Shape3D(64, 64, 64))
        g = SlidingWindow.monaiGeometry(shape: Shape3D(65, 100, 17), patch: Shape3D(64, 64, 16), overlap: 0.99)
        XCTAssertEqual(g.interval, Shape3D(1, 1, 1))
        g = SlidingWindow.monaiGeometry(shape: Shape3D(65, 100, 17), patch: Shape3D(64, 64, 16), overlap: 0.1)
        XCTAssertEqual(g.interval, Shape3D(57, 57, 14))
        let window = try SlidingWindow(patch: Shape3D(16, 16, 32), classCount: 2, placement: .monai(overlap: 0.25))
        let layout = window.geometry(for: Shape3D(13, 37, 50))
        XCTAssertEqual(layout.padded, Shape3D(16, 37, 50)); XCTAssertEqual(layout.offset, Shape3D(1, 0, 0))
        XCTAssertEqual(layout.origins, [0, 12, 21].flatMap { y in [0, 18].map { Shape3D(0, y, $0) } })
        XCTAssertThrowsError(try SlidingWindow(patch: Shape3D(16, 16, 16), classCount: 2, placement: .monai(overlap: 1)))
        XCTAssertThrowsError(try SlidingWindow(patch: Shape3D(16, 16, 16), classCount: 2, placement: .monai(overlap: -0.1)))
    }

    func testImportanceMapValues() {
        // n = 16, sigma = 2: the centre voxels sit at x = +-0.5, so the peak is exp(-1/32)^3, not 1.
        let s = Shape3D(16, 16, 16)
        let map = SlidingWindow.monaiImportanceMap(patch: s, sigmaScale: 0.125)
        XCTAssertEqual(Double(map[s.index(7, 8, 7)]), exp(-3.0 / 32), accuracy: 1e-6)
        XCTAssertEqual(Double(map.max() ?? 0), exp(-3.0 / 32), accuracy: 1e-6)
        // One voxel further out along y: x = 1.5, exp(-2.25 / 8).
        XCTAssertEqual(Double(map[s.index(7, 9, 7)]), exp(-2.0 / 32 - 2.25 / 8), accuracy: 1e-6)
        // The corner, exp(-3 * 7.5^2 / 8) ~ 7e-10, is clamped up to 1e-3 (the smallest value is below it).
        XCTAssertEqual(map[s.index(0, 0, 0)], Float(1e-3))
        XCTAssertEqual(map.min(), Float(1e-3))
        // n = 5, sigma_scale 1: the smallest value exp(-3 * 4 / 50) ~ 0.787 is above 1e-3 and stays.
        let wide = SlidingWindow.monaiImportanceMap(patch: Shape3D(5, 5, 5), sigmaScale: 1)
        XCTAssertEqual(Double(wide[0]), exp(-12.0 / 50), accuracy: 1e-6)
        XCTAssertEqual(wide[Shape3D(5, 5, 5).index(2, 2, 2)], 1)
    }

    /// Fake network: class 1 = sigmoid(1.5 (ch0 - ch1) + 0.05 (z - y) + 0.02 x) at patch position (z, y, x).
    static func fakeNetwork(_ batch: [Float], count: Int, patch: Shape3D) -> [Float] {
        let p = patch.count
        var out = [Float](repeating: 0, count: count * 2 * p)
        for b in 0..<count {
            for z in 0..<patch.z { for y in 0..<patch.y { for x in 0..<patch.x {
                let i = patch.index(z, y, x)
                let v = 1.5 * (Double(batch[2 * b * p + i]) - Double(batch[(2 * b + 1) * p + i]))
                    + 0.05 * Double(z - y) + 0.02 * Double(x)
                let s = 1 / (1 + exp(-v))
                out[2 * b * p + i] = Float(1 - s)
                out[(2 * b + 1) * p + i] = Float(s)
            } } }
        }
        return out
    }

    static let oracle = #"""
import json, math, sys
import numpy as np

d = json.load(sys.stdin)
shape, roi, overlap = d["shape"], d["roi"], d["overlap"]
image = np.array(d["image"], dtype=np.float32).reshape([2] + shape)

def predictor(batch):
    _, _, pz, py, px = batch.shape
    z, y, x = np.meshgrid(np.arange(pz), np.arange(py), np.arange(px), indexing="ij")
    v = 1.5 * (batch[:, 0].astype(np.float64) - batch[:, 1]) + 0.05 * (z - y) + 0.02 * x
    s = 1 / (1 + np.exp(-v))
    return np.stack([1 - s, s], axis=1).astype(np.float32)

# sliding_window_inference: pad only where the image is smaller than roi_size, diff // 2 before.
image_size = [max(n, r) for n, r in zip(shape, roi)]
pads = [((r - n) // 2, (r - n) - (r - n) // 2) if r > n else (0, 0) for n, r in zip(shape, roi)]
padded = np.pad(image, [(0, 0)] + pads, mode=d["padding"])
# _get_scan_interval
interval = [r if r == n else max(int(r * (1 - overlap)), 1) for n, r in zip(image_size, roi)]
# dense_patch_slices
def starts(n, p, s):
    num = int(math.ceil(float(n) / s))
    first = next((i for i in range(num) if i * s + p >= n), None)
    return [i * s - max(i * s + p - n, 0) for i in range(first + 1 if first is not None else 1)]
# compute_importance_map, float32
if d["mode"] == "gaussian":
    w = None
    for n in roi:
        x = np.arange(-(n - 1) / 2.0, (n - 1) / 2.0 + 1).astype(np.float32)
        g = np.exp(x ** 2 / np.float32(-2 * (0.125 * n) ** 2)).astype(np.float32)
        w = g if w is None else np.multiply.outer(w, g).astype(np.float32)
    w = np.maximum(w, np.float32(max(float(w.min()), 1e-3)))
else:
    w = np.ones(roi, dtype=np.float32)
out = np.zeros([2] + image_size, dtype=np.float32)
count = np.zeros(image_size, dtype=np.float32)
windows = [(a, b, c) for a in starts(image_size[0], roi[0], interval[0])
           for b in starts(image_size[1], roi[1], interval[1]) for c in starts(image_size[2], roi[2], interval[2])]
for (a, b, c) in windows:
    box = (slice(a, a + roi[0]), slice(b, b + roi[1]), slice(c, c + roi[2]))
    out[(slice(None),) + box] += predictor(padded[(None, slice(None)) + box])[0] * w
    count[box] += w
out = out / count
lo = [p[0] for p in pads]
out = out[:, lo[0]:lo[0] + shape[0], lo[1]:lo[1] + shape[1], lo[2]:lo[2] + shape[2]]
print(json.dumps({"posteriors": out.reshape(-1).tolist(), "windows": [list(t) for t in windows]}))
"""#

    func testStitchedPosteriorsEqualANumpyReimplementationOfMONAIs() throws {
        let cases: [(shape: Shape3D, roi: Shape3D, overlap: Double, gaussian: Bool, padding: PaddingMode, numpy: String)] = [
            // Z smaller than the roi by an odd amount (floor before), no axis a multiple of the roi.
            (Shape3D(13, 37, 50), Shape3D(16, 16, 32), 0.25, false, .zero, "constant"),
            (Shape3D(13, 37, 50), Shape3D(16, 32, 16), 0.6, true, .edge, "edge"),
            (Shape3D(20, 9, 33), Shape3D(16, 16, 16), 0.5, true, .reflect, "reflect"),
        ]
        for (i, c) in cases.enumerated() {
            let image = testValues(2 * c.shape.count, seed: 90 + UInt64(i), range: -1...1)
            let window = try SlidingWindow(patch: c.roi, classCount: 2, batchSize: 3, paddingMode: c.padding,
                                           weighting: c.gaussian ? .monaiGaussian(sigmaScale: 0.125) : .uniform,
                                           placement: .monai(overlap: c.overlap))
            var patches = 0
            let ours = try window.run(image: image, channels: 2, shape: c.shape) { batch, count, patch in
                patches += count
                return Self.fakeNetwork(batch, count: count, patch: patch)
            }
            let request: [String: Any] = [
                "shape": c.shape.array, "roi": c.roi.array, "overlap": c.overlap, "image": image.map(Double.init),
                "mode": c.gaussian ? "gaussian" : "constant", "padding": c.numpy,
            ]
            let reference = try XCTUnwrap(try pythonReference(Self.oracle, input: request) as? [String: Any])
            let label = "MONAI \(c.gaussian ? "gaussian" : "constant") of \(c.shape), roi \(c.roi), overlap \(c.overlap), \(c.padding)"
            let windows = (reference["windows"] as? [Any] ?? []).map { ints($0) }
            XCTAssertEqual(window.geometry(for: c.shape).origins.map(\.array), windows, "\(label): windows")
            XCTAssertEqual(patches, windows.count, label)
            assertClose(ours, doubles(reference["posteriors"]), tolerance: 2e-6, label)
        }
    }

    func testConfigKeysSelectTheMONAITilings() throws {
        func settings(_ flags: [String], gaussian: Bool = false) throws -> InferenceSettings {
            try InferenceSettings(config: ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(["--crop_size=16,32,32"] + flags)),
                                  gaussian: gaussian)
        }
        XCTAssertEqual(try settings(["--inference_tiling=MONAI"]).tiling, .monai)
        XCTAssertEqual(try settings(["--inference_tiling=MONAI"]).overlap, 0.25)
        XCTAssertEqual(try settings(["--inference_tiling=MONAI"], gaussian: true).tiling, .monaiGaussian)
        XCTAssertEqual(try settings(["--inference_tiling=MONAIGaussian", "--inference_overlap=0.5"]).overlap, 0.5)
        XCTAssertThrowsError(try settings(["--inference_tiling=MONAI", "--inference_overlap=1"]))
    }
}

import XCTest
import IECore
import IETestSupport
@testable import IETrain

/// Resize, RandomAffine and ElasticDeformation on random images against scipy.ndimage: zoom with grid_mode
/// (PyTorch's align_corners=False), and map_coordinates at positions computed in Python from torchvision's
/// documented matrix composition R(a) S(s) SHy(sy) SHx(sx), inverted by numpy.
final class TransformsOracleTests: XCTestCase {
    func randomImage(channels: Int, depth: Int, height: Int, width: Int, seed: UInt64) -> TransformImage {
        var rng = Xoshiro256(seed: seed)
        return TransformImage.generate(channels: channels, depth: depth, height: height, width: width) { _, _, _, _ in
            Float(rng.uniform(-1, 1))
        }
    }

    func oracle(_ script: String, _ input: [String: Any]) throws -> [Double] {
        let prelude = "import json, sys, numpy as np, scipy.ndimage as nd\nq = json.load(sys.stdin)\n"
        let data = try JSONSerialization.data(withJSONObject: input)
        let result = try PythonOracle.json(prelude + script, input: data)
        return (result as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan }
    }

    func assertNear(_ a: [Float], _ b: [Double], _ tolerance: Double, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        let worst = zip(a, b).map { abs(Double($0) - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, tolerance, what)
    }

    func testResizeMatchesScipyZoomInGridMode() throws {
        let image = randomImage(channels: 2, depth: 3, height: 5, width: 7, seed: 11)
        for size in [[2, 9, 4], [5, 3, 11]] {
            var rng = Xoshiro256(seed: 0)
            let out = try ResizeTransform(size: size).apply(image, using: &rng)
            let expected = try oracle("""
                a = np.array(q['v'], dtype=np.float64).reshape(q['shape'])
                out = [nd.zoom(c, [m / n for m, n in zip(q['size'], c.shape)], order=1, grid_mode=True, mode='nearest')
                       for c in a]
                print(json.dumps(np.stack(out).ravel().tolist()))
                """, ["v": image.values.map(Double.init), "shape": image.shape, "size": size])
            assertNear(out.values, expected, 1e-5, "Resize to \(size)")
        }
    }

    func testRandomAffineMatchesTorchvisionsMatrixSampledByScipy() throws {
        let image = randomImage(channels: 2, depth: 2, height: 9, width: 12, seed: 12)
        let draws: [RandomAffineTransform.Draw] = [
            .init(angle: 30, translateX: 2, translateY: -1, scale: 1.2, shearX: 10, shearY: -5),
            .init(angle: -47.5, translateX: -3, translateY: 2, scale: 0.8, shearX: -20, shearY: 15),
        ]
        for draw in draws {
            let out = RandomAffineTransform(fill: 0.5).apply(image, draw: draw)
            let expected = try oracle("""
                a = np.array(q['v'], dtype=np.float64).reshape(q['shape'])
                C, D, H, W = a.shape
                r, sx, sy = np.radians(q['angle']), np.radians(q['shear_x']), np.radians(q['shear_y'])
                R = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
                SHx = np.array([[1, -np.tan(sx)], [0, 1]])
                SHy = np.array([[1, 0], [-np.tan(sy), 1]])
                inverse = np.linalg.inv(R @ (q['scale'] * np.eye(2)) @ SHy @ SHx)
                cx, cy = (W - 1) / 2, (H - 1) / 2
                y, x = np.mgrid[0:H, 0:W].astype(np.float64)
                offsets = np.stack([(x - cx - q['tx']).ravel(), (y - cy - q['ty']).ravel()])
                xin, yin = inverse @ offsets
                out = np.empty_like(a)
                for c in range(C):
                    for z in range(D):
                        out[c, z] = nd.map_coordinates(a[c, z], [yin + cy, xin + cx], order=1, mode='grid-constant',
                                                       cval=q['fill']).reshape(H, W)
                print(json.dumps(out.ravel().tolist()))
                """, ["v": image.values.map(Double.init), "shape": image.shape, "angle": draw.angle,
                      "shear_x": draw.shearX, "shear_y": draw.shearY, "scale": draw.scale,
                      "tx": draw.translateX, "ty": draw.translateY, "fill": 0.5])
            assertNear(out.values, expected, 1e-5, "RandomAffine \(draw)")
        }
    }

    func testElasticDeformationUpsamplesTheGridAndWarpsAsScipy() throws {
        for depth in [1, 5] {
            let image = randomImage(channels: 1, depth: depth, height: 10, width: 13, seed: 13)
            let elastic = ElasticDeformationTransform(magnitude: 2.5, controlPoints: 4, fill: -2)
            var rng = Xoshiro256(seed: 5)
            let field = elastic.coarseField(for: image, using: &rng)
            XCTAssert(field.values.contains { $0 != 0 })
            let out = elastic.apply(image, field: field)
            let expected = try oracle("""
                a = np.array(q['v'], dtype=np.float64).reshape(q['shape'])[0]
                f = np.array(q['field'], dtype=np.float64).reshape(q['field_shape'])
                D, H, W = a.shape
                grid = np.mgrid[0:D, 0:H, 0:W].astype(np.float64)
                # Grid corners on image corners: voxel p of n sits at p (g - 1) / (n - 1) on a grid of g points.
                coarse = [g * (f.shape[i + 1] - 1) / max(a.shape[i] - 1, 1) for i, g in enumerate(grid)]
                displacement = [nd.map_coordinates(f[k], coarse, order=1, mode='nearest') for k in range(3)]
                out = nd.map_coordinates(a, [grid[k] + displacement[k] for k in range(3)], order=1,
                                         mode='grid-constant', cval=q['fill'])
                print(json.dumps(out.ravel().tolist()))
                """, ["v": image.values.map(Double.init), "shape": image.shape, "field": field.values.map(Double.init),
                      "field_shape": field.shape, "fill": -2])
            assertNear(out.values, expected, 1e-5, "ElasticDeformation depth \(depth)")
        }
    }
}

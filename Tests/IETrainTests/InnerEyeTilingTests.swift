import Foundation
import IECore
import XCTest
import IENet
import IEConfig
@testable import IETrain

/// Both tilings against python re-implementations on a deterministic fake "network" whose output depends on the
/// input patch and on the position inside the patch, so that padding, patch placement and stitching all show.
/// InnerEye's tiling is re-implemented from pipelines/inference.py, base_model.restrict_crop_size_to_image and
/// torchio 0.18.74 (EnsureShapeMultiple -> CropOrPad, GridSampler, GridAggregator overlap_mode "crop").
final class InnerEyeTilingTests: XCTestCase {
    static let classes = 3

    /// Fake network: logits (0, 2v + 0.1 z - 0.05 y, -v + 0.04 x + 0.03 z y / (1 + y)) with v = ch0 - 0.5 ch1 and
    /// (z, y, x) the position inside the patch; softmax over the 3 classes.
    static func fakeNetwork(_ batch: [Float], count: Int, patch: Shape3D) -> [Float] {
        let p = patch.count, k = classes
        var out = [Float](repeating: 0, count: count * k * p)
        for b in 0..<count {
            for z in 0..<patch.z { for y in 0..<patch.y { for x in 0..<patch.x {
                let i = patch.index(z, y, x)
                let v = Double(batch[(b * 2) * p + i]) - 0.5 * Double(batch[(b * 2 + 1) * p + i])
                let (zd, yd, xd) = (Double(z), Double(y), Double(x))
                let logits = [0, 2 * v + 0.1 * zd - 0.05 * yd, -v + 0.04 * xd + 0.03 * zd * yd / (1 + yd)]
                let m = logits.max()!
                let e = logits.map { exp($0 - m) }
                let total = e.reduce(0, +)
                for c in 0..<k { out[(b * k + c) * p + i] = Float(e[c] / total) }
            } } }
        }
        return out
    }

    static let oracle = #"""
import json, sys
import numpy as np

d = json.load(sys.stdin)
C, K = 2, 3
shape = d["shape"]
image = np.array(d["image"], dtype=np.float64).reshape([C] + shape)
patch = np.array(d["patch"]); stride = np.array(d["stride"]); multiple = d["multiple"]
mode = d["mode"]; batch_size = d["batch_size"]

def network(batch):
    b, _, pz, py, px = batch.shape
    z, y, x = np.meshgrid(np.arange(pz), np.arange(py), np.arange(px), indexing="ij")
    v = batch[:, 0] - 0.5 * batch[:, 1]
    l1 = 2 * v + 0.1 * z - 0.05 * y
    l2 = -v + 0.04 * x + 0.03 * z * y / (1 + y)
    logits = np.stack([np.zeros_like(l1), l1, l2], axis=1)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

def starts(length, p, s):
    idx = list(range(0, length + 1 - p, s))
    if idx[-1] != length - p:
        idx.append(length - p)
    return idx

def innereye():
    # tio.EnsureShapeMultiple(multiple) -> CropOrPad(target): constant 0, ceil(diff/2) before.
    source = np.array(shape)
    target = np.maximum(np.ceil(source / multiple) * multiple, 1).astype(int)
    pads = [(int(np.ceil(q / 2)), int(np.floor(q / 2))) for q in target - source]
    esm = np.pad(image, [(0, 0)] + pads, mode="constant", constant_values=0)
    # CropSizeConstraints.restrict_crop_size_to_image on the padded shape.
    eshape = np.array(esm.shape[1:])
    if np.all(eshape >= patch):
        crop, st = patch, stride
    else:
        ratio = stride / patch
        crop_new = np.ceil(np.minimum(patch, eshape) / multiple) * multiple
        crop, st = crop_new.astype(int), np.maximum(np.floor(ratio * crop_new), 1).astype(int)
    overlap = crop - st
    # GridSampler: Pad(overlap // 2 per side, padding_mode), then _parse_sizes and _get_patches_locations.
    border = overlap // 2
    gs = np.pad(esm, [(0, 0)] + [(int(q), int(q)) for q in border], mode=mode)
    assert not np.any(crop > np.array(gs.shape[1:]))
    assert not np.any(overlap >= crop)
    assert not np.any(overlap % 2)
    indices = [starts(int(n), int(p), int(p - o)) for n, p, o in zip(gs.shape[1:], crop, overlap)]
    ini = np.unique(np.array(np.meshgrid(*indices)).reshape(3, -1).T, axis=0)
    locations = np.array(sorted(np.hstack((ini, ini + crop)).tolist()))
    # GridAggregator, overlap_mode "crop", volume padded: every patch loses half the overlap on each side.
    out = np.zeros([K] + list(gs.shape[1:]))
    for first in range(0, len(locations), batch_size):
        locs = locations[first:first + batch_size]
        post = network(np.stack([gs[:, l[0]:l[3], l[1]:l[4], l[2]:l[5]] for l in locs]))
        for p, l in zip(post, locs):
            ci = border; fin = crop - border
            ni = l[:3] + ci; nf = l[3:] - border
            out[:, ni[0]:nf[0], ni[1]:nf[1], ni[2]:nf[2]] = p[:, ci[0]:fin[0], ci[1]:fin[1], ci[2]:fin[2]]
    # get_output_tensor: Crop(border); then the inverse of EnsureShapeMultiple.
    out = out[:, border[0]:out.shape[1] - border[0], border[1]:out.shape[2] - border[1], border[2]:out.shape[3] - border[2]]
    lo = [q[0] for q in pads]
    out = out[:, lo[0]:lo[0] + shape[0], lo[1]:lo[1] + shape[1], lo[2]:lo[2] + shape[2]]
    return out, crop, st, len(locations)

def average():
    # SPEC §5 default: pad (padding mode) to a multiple and at least one patch, ceil(diff/2) before; starts
    # 0, s, 2s, ... plus a flush one; uniform average of the overlapping patches.
    source = np.array(shape)
    target = np.maximum(np.ceil(source / multiple).astype(int) * multiple, patch)
    pads = [(int(np.ceil(q / 2)), int(np.floor(q / 2))) for q in target - source]
    padded = np.pad(image, [(0, 0)] + pads, mode=mode)
    indices = [starts(int(n), int(p), int(s)) for n, p, s in zip(target, patch, stride)]
    total = np.zeros([K] + list(target)); count = np.zeros(list(target))
    locations = [(z, y, x) for z in indices[0] for y in indices[1] for x in indices[2]]
    for (z, y, x) in locations:
        p = network(padded[None, :, z:z + patch[0], y:y + patch[1], x:x + patch[2]])[0]
        total[:, z:z + patch[0], y:y + patch[1], x:x + patch[2]] += p
        count[z:z + patch[0], y:y + patch[1], x:x + patch[2]] += 1
    out = total / count
    lo = [q[0] for q in pads]
    out = out[:, lo[0]:lo[0] + shape[0], lo[1]:lo[1] + shape[1], lo[2]:lo[2] + shape[2]]
    return out, patch, stride, len(locations)

out, crop, st, n = innereye() if d["tiling"] == "InnerEye" else average()
print(json.dumps({"posteriors": out.reshape(-1).tolist(), "patch": [int(q) for q in crop],
                  "stride": [int(q) for q in st], "patches": n}))
"""#

    struct Case {
        var shape: Shape3D, patch: Shape3D, stride: Shape3D, mode: PaddingMode
    }

    static let numpyMode: [PaddingMode: String] = [.edge: "edge", .zero: "constant", .reflect: "reflect", .symmetric: "symmetric"]

    static let cases = [
        // Smaller than the patch along Z (13 -> 16 < 32: patch and stride shrink), no axis a multiple of 16,
        // overlapping strides (overlaps 8, 8, 12 after the shrink).
        Case(shape: Shape3D(13, 37, 50), patch: Shape3D(32, 32, 32), stride: Shape3D(16, 24, 20), mode: .edge),
        // No overlap, but flush last patches that overlap their neighbours (Y: 48 = 0 and 16 with patch 32).
        Case(shape: Shape3D(21, 40, 30), patch: Shape3D(16, 32, 16), stride: Shape3D(16, 32, 16), mode: .zero),
        // Overlaps 8, 16, 8 with reflect padding; Y exactly one patch after padding to 32.
        Case(shape: Shape3D(40, 19, 33), patch: Shape3D(32, 32, 16), stride: Shape3D(24, 16, 8), mode: .reflect),
    ]

    func run(_ c: Case, tiling: InferenceTiling, seed: UInt64) throws {
        let image = testValues(2 * c.shape.count, seed: seed, range: -1...1)
        let window = try SlidingWindow(patch: c.patch, stride: c.stride, classCount: Self.classes, batchSize: 3,
                                       paddingMode: c.mode, weighting: .uniform)
        var patches = 0
        let predict: SlidingWindow.Predictor = { batch, count, patch in
            patches += count
            return Self.fakeNetwork(batch, count: count, patch: patch)
        }
        let ours = tiling == .innerEye
            ? try window.runInnerEye(image: image, channels: 2, shape: c.shape, predict: predict)
            : try window.run(image: image, channels: 2, shape: c.shape, predict: predict)
        let request: [String: Any] = [
            "shape": [c.shape.z, c.shape.y, c.shape.x], "image": image.map(Double.init),
            "patch": [c.patch.z, c.patch.y, c.patch.x], "stride": [c.stride.z, c.stride.y, c.stride.x],
            "multiple": 16, "mode": Self.numpyMode[c.mode]!, "batch_size": 3, "tiling": tiling.rawValue,
        ]
        let reference = try XCTUnwrap(try pythonReference(Self.oracle, input: request) as? [String: Any])
        let label = "\(tiling.rawValue) tiling of \(c.shape), patch \(c.patch), stride \(c.stride), \(c.mode)"
        XCTAssertEqual(patches, (reference["patches"] as? Int) ?? -1, "\(label): patch count")
        assertClose(ours, doubles(reference["posteriors"]), tolerance: 2e-6, label)
        if tiling == .innerEye {
            let multipleShape = Shape3D((c.shape.z + 15) / 16 * 16, (c.shape.y + 15) / 16 * 16, (c.shape.x + 15) / 16 * 16)
            let effective = SlidingWindow.innerEyePatchAndStride(paddedShape: multipleShape, patch: c.patch,
                                                                 stride: c.stride, multiple: 16)
            XCTAssertEqual(effective.patch.array, ints(reference["patch"]), "\(label): effective patch")
            XCTAssertEqual(effective.stride.array, ints(reference["stride"]), "\(label): effective stride")
        }
    }

    func testInnerEyeTilingEqualsAPythonReimplementationOfInnerEyes() throws {
        for (i, c) in Self.cases.enumerated() { try run(c, tiling: .innerEye, seed: 60 + UInt64(i)) }
    }

    func testAverageTilingEqualsAPythonReimplementationOfTheSpecRule() throws {
        for (i, c) in Self.cases.enumerated() { try run(c, tiling: .average, seed: 70 + UInt64(i)) }
    }

    func testTheTwoTilingsDifferWhereTheyShould() throws {
        // Same image, same network: the stitching rules differ, so must the posteriors (else the tests above
        // could not tell them apart).
        let c = Self.cases[0]
        let image = testValues(2 * c.shape.count, seed: 80, range: -1...1)
        let window = try SlidingWindow(patch: c.patch, stride: c.stride, classCount: Self.classes, batchSize: 4, paddingMode: c.mode)
        let a = try window.run(image: image, channels: 2, shape: c.shape) { Self.fakeNetwork($0, count: $1, patch: $2) }
        let b = try window.runInnerEye(image: image, channels: 2, shape: c.shape) { Self.fakeNetwork($0, count: $1, patch: $2) }
        XCTAssertGreaterThan(zip(a, b).map { abs($0 - $1) }.max() ?? 0, 1e-2)
    }

    func testRestrictCropSizeToImage() {
        // Unchanged when the patch fits on every axis.
        let fits = SlidingWindow.innerEyePatchAndStride(paddedShape: Shape3D(32, 64, 64), patch: Shape3D(32, 32, 32),
                                                        stride: Shape3D(16, 24, 32), multiple: 16)
        XCTAssertEqual(fits.patch, Shape3D(32, 32, 32)); XCTAssertEqual(fits.stride, Shape3D(16, 24, 32))
        // Z shrinks to 16; the stride keeps its ratio on every axis: floor(0.5 * 16), floor(0.75 * 32), 32.
        let small = SlidingWindow.innerEyePatchAndStride(paddedShape: Shape3D(16, 64, 64), patch: Shape3D(32, 32, 32),
                                                         stride: Shape3D(16, 24, 32), multiple: 16)
        XCTAssertEqual(small.patch, Shape3D(16, 32, 32)); XCTAssertEqual(small.stride, Shape3D(8, 24, 32))
        // A stride that rounds to 0 becomes 1: 1/64 of 16 = 0.25.
        let tiny = SlidingWindow.innerEyePatchAndStride(paddedShape: Shape3D(16, 16, 16), patch: Shape3D(64, 64, 64),
                                                        stride: Shape3D(1, 64, 64), multiple: 16)
        XCTAssertEqual(tiny.patch, Shape3D(16, 16, 16)); XCTAssertEqual(tiny.stride, Shape3D(1, 16, 16))
    }

    func testOddOverlapAndNoPaddingAreRefused() throws {
        let image = [Float](repeating: 0, count: 2 * 32 * 32 * 32)
        let odd = try SlidingWindow(patch: Shape3D(32, 32, 32), stride: Shape3D(32, 32, 27), classCount: 3)
        XCTAssertThrowsError(try odd.runInnerEye(image: image, channels: 2, shape: Shape3D(32, 32, 32)) {
            Self.fakeNetwork($0, count: $1, patch: $2)
        })
        let noPadding = try SlidingWindow(patch: Shape3D(32, 32, 32), classCount: 3, paddingMode: .noPadding)
        XCTAssertThrowsError(try noPadding.runInnerEye(image: image, channels: 2, shape: Shape3D(32, 32, 32)) {
            Self.fakeNetwork($0, count: $1, patch: $2)
        })
    }

    /// With the real UNet3D: a volume smaller than the patch on every axis is zero-padded (ceil before) to the
    /// multiple of 16 and the patch shrinks to it, so the InnerEye tiling is one forward pass of that volume.
    func testInnerEyeTilingWithUNet3DIsOneForwardPassOfTheZeroPaddedVolume() throws {
        let shape = Shape3D(20, 37, 29), padded = Shape3D(32, 48, 32)
        var rng = SeededGenerator(seed: 9)
        let image = (0..<shape.count).map { _ in Float.random(in: -1...1, using: &rng) }
        let model = UNet3D(imageChannels: 1, classes: 3, featureChannels: 2, seed: 4)
        var settings = InferenceSettings(patch: Shape3D(48, 64, 48))
        settings.tiling = .innerEye
        let segmenter = try Segmenter(models: [model], settings: settings)
        let stitched = try segmenter.posteriors(model: model, image: image, channels: 1, shape: shape)

        let before = Shape3D(6, 6, 2)   // ceil((32-20)/2), ceil((48-37)/2), ceil((32-29)/2)
        var zeroPadded = [Float](repeating: 0, count: padded.count)
        for z in 0..<shape.z { for y in 0..<shape.y { for x in 0..<shape.x {
            zeroPadded[padded.index(z + before.z, y + before.y, x + before.x)] = image[shape.index(z, y, x)]
        } } }
        let whole = softmaxChannels(model.forward(Tensor(shape: [1, 1, padded.z, padded.y, padded.x], data: zeroPadded),
                                                  training: false))
        var maxError: Float = 0
        for c in 0..<3 { for z in 0..<shape.z { for y in 0..<shape.y { for x in 0..<shape.x {
            let expected = whole.data[c * padded.count + padded.index(z + before.z, y + before.y, x + before.x)]
            maxError = max(maxError, abs(expected - stitched[c * shape.count + shape.index(z, y, x)]))
        } } } }
        XCTAssertLessThan(maxError, 1e-5)
    }
}

/// The config keys of this work: inference_tiling (SPEC §5) and label_smoothing_eps / Mixture (SPEC §4.2).
final class TilingAndLossConfigTests: XCTestCase {
    func config(_ flags: [String]) throws -> ModelConfig {
        try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(["--crop_size=16,32,32"] + flags))
    }

    func testInferenceTilingKeyAndTheGaussianFlag() throws {
        XCTAssertEqual(try InferenceSettings(config: config([])).tiling, .average)
        XCTAssertEqual(try InferenceSettings(config: config(["--inference_tiling=InnerEye"])).tiling, .innerEye)
        XCTAssertEqual(try InferenceSettings(config: config(["--inference_tiling=Gaussian"])).tiling, .gaussian)
        XCTAssertEqual(try InferenceSettings(config: config(["--inference_tiling=InnerEye"]), gaussian: true).tiling, .gaussian)
        XCTAssertThrowsError(try InferenceSettings(config: config(["--inference_tiling=Crop"])))
    }

    func testLossFromConfig() throws {
        guard case .crossEntropy(let power, let smoothing) = try TrainingSetup.loss(
            config: config(["--loss_type=CrossEntropy", "--label_smoothing_eps=0.1", "--loss_class_weight_power=0.5"])) else {
            return XCTFail("CrossEntropy expected")
        }
        XCTAssertEqual(power, 0.5); XCTAssertEqual(smoothing, 0.1)
        // SoftDice never sees the smoothing (InnerEye builds it without); Focal refuses it.
        guard case .softDice(let eps, _) = try TrainingSetup.loss(config: config(["--label_smoothing_eps=0.1"])) else {
            return XCTFail("SoftDice expected")
        }
        XCTAssertEqual(eps, 1e-10)
        XCTAssertThrowsError(try TrainingSetup.loss(config: config(["--loss_type=Focal", "--label_smoothing_eps=0.1"])))
        XCTAssertThrowsError(try TrainingSetup.loss(config: config(["--label_smoothing_eps=1.5"])))
        guard case .mixture(let parts) = try TrainingSetup.loss(
            config: config(["--loss_type=Mixture", "--mixture_loss_components=0.6:SoftDice:1,1.4:Focal:0"])) else {
            return XCTFail("Mixture expected")
        }
        XCTAssertEqual(parts.map(\.weight), [0.6, 1.4])
    }
}

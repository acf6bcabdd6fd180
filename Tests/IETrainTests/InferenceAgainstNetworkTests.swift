import Foundation
import IECore
import XCTest
import IENet
@testable import IETrain

/// Sliding-window inference with a real UNet3D against one forward pass of the whole padded volume.
final class InferenceAgainstNetworkTests: XCTestCase {
    /// Edge padding written out independently: `before` = ceil(diff / 2) voxels in front, as InnerEye's pad_images.
    func edgePadded(_ image: [Float], shape: Shape3D, to target: Shape3D) -> (data: [Float], before: Shape3D) {
        let before = Shape3D((target.z - shape.z + 1) / 2, (target.y - shape.y + 1) / 2, (target.x - shape.x + 1) / 2)
        var out = [Float](repeating: 0, count: target.count)
        for z in 0..<target.z {
            let sz = min(max(z - before.z, 0), shape.z - 1)
            for y in 0..<target.y {
                let sy = min(max(y - before.y, 0), shape.y - 1)
                for x in 0..<target.x {
                    let sx = min(max(x - before.x, 0), shape.x - 1)
                    out[target.index(z, y, x)] = image[shape.index(sz, sy, sx)]
                }
            }
        }
        return (out, before)
    }

    func testVolumeNotAMultipleOfThePatchMatchesOneForwardPassOfThePaddedVolume() throws {
        let shape = Shape3D(20, 37, 29)
        let patch = Shape3D(32, 48, 32)
        var rng = SeededGenerator(seed: 7)
        let image = (0..<shape.count).map { _ in Float.random(in: -1...1, using: &rng) }
        let model = UNet3D(imageChannels: 1, classes: 3, featureChannels: 2, seed: 3)

        var settings = InferenceSettings(patch: patch)
        settings.batchSize = 2
        let segmenter = try Segmenter(models: [model], settings: settings)
        let stitched = try segmenter.posteriors(model: model, image: image, channels: 1, shape: shape)

        let (padded, before) = edgePadded(image, shape: shape, to: patch)
        let whole = softmaxChannels(model.forward(Tensor(shape: [1, 1, patch.z, patch.y, patch.x], data: padded), training: false))
        var maxError: Float = 0
        for c in 0..<3 {
            for z in 0..<shape.z {
                for y in 0..<shape.y {
                    for x in 0..<shape.x {
                        let expected = whole.data[c * patch.count + patch.index(z + before.z, y + before.y, x + before.x)]
                        let got = stitched[c * shape.count + shape.index(z, y, x)]
                        maxError = max(maxError, abs(expected - got))
                    }
                }
            }
        }
        XCTAssertLessThan(maxError, 1e-5)

        // And the labels after post-processing are the argmax of those posteriors (no mask, no smoothing).
        let result = try segmenter.segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (3, 1, 1))
        for v in stride(from: 0, to: shape.count, by: 97) {
            let p = (0..<3).map { stitched[$0 * shape.count + v] }
            XCTAssertEqual(Int(result.labels[v]), p.firstIndex(of: p.max()!)!)
        }
    }

    func testEnsembleOfTwoIdenticalModelsEqualsOneModel() throws {
        let shape = Shape3D(16, 20, 18)
        var rng = SeededGenerator(seed: 11)
        let image = (0..<shape.count).map { _ in Float.random(in: -1...1, using: &rng) }
        let a = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 5)
        let b = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 5)
        let c = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 6)
        let settings = InferenceSettings(patch: Shape3D(16, 32, 32))
        let single = try Segmenter(models: [a], settings: settings).segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (1, 1, 1))
        let pair = try Segmenter(models: [a, b], settings: settings).segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (1, 1, 1))
        XCTAssertEqual(single.labels, pair.labels)
        for i in stride(from: 0, to: single.posteriors.count, by: 13) {
            XCTAssertEqual(single.posteriors[i], pair.posteriors[i], accuracy: 1e-6)
        }
        // A different member changes the mean: it is the average of the two members' posteriors.
        let other = try Segmenter(models: [c], settings: settings).segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (1, 1, 1))
        let mixed = try Segmenter(models: [a, c], settings: settings).segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (1, 1, 1))
        for i in stride(from: 0, to: single.posteriors.count, by: 13) {
            XCTAssertEqual(mixed.posteriors[i], (single.posteriors[i] + other.posteriors[i]) / 2, accuracy: 1e-5)
        }
    }
}

/// NaN posteriors (an image normalised with a zero window, a damaged checkpoint) would become an all-background
/// label map and zero uint8 posteriors, a plausible empty segmentation: inference refuses them instead.
final class NonFinitePosteriorTests: XCTestCase {
    func testNaNPosteriorsAreAnErrorNotAnEmptySegmentation() throws {
        let shape = Shape3D(8, 8, 8)
        let model = UNet3D(imageChannels: 1, classes: 2, featureChannels: 2, seed: 3, downsamplingPaths: 2)
        let segmenter = try Segmenter(models: [model], settings: InferenceSettings(patch: shape))
        var image = [Float](repeating: 0.5, count: shape.count)
        XCTAssertNoThrow(try segmenter.segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (1, 1, 1)))
        image[100] = .nan
        XCTAssertThrowsError(try segmenter.segment(image: image, channels: 1, shape: shape, mask: nil, spacing: (1, 1, 1))) { error in
            XCTAssertTrue("\(error)".contains("the model's posteriors are not finite"), "\(error)")
        }
    }
}

import XCTest
import IECore
@testable import IETrain

/// An image whose every voxel is distinct: 1000 c + 100 z + 10 y + x (plus a fraction so no two coincide).
func distinctImage(channels: Int = 2, depth: Int = 1, height: Int, width: Int) -> TransformImage {
    TransformImage.generate(channels: channels, depth: depth, height: height, width: width) { c, z, y, x in
        Float(1000 * c + 100 * z + 10 * y + x) + 0.25
    }
}

/// Builds a pipeline from records and applies it once with the generator of (seed 7, epoch 0, subject).
func runPipeline(_ records: [TransformRecord], on image: TransformImage, subject: String = "s1") throws -> TransformImage {
    try TransformPipeline(records: records, label: "train_transforms").apply(image, seed: 7, epoch: 0, subject: subject)
}

final class TransformsGeometryTests: XCTestCase {
    func testFlipsReverseTheWidthAndHeightAxes() throws {
        for depth in [1, 3] {
            let image = distinctImage(depth: depth, height: 4, width: 5)
            let h = try runPipeline([["name": .text("RandomHorizontalFlip"), "p": .number(1)]], on: image)
            let v = try runPipeline([["name": .text("RandomVerticalFlip"), "p": .number(1)]], on: image)
            for c in 0..<2 { for z in 0..<depth { for y in 0..<4 { for x in 0..<5 {
                XCTAssertEqual(h[c, z, y, x], image[c, z, y, 4 - x])
                XCTAssertEqual(v[c, z, y, x], image[c, z, 3 - y, x])
            } } } }
            // p = 0: never applied.
            XCTAssertEqual(try runPipeline([["name": .text("RandomHorizontalFlip"), "p": .number(0)]], on: image), image)
        }
    }

    /// numpy.rot90(a, k) on the (y, x) plane: k = 1 counter-clockwise, k = -1 clockwise, as displayed.
    func rot90(_ image: TransformImage, k: Int) -> TransformImage {
        let n = image.height
        return TransformImage.generate(channels: image.channels, depth: image.depth, height: n, width: n) { c, z, i, j in
            switch ((k % 4) + 4) % 4 {
            case 1: return image[c, z, j, n - 1 - i]
            case 2: return image[c, z, n - 1 - i, n - 1 - j]
            case 3: return image[c, z, n - 1 - j, i]
            default: return image[c, z, i, j]
            }
        }
    }

    func testQuarterTurnsOfRandomAffineAreExactRotations() throws {
        for n in [4, 5] {
            let image = distinctImage(depth: 2, height: n, width: n)
            for interpolation in ["bilinear", "nearest"] {
                for (degrees, k) in [(90.0, -1), (-90.0, 1), (180.0, 2), (270.0, 1)] {
                    let out = try runPipeline([["name": .text("RandomAffine"), "p": .number(1),
                                                "degrees": .numbers([degrees, degrees]),
                                                "interpolation": .text(interpolation)]], on: image)
                    XCTAssertEqual(out, rot90(image, k: k), "n \(n) \(interpolation) \(degrees) degrees")
                }
            }
        }
    }

    func testAffineTranslationShiftsByWholePixelsAndFills() {
        let image = distinctImage(channels: 1, height: 4, width: 6)
        let affine = RandomAffineTransform(fill: -7)
        let out = affine.apply(image, draw: .init(translateX: 2, translateY: -1))
        for y in 0..<4 { for x in 0..<6 {
            let (sy, sx) = (y + 1, x - 2)
            let expected: Float = sy < 4 && sx >= 0 ? image[0, sy, sx] : -7
            XCTAssertEqual(out[0, y, x], expected)
        } }
    }

    func testAffineScaleTwoSamplesHalfTheOffsetAboutTheCentre() {
        // Output offset u from the centre samples the input at u / 2; on a ramp that halves the slope.
        let ramp = TransformImage.generate(channels: 1, depth: 1, height: 5, width: 5) { _, _, y, x in Float(3 * x + y) }
        let out = RandomAffineTransform().apply(ramp, draw: .init(scale: 2))
        for y in 0..<5 { for x in 0..<5 {
            XCTAssertEqual(Double(out[0, y, x]), 3 * (2 + Double(x - 2) / 2) + (2 + Double(y - 2) / 2), accuracy: 1e-5)
        } }
    }

    func testShearXMovesRowsInProportionToTheirOffset() {
        // torchvision's x-shear by s degrees: input x = x' + tan(s) * y' about the centre (output offsets x', y').
        let ramp = TransformImage.generate(channels: 1, depth: 1, height: 5, width: 9) { _, _, _, x in Float(x) }
        let out = RandomAffineTransform(fill: 0).apply(ramp, draw: .init(shearX: 45))
        for y in 0..<5 { for x in 2..<7 {
            XCTAssertEqual(Double(out[0, y, x]), Double(x) + Double(y - 2), accuracy: 1e-5, "y \(y) x \(x)")
        } }
    }

    func testCenterCropUsesTorchvisionsRoundingAndZeroPadding() throws {
        let image = distinctImage(height: 8, width: 7)
        // top = round((8 - 3) / 2) = round(2.5) = 2, left = round((7 - 4) / 2) = round(1.5) = 2.
        let out = try runPipeline([["name": .text("CenterCrop"), "size": .numbers([3, 4])]], on: image)
        XCTAssertEqual(out.shape, [2, 1, 3, 4])
        for c in 0..<2 { for y in 0..<3 { for x in 0..<4 { XCTAssertEqual(out[c, y, x], image[c, y + 2, x + 2]) } } }
        // A crop larger than the image: (10 - 8) // 2 = 1 row and (10 - 7) // 2 = 1 column of zeros before it.
        let padded = try runPipeline([["name": .text("CenterCrop"), "size": .number(10)]], on: image)
        for y in 0..<10 { for x in 0..<10 {
            let inside = (1...8).contains(y) && (1...7).contains(x)
            XCTAssertEqual(padded[1, y, x], inside ? image[1, y - 1, x - 1] : 0)
        } }
        // 3-D with a depth: (5 - 2) / 2 = 1.5 rounds to 2.
        let volume = distinctImage(channels: 1, depth: 5, height: 4, width: 4)
        let cropped = try runPipeline([["name": .text("CenterCrop"), "size": .numbers([2, 2, 2])]], on: volume)
        XCTAssertEqual(cropped[0, 0, 0, 0], volume[0, 2, 1, 1])
    }

    /// PyTorch's linear interpolation (align_corners=False) of a ramp is the ramp at the clamped source position.
    func testResizeOfALinearRampIsTheRampAtTheSourcePositions() throws {
        let (d, h, w) = (3, 5, 7)
        func ramp(_ z: Double, _ y: Double, _ x: Double) -> Double { 2 + 1.5 * z + 3 * y - 0.5 * x }
        let image = TransformImage.generate(channels: 1, depth: d, height: h, width: w) { _, z, y, x in
            Float(ramp(Double(z), Double(y), Double(x)))
        }
        func source(_ i: Int, _ n: Int, _ m: Int) -> Double { min(max((Double(i) + 0.5) * Double(n) / Double(m) - 0.5, 0), Double(n - 1)) }
        for (size, shape) in [([9, 4], (3, 9, 4)), ([2, 11, 3], (2, 11, 3))] {
            let out = try runPipeline([["name": .text("Resize"), "size": .numbers(size.map(Double.init))]], on: image)
            XCTAssertEqual(out.shape, [1, shape.0, shape.1, shape.2])
            for z in 0..<shape.0 { for y in 0..<shape.1 { for x in 0..<shape.2 {
                let expected = ramp(source(z, d, shape.0), source(y, h, shape.1), source(x, w, shape.2))
                XCTAssertEqual(Double(out[0, z, y, x]), expected, accuracy: 1e-4)
            } } }
        }
        // One number: the smaller edge becomes 10, the other int(10 * 7 / 5) = 14.
        let single = try runPipeline([["name": .text("Resize"), "size": .number(10)]], on: image)
        XCTAssertEqual(single.shape, [1, 3, 10, 14])
    }

    func testRandomResizedCropBoxesFollowTorchvisionsRules() {
        let crop = RandomResizedCropTransform(size: [8, 8], scale: (0.2, 0.6), ratio: (0.5, 2))
        for subject in 0..<50 {
            var rng = TransformPipeline.generator(seed: 3, epoch: 1, subject: "s\(subject)")
            let b = crop.cropBox(height: 30, width: 40, using: &rng)
            XCTAssert(b.top >= 0 && b.left >= 0 && b.top + b.height <= 30 && b.left + b.width <= 40)
            // Rounded sides: the area and the ratio stay within the ranges up to half a pixel per side.
            let area = Double(b.height * b.width) / 1200
            let lowArea = Double((b.height - 1) * (b.width - 1)) / 1200, highArea = Double((b.height + 1) * (b.width + 1)) / 1200
            XCTAssert(highArea >= 0.2 && lowArea <= 0.6, "area \(area)")
            XCTAssert(Double(b.width + 1) / Double(b.height - 1) >= 0.5 && Double(b.width - 1) / Double(b.height + 1) <= 2)
        }
        // An impossible box (area >= 0.9 of a square at width / height = 10) falls back to the central crop of
        // the full width and height round(40 / 10) = 4.
        var rng = Xoshiro256(seed: 1)
        let fallback = RandomResizedCropTransform(size: [4, 4], scale: (0.9, 1), ratio: (10, 10)).cropBox(height: 40, width: 40, using: &rng)
        XCTAssert(fallback == (18, 0, 4, 40))
        // The whole image at ratio 1 is a plain Resize.
        let image = distinctImage(height: 6, width: 6)
        var rng2 = Xoshiro256(seed: 2)
        let whole = RandomResizedCropTransform(size: [4, 3], scale: (1, 1), ratio: (1, 1))
        XCTAssertEqual(try whole.apply(image, using: &rng2), image.resized(depth: 1, height: 4, width: 3))
    }

    func testElasticDeformationOfMagnitudeZeroIsTheIdentityAndOtherwiseKeepsTheCorners() throws {
        for depth in [1, 4] {
            let image = distinctImage(depth: depth, height: 9, width: 11)
            let zero = try runPipeline([["name": .text("ElasticDeformation"), "magnitude": .number(0)]], on: image)
            XCTAssertEqual(zero, image)
            let moved = try runPipeline([["name": .text("ElasticDeformation"), "magnitude": .number(3),
                                          "control_points": .number(4)]], on: image)
            XCTAssertNotEqual(moved, image)
            for (z, y, x) in [(0, 0, 0), (depth - 1, 8, 10), (0, 8, 0), (depth - 1, 0, 10)] {
                XCTAssertEqual(moved[1, z, y, x], image[1, z, y, x], "corner \(z) \(y) \(x)")
            }
        }
    }
}

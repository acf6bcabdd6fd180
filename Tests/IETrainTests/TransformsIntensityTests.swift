import XCTest
import IECore
@testable import IETrain

final class TransformsIntensityTests: XCTestCase {
    func constant(_ values: [Float], height: Int = 3, width: Int = 4) -> TransformImage {
        TransformImage.generate(channels: values.count, depth: 1, height: height, width: width) { c, _, _, _ in values[c] }
    }

    func jitter(_ fields: TransformRecord, _ image: TransformImage) throws -> TransformImage {
        var record = fields
        record["name"] = .text("ColorJitter")
        return try runPipeline([record], on: image)
    }

    func testBrightnessMultipliesAndClipsToTheUnitInterval() throws {
        let image = constant([0.4])
        XCTAssert(try jitter(["brightness": .numbers([1.5, 1.5])], image).values.allSatisfy { abs($0 - 0.6) < 1e-6 })
        XCTAssert(try jitter(["brightness": .numbers([3, 3])], image).values.allSatisfy { $0 == 1 })
        XCTAssert(try jitter(["brightness": .numbers([3, 3]), "clip": .flag(false)], image).values.allSatisfy { abs($0 - 1.2) < 1e-6 })
        XCTAssert(try jitter(["brightness": .numbers([0, 0])], image).values.allSatisfy { $0 == 0 })
    }

    func testContrastBlendsWithTheGreyMean() throws {
        // A constant image is unchanged by any contrast factor.
        XCTAssert(try jitter(["contrast": .numbers([1.7, 1.7])], constant([0.3])).values.allSatisfy { abs($0 - 0.3) < 1e-6 })
        // Half 0.2, half 0.6: mean 0.4; factor 2 gives 0 and 0.8, factor 0.5 gives 0.3 and 0.5.
        let halves = TransformImage.generate(channels: 1, depth: 2, height: 2, width: 3) { _, z, _, _ in z == 0 ? 0.2 : 0.6 }
        for (factor, low, high) in [(2.0, 0.0, 0.8), (0.5, 0.3, 0.5)] {
            let out = try jitter(["contrast": .numbers([factor, factor])], halves)
            for (i, v) in out.values.enumerated() { XCTAssertEqual(Double(v), i < 6 ? low : high, accuracy: 1e-6) }
        }
        // RGB: factor 0 gives every value the grey mean 0.2989 r + 0.587 g + 0.114 b.
        let grey = 0.2989 * 0.1 + 0.587 * 0.5 + 0.114 * 0.9
        XCTAssert(try jitter(["contrast": .numbers([0, 0])], constant([0.1, 0.5, 0.9])).values.allSatisfy {
            abs(Double($0) - grey) < 1e-6
        })
        XCTAssertThrowsError(try jitter(["contrast": .number(0.5)], constant([0.1, 0.5])))
    }

    func testJitterFactorsAreDrawnAroundOne() throws {
        // brightness 0.5 draws f in [0.5, 1.5]; on 0.5 the result lies in [0.25, 0.75] and varies between subjects.
        var results = Set<Float>()
        for s in 0..<30 {
            let out = try runPipeline([["name": .text("ColorJitter"), "brightness": .number(0.5)]], on: constant([0.5]), subject: "s\(s)")
            XCTAssert(out.values[0] >= 0.25 && out.values[0] <= 0.75)
            results.insert(out.values[0])
        }
        XCTAssertGreaterThan(results.count, 20)
    }

    func testGammaOfKnownValues() throws {
        let image = try TransformImage(channels: 1, height: 1, width: 5, values: [0, 0.25, 1, 4, -4])
        let half = log(0.5)
        let out = try runPipeline([["name": .text("RandomGamma"), "log_gamma": .numbers([half, half])]], on: image)
        for (v, e) in zip(out.values, [0, 0.5, 1, 2, -2] as [Float]) { XCTAssertEqual(v, e, accuracy: 1e-6) }
        let two = log(2.0)
        let squared = try runPipeline([["name": .text("RandomGamma"), "log_gamma": .numbers([two, two])]], on: image)
        for (v, e) in zip(squared.values, [0, 0.0625, 1, 16, -16] as [Float]) { XCTAssertEqual(v, e, accuracy: 1e-5) }
    }

    func testGaussianNoiseHasTheRequestedMeanAndStandardDeviation() throws {
        let image = TransformImage(channels: 1, height: 100, width: 100, repeating: 1)
        let out = try runPipeline([["name": .text("GaussianNoise"), "std": .number(0.5), "mean": .number(0.2)]], on: image)
        let noise = out.values.map { Double($0) - 1 }
        let mean = noise.reduce(0, +) / Double(noise.count)
        let sd = (noise.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(noise.count - 1)).squareRoot()
        XCTAssertEqual(mean, 0.2, accuracy: 0.02)   // 4 standard errors (0.005)
        XCTAssertEqual(sd, 0.5, accuracy: 0.015)
    }

    func testRandomErasingErasesExactlyOneRectangleWithinTheBounds() throws {
        let (h, w) = (20, 30)
        var erased = 0
        for s in 0..<40 {
            let image = TransformImage(channels: 2, depth: 2, height: h, width: w, repeating: 1)
            let out = try runPipeline([["name": .text("RandomErasing"), "p": .number(1), "scale": .numbers([0.05, 0.2]),
                                        "value": .number(-3)]], on: image, subject: "s\(s)")
            let zeros = (0..<h).flatMap { y in (0..<w).compactMap { x in out[0, 0, y, x] == -3 ? (y, x) : nil } }
            XCTAssert(out.values.allSatisfy { $0 == 1 || $0 == -3 })
            guard !zeros.isEmpty else { continue }
            erased += 1
            let ys = zeros.map { $0.0 }, xs = zeros.map { $0.1 }
            let (top, bottom, left, right) = (ys.min()!, ys.max()!, xs.min()!, xs.max()!)
            // One filled rectangle, strictly smaller than the image, the same on every channel and slice.
            XCTAssertEqual(zeros.count, (bottom - top + 1) * (right - left + 1))
            XCTAssert(bottom - top + 1 < h && right - left + 1 < w)
            let area = Double(zeros.count) / Double(h * w)
            XCTAssert(area > 0.02 && area < 0.3, "area fraction \(area)")
            XCTAssertEqual(out.values.filter { $0 == -3 }.count, 4 * zeros.count)
        }
        XCTAssertGreaterThan(erased, 35)
        // "random" fills the rectangle with normal values.
        let image = TransformImage(channels: 1, height: h, width: w, repeating: 100)
        let random = try runPipeline([["name": .text("RandomErasing"), "p": .number(1), "value": .text("random")]], on: image)
        XCTAssert(random.values.contains { $0 != 100 })
        XCTAssert(random.values.allSatisfy { $0 == 100 || abs($0) < 10 })
    }

    func testExpandChannelsRepeatsAGreyImage() throws {
        let grey = distinctImage(channels: 1, depth: 2, height: 3, width: 4)
        let rgb = try runPipeline([["name": .text("ExpandChannels"), "channels": .number(3)]], on: grey)
        XCTAssertEqual(rgb.shape, [3, 2, 3, 4])
        for c in 0..<3 { XCTAssertEqual(rgb.channel(c), grey.values) }
        XCTAssertThrowsError(try runPipeline([["name": .text("ExpandChannels")]], on: rgb))
    }
}

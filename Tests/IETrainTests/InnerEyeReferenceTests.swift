import Foundation
import IECore
import XCTest
import IEImage
@testable import IETrain

/// Checks against outputs InnerEye itself produced (fixtures cut from its test data, see Fixtures/README.md).
final class InnerEyeReferenceTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

    func testPosteriorSmoothingMatchesInnerEyesExpectedFile() throws {
        let input = try NIfTI.read(Self.fixtures + "/posterior_bladder_crop.nii.gz")
        let expected = try NIfTI.read(Self.fixtures + "/smoothed_posterior_bladder_crop.nii.gz")
        let shape = Shape3D(input.shape.z, input.shape.y, input.shape.x)
        XCTAssertEqual(shape, Shape3D(16, 24, 24))
        XCTAssertEqual(input.spacing.z, 3.006135, accuracy: 1e-5)
        // Two classes: background = 1 - p, foreground p (InnerEye smooths each class map).
        let p = input.data.map { $0 / 255 }
        var posteriors = p.map { 1 - $0 } + p
        PostProcessing.smooth(&posteriors, classCount: 2, shape: shape, sigmaMM: (2, 2, 2),
                              spacing: (input.spacing.z, input.spacing.y, input.spacing.x))
        let n = shape.count
        let ours = PostProcessing.toUInt8(posteriors[n..<(2 * n)])
        var compared = 0, mismatches = 0, nonZero = 0
        for z in 3..<(shape.z - 3) { for y in 4..<(shape.y - 4) { for x in 4..<(shape.x - 4) {
            let i = shape.index(z, y, x)
            compared += 1
            if expected.data[i] > 0 { nonZero += 1 }
            if Float(ours[i]) != expected.data[i] { mismatches += 1 }
        } } }
        XCTAssertEqual(mismatches, 0, "of \(compared) interior voxels")
        XCTAssertGreaterThan(nonZero, compared / 2, "the box holds real posterior values")
    }
}

import IEImage
import XCTest
import IECore

final class GeometryCheckTests: XCTestCase {
    func volume(shape: Shape3D = Shape3D(2, 3, 4), spacing: (z: Double, y: Double, x: Double) = (3, 1, 1),
                origin: (z: Double, y: Double, x: Double) = (-100, 0, 250)) -> Volume<UInt8> {
        Volume(shape: shape, spacing: spacing, origin: origin, data: [UInt8](repeating: 0, count: shape.z * shape.y * shape.x))
    }

    func testGridMismatchUsesRelativeToleranceWithAFloorOfOne() {
        let reference = volume()
        XCTAssertNil(reference.gridMismatch(with: volume()))
        // 250 mm * 1e-3 = 0.25 mm allowed on x; 0.2 mm passes, 0.3 mm does not.
        XCTAssertNil(reference.gridMismatch(with: volume(origin: (-100, 0, 250.2))))
        XCTAssertNotNil(reference.gridMismatch(with: volume(origin: (-100, 0, 250.3))))
        // Near 0 mm the floor of 1 allows 1e-3 mm, not 0.
        XCTAssertNil(reference.gridMismatch(with: volume(origin: (-100, 0.0009, 250))))
        XCTAssertTrue(reference.gridMismatch(with: volume(origin: (-100, 0.002, 250)))?.hasPrefix("origin") ?? false)
        XCTAssertTrue(reference.gridMismatch(with: volume(spacing: (3.004, 1, 1)))?.hasPrefix("spacing") ?? false)
        XCTAssertNil(reference.gridMismatch(with: volume(spacing: (3.002, 1, 1))))
        XCTAssertEqual(reference.gridMismatch(with: volume(shape: Shape3D(2, 3, 5))), "shape (Z,Y,X) 2,3,4 differs from 2,3,5")
    }

    /// The same origin with the x axis reversed (a LAS copy of a RAS image) is another grid; float noise in the
    /// cosines is not.
    func testGridMismatchComparesDirection() {
        let reference = volume()
        var flipped = volume()
        flipped.direction = [-1, 0, 0, 0, 1, 0, 0, 0, 1]
        XCTAssertTrue(reference.gridMismatch(with: flipped)?.hasPrefix("direction") ?? false)
        var noisy = volume()
        noisy.direction = [0.9999999, 0.0004, 0, -0.0004, 0.9999999, 0, 0, 0, 1]
        XCTAssertNil(reference.gridMismatch(with: noisy))
    }
}

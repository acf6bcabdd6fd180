import XCTest

final class IEImageTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}

import XCTest

final class IENetTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}

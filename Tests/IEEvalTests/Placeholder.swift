import XCTest

final class IEEvalTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}

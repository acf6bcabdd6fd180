import XCTest

final class IEConfigTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}

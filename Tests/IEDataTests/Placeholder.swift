import XCTest

final class IEDataTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}

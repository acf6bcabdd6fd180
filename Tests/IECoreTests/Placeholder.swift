import XCTest

final class IECoreTestsPlaceholder: XCTestCase {
    func testBuilds() { XCTAssertTrue(true) }
}

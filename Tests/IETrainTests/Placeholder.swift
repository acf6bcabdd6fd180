import XCTest
final class IETrainPlaceholder: XCTestCase { func testBuilds() { XCTAssertTrue(true) } }

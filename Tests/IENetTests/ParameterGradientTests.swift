import XCTest
@testable import IENet

/// A parameter's gradient is allocated on its first write (inference never holds one); before that it reads as
/// zeros of the value's size, as an allocated zero gradient would.
final class ParameterGradientTests: XCTestCase {
    func testGradientReadsZeroUntilWrittenAndAccumulatesAfter() {
        let p = Parameter(name: "w", shape: [2, 3], value: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(p.grad, [Float](repeating: 0, count: 6))
        p.grad[4] += 2.5
        p.grad[4] += 1
        XCTAssertEqual(p.grad, [0, 0, 0, 0, 3.5, 0])
        p.zeroGrad()
        XCTAssertEqual(p.grad, [Float](repeating: 0, count: 6))
        let q = Parameter(name: "b", shape: [3], value: [1, 1, 1])
        q.withPointers { _, g in g[1] = 7 }   // a backward pass writes through the pointer
        XCTAssertEqual(q.grad, [0, 7, 0])
        q.grad = [1, 2, 3]
        XCTAssertEqual(q.grad, [1, 2, 3])
    }
}

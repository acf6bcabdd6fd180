import Foundation
import XCTest
import IETestSupport

/// Runs a Python script (numpy/scipy) that reads JSON from stdin and prints JSON, to get reference values
/// computed independently of the Swift code.
func pythonReference(_ script: String, input: Any) throws -> Any {
    try PythonOracle.json(script, input: JSONSerialization.data(withJSONObject: input))
}

func doubles(_ any: Any?) -> [Double] { (any as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
func ints(_ any: Any?) -> [Int] { (any as? [Any] ?? []).map { ($0 as? NSNumber)?.intValue ?? -1 } }

func assertClose(_ a: [Float], _ b: [Double], tolerance: Double, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "count " + message, file: file, line: line)
    var worst = 0.0, at = -1
    for i in 0..<min(a.count, b.count) {
        let d = abs(Double(a[i]) - b[i])
        if !(d <= worst) { worst = d; at = i }
    }
    XCTAssertLessThanOrEqual(worst, tolerance, "max difference at \(at) " + message, file: file, line: line)
}

/// Deterministic test data.
func testValues(_ count: Int, seed: UInt64, range: ClosedRange<Double> = 0...1) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let u = Double(state >> 11) * 0x1.0p-53
        return Float(range.lowerBound + u * (range.upperBound - range.lowerBound))
    }
}

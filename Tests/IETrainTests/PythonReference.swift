import Foundation
import XCTest

/// Runs a Python script (numpy/scipy) that reads JSON from stdin and prints JSON, to get reference values
/// computed independently of the Swift code.
func pythonReference(_ script: String, input: Any) throws -> Any {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", script]
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let payload = try JSONSerialization.data(withJSONObject: input)
    // Write from another thread so a large payload cannot deadlock against a full stdout pipe.
    let writer = Thread {
        stdin.fileHandleForWriting.write(payload)
        try? stdin.fileHandleForWriting.close()
    }
    writer.start()
    let out = stdout.fileHandleForReading.readDataToEndOfFile()
    let err = stderr.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw NSError(domain: "python", code: Int(process.terminationStatus),
                      userInfo: [NSLocalizedDescriptionKey: String(decoding: err, as: UTF8.self)])
    }
    return try JSONSerialization.jsonObject(with: out)
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

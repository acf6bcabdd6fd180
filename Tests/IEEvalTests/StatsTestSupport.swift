import Foundation
import XCTest

/// Fixtures of the statistics tests, found next to this file (no bundle resources needed).
enum StatsFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Stats").path

    static func path(_ name: String) -> String { folder + "/" + name }

    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: path(name), encoding: .utf8)
    }
}

/// Runs python3 with scipy/numpy to compute independent reference values. Skips the test when python3 or
/// scipy is not installed (the test setup installs them from tests/requirements.txt).
func pythonReference(_ code: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", "-c", code]
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    do { try process.run() } catch { throw XCTSkip("python3 not available: \(error)") }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errorText = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    if process.terminationStatus != 0 {
        if errorText.contains("ModuleNotFoundError") { throw XCTSkip("python module missing: \(errorText)") }
        XCTFail("python3 failed: \(errorText)", file: file, line: line)
    }
    return String(decoding: data, as: UTF8.self)
}

/// Parses whitespace-separated numbers printed by python.
func numbers(_ text: String) -> [Double] {
    text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }).map { Double($0) ?? .nan }
}

func pythonList(_ values: [Double]) -> String {
    "[" + values.map { $0.isNaN ? "float('nan')" : String($0) }.joined(separator: ",") + "]"
}

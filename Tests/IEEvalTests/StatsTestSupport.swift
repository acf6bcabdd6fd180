import Foundation
import XCTest
import IETestSupport

/// Fixtures of the statistics tests, found next to this file (no bundle resources needed).
enum StatsFixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/Stats").path

    static func path(_ name: String) -> String { folder + "/" + name }

    static func text(_ name: String) throws -> String {
        try String(contentsOfFile: path(name), encoding: .utf8)
    }
}

/// Runs python3 with scipy/numpy to compute independent reference values (installed by the test setup).
func pythonReference(_ code: String) throws -> String { try PythonOracle.run(code) }

/// Parses whitespace-separated numbers printed by python.
func numbers(_ text: String) -> [Double] {
    text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," }).map { Double($0) ?? .nan }
}

func pythonList(_ values: [Double]) -> String {
    "[" + values.map { $0.isNaN ? "float('nan')" : String($0) }.joined(separator: ",") + "]"
}

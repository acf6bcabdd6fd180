import Foundation
import XCTest
import IECore
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

/// A test case with its own scratch folder `root` (made before each test, removed after) and a text writer.
class ScratchFolderTestCase: XCTestCase {
    var root: String = ""

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("ie-eval-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func write(_ text: String, _ path: String) throws {
        try AtomicFile.write(Data(text.utf8), to: path)
    }
}

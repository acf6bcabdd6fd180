import Foundation
import XCTest
import IECore
import IETestSupport

/// Runs `python3 -c script` and returns stdout; used only for independent reference values.
func runPython(_ script: String) throws -> String { try PythonOracle.run(script) }

/// Parses python's JSON output.
func pythonJSON(_ script: String) throws -> Any {
    try JSONSerialization.jsonObject(with: Data(runPython(script).utf8))
}

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path

final class Scratch {
    let root: String
    init() throws {
        root = NSTemporaryDirectory() + "iedata-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: root) }
    func write(_ relative: String, _ text: String) throws -> String {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

func assertIEError(_ code: ExitCode, contains fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                   _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch let e as IEError {
        XCTAssertEqual(e.code, code, "wrong exit code for: \(e.description)", file: file, line: line)
        for f in fragments {
            XCTAssertTrue(e.description.contains(f), "'\(e.description)' lacks '\(f)'", file: file, line: line)
        }
        XCTAssertFalse(e.description.contains("\n"), "error must be one line: \(e.description)", file: file, line: line)
    } catch {
        XCTFail("unexpected error type \(error)", file: file, line: line)
    }
}

/// A dataset.csv text with `n` subjects named s<i> (or custom ids), one ct row each.
func datasetText(subjects: [String], institutions: [String]? = nil) -> String {
    var text = institutions == nil ? "subject,filePath,channel\n" : "subject,filePath,channel,institutionId\n"
    for (i, s) in subjects.enumerated() {
        text += "\(s),\(s)/ct.nii.gz,ct" + (institutions.map { ",\($0[i])" } ?? "") + "\n"
        text += "\(s),\(s)/mask.nii.gz,mask" + (institutions.map { ",\($0[i])" } ?? "") + "\n"
    }
    return text
}

import Foundation
import XCTest
import IECore
@testable import IEConfig

/// A scratch folder with a settings.yml and model configs.
final class ConfigScratch {
    let root: String

    init() throws {
        root = NSTemporaryDirectory() + "ieconfig-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root + "/configs/segmentation", withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: root) }

    func write(_ relative: String, _ text: String) throws {
        let path = root + "/" + relative
        try FileManager.default.createDirectory(atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func model(_ name: String, _ text: String) throws { try write("configs/segmentation/\(name).yml", text) }

    var settings: Settings {
        var s = Settings.defaults(relativeTo: root)
        s.modelConfigsDirs = [root + "/configs"]
        return s
    }
}

/// Asserts that `body` throws an IEError with `code` whose one-line text contains every fragment.
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

let minimalRunnable = """
    dataset_id: Demo
    image_channels: [ct]
    ground_truth_ids: [liver, kidney]
    feature_channels: [8]
    crop_size: [16, 32, 32]

    """

/// minimalRunnable with `extra` appended; keys of `extra` replace minimalRunnable's lines (keeping `extra` on line 6).
func runnable(with extra: String) -> String {
    let keys = Set(extra.split(separator: "\n").compactMap { $0.split(separator: ":").first.map(String.init) })
    var lines = minimalRunnable.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
    for (i, l) in lines.enumerated() where keys.contains(String(l.split(separator: ":").first ?? "")) {
        lines[i] = "# replaced"
    }
    return lines.joined(separator: "\n") + extra
}

import Foundation
import XCTest
import IETestSupport

/// Runs an independent reference computation in python3 (numpy + nibabel; see tests/requirements.txt) and
/// returns what the script printed on stdout, parsed as JSON.
enum PythonReference {
    static func run(_ script: String, arguments: [String] = []) throws -> Any {
        try PythonOracle.json(script, arguments: arguments)
    }
}

enum TestFiles {
    static func temporaryDirectory(_ name: String = #function) throws -> String {
        let base = NSTemporaryDirectory() + "ie-image-tests-\(getpid())-\(name.filter { $0.isLetter || $0.isNumber })-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        return base
    }

    static func fixture(_ name: String, file: String = #filePath) -> String {
        URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("Fixtures/\(name)").path
    }
}

extension Dictionary where Key == String, Value == Any {
    func doubles(_ key: String) -> [Double] { (self[key] as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
    func matrix(_ key: String) -> [[Double]] {
        (self[key] as? [[Any]] ?? []).map { $0.map { ($0 as? NSNumber)?.doubleValue ?? .nan } }
    }
    func ints(_ key: String) -> [Int] { (self[key] as? [Any] ?? []).map { ($0 as? NSNumber)?.intValue ?? -1 } }
    func double(_ key: String) -> Double { (self[key] as? NSNumber)?.doubleValue ?? .nan }
    func string(_ key: String) -> String { self[key] as? String ?? "" }
}

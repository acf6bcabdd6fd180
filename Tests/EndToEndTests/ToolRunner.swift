import Foundation
import XCTest
import IETestSupport

/// Runs the built ie-* executables (release build from `make test`: $IE_BIN, else .build/release, else
/// .build/debug) inside a scratch folder with its own settings.yml, so tests never touch the checkout's runs/.
struct ToolRunner {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static var binaryFolder: String {
        if let bin = ProcessInfo.processInfo.environment["IE_BIN"], !bin.isEmpty { return bin }
        for candidate in [".build/release", ".build/debug"] where FileManager.default.fileExists(atPath: repoRoot + "/" + candidate + "/ie-train") {
            return repoRoot + "/" + candidate
        }
        return repoRoot + "/.build/debug"
    }

    let folder: String

    init(name: String) throws {
        folder = NSTemporaryDirectory() + "ie-e2e-\(name)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let settings = """
        model_configs_dirs: [\(ToolRunner.repoRoot)/configs]
        runs_dir: runs
        datasets_dir: datasets
        models_dir: models
        """
        try settings.write(toFile: folder + "/settings.yml", atomically: true, encoding: .utf8)
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `ie-<tool>` with arguments in the scratch folder and waits.
    @discardableResult
    func run(_ tool: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Result {
        try collect(try start(tool, arguments, environment: extra))
    }

    /// Runs a bash command line in the scratch folder (redirections, pipes, umask: the tools as a script calls them,
    /// `$IE` being the folder of the tools under test) and waits.
    @discardableResult
    func shell(_ command: String, environment extra: [String: String] = [:]) throws -> Result {
        try collect(try launch("/bin/bash", ["-c", command], environment: extra.merging(["IE": ToolRunner.binaryFolder]) { a, _ in a }))
    }

    /// Waits for a process started by `start` or `shell`, reading both its pipes.
    private func collect(_ process: Process) throws -> Result {
        let out = process.standardOutput as! Pipe
        let err = process.standardError as! Pipe
        // Read before waiting so a chatty tool cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let outBox = Box()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let outData = outBox.data
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    func start(_ tool: String, _ arguments: [String], environment extra: [String: String] = [:]) throws -> Process {
        try launch(ToolRunner.binaryFolder + "/ie-" + tool, arguments, environment: extra)
    }

    private func launch(_ executable: String, _ arguments: [String], environment extra: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        var env = ProcessInfo.processInfo.environment
        env["IE_SETTINGS"] = folder + "/settings.yml"
        // Scratch files of the tools (gnuplot's folders, which a test that kills a tool with SIGKILL leaves behind)
        // stay inside the test's folder, removed with it.
        env["TMPDIR"] = folder
        for (k, v) in extra { env[k] = v }
        process.environment = env
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    /// Runs python3 (the test oracles live there) and returns stdout.
    static func python(_ script: String) throws -> String { try PythonOracle.run(script) }

    func path(_ relative: String) -> String { folder + "/" + relative }

    func exists(_ relative: String) -> Bool { FileManager.default.fileExists(atPath: path(relative)) }

    func remove() { try? FileManager.default.removeItem(atPath: folder) }
}

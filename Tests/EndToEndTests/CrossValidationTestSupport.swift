import Foundation
import XCTest
import IETestSupport

/// Shared helpers of the cross-validation and Slurm end-to-end tests: the built tools, a scratch project
/// folder (settings.yml + a tiny ie-synth dataset), subprocesses and python3 reference computations.
enum HPCTest {
    /// The toolbox checkout (this file is Tests/EndToEndTests/CrossValidationTestSupport.swift).
    static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// The folder of the built ie-* tools (ToolRunner's rule); the tools must have been built.
    static func binFolder() throws -> String {
        let folder = ToolRunner.binaryFolder
        guard FileManager.default.isExecutableFile(atPath: folder + "/ie-train") else {
            throw IEStringError("no built ie-train in \(folder), expected `swift build -c release` first (make test does it)")
        }
        return folder
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs a program (absolute path, or found on PATH through /usr/bin/env) and collects its output.
    @discardableResult
    static func run(_ program: String, _ arguments: [String], in directory: String? = nil,
                    environment: [String: String]? = nil) throws -> Result {
        let process = Process()
        if program.hasPrefix("/") {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [program] + arguments
        }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        if let environment {
            process.environment = environment
        } else if let directory {
            // The tools' scratch files (gnuplot's folder, left behind by a test that kills a tool with SIGKILL) stay
            // in the test's project folder, removed with it.
            process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": directory]) { _, new in new }
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("hpc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        // Files, not pipes: a tool with a lot of progress output can never block on a full pipe.
        let outURL = scratch.appendingPathComponent("out"), errURL = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    }

    /// What a make fold rule and a Slurm job run for one run: ie-train, then `ie-evaluate --mark_completed`
    /// (REDESIGN's agreed interface); the first failure's result, else ie-evaluate's.
    @discardableResult
    static func trainAndEvaluate(run folder: String, settings: String, project: String, extra: [String] = []) throws -> Result {
        let bin = try binFolder()
        let trained = try run(bin + "/ie-train", [settings, "--run=\(folder)"] + extra, in: project)
        guard trained.status == 0 else { return trained }
        let evaluateOptions = extra.filter { $0.hasPrefix("--threads") || $0 == "--quiet" }
        return try run(bin + "/ie-evaluate", [settings, "--run=\(folder)", "--mark_completed"] + evaluateOptions, in: project)
    }

    /// A scratch project: settings.yml (runs/, datasets/, models/ inside it, the checkout's configs, Slurm
    /// partition debug with small requests) and the HelloWorld synthetic dataset with `subjects` subjects.
    static func makeProject(subjects: Int = 8, name: String = #function) throws -> String {
        let bin = try binFolder()
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("ie-hpc-\(name.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let settings = """
        model_configs_dirs: [\(checkout)/configs]
        runs_dir: runs
        datasets_dir: datasets
        models_dir: models
        slurm: {partition: debug, account: null, time: "00:20:00", cpus_per_task: 1, mem: 1G, extra: []}

        """
        try settings.write(toFile: folder + "/settings.yml", atomically: true, encoding: .utf8)
        let synth = try run(bin + "/ie-synth", ["--output_folder=\(folder)/datasets/HelloWorld", "--subjects=\(subjects)",
                                                "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        return folder
    }

    /// Tiny HelloWorld settings for tests (2 epochs, small crops).
    static let tinyModelArguments = ["--num_epochs=2", "--crop_size=16,32,32", "--test_crop_size=16,48,48"]

    /// `ie-split` of a new run; returns the run folder.
    static func split(project: String, arguments: [String]) throws -> String {
        let bin = try binFolder()
        let result = try run(bin + "/ie-split", ["--settings=\(project)/settings.yml", "--model=HelloWorld",
                                                 "--experiment=hpc"] + arguments, in: project)
        guard result.status == 0 else { throw IEStringError("ie-split failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Unique subjects of a split CSV in first-appearance order.
    static func subjects(csv path: String) throws -> [String] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var lines = text.split(separator: "\n").map(String.init)
        guard !lines.isEmpty else { return [] }
        let header = lines.removeFirst().split(separator: ",").map(String.init)
        guard let column = header.firstIndex(of: "subject") else { throw IEStringError("no subject column in \(path)") }
        var seen = Set<String>(), order: [String] = []
        for line in lines {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if fields.count > column, seen.insert(fields[column]).inserted { order.append(fields[column]) }
        }
        return order
    }

    /// Runs a python3 reference script and returns stdout (the test setup installs the modules).
    static func python(_ script: String) throws -> String { try PythonOracle.run(script) }

    static func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw IEStringError("not a JSON object: \(path)")
        }
        return object
    }

    /// A checkpoint's tensor bytes (everything after the safetensors JSON header) and its header.
    static func checkpointTensors(_ path: String) throws -> (header: [String: Any], tensors: Data) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count >= 8 else { throw IEStringError("short checkpoint \(path)") }
        var length: UInt64 = 0
        for i in 0..<8 { length |= UInt64(data[i]) << (8 * UInt64(i)) }
        let headerEnd = 8 + Int(length)
        guard let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] else {
            throw IEStringError("bad safetensors header in \(path)")
        }
        return (header, data.subdata(in: headerEnd..<data.count))
    }

    /// A refused submission changes nothing but the run's run.json (and its folds' if any), which it marks failed
    /// with the reason: no job will ever run them, so they must not stay queued.
    static func assertOnlyMarkedFailed(parent: String, project: String, before: [String: String], after: [String: String],
                                       reason: String, file: StaticString = #filePath, line: UInt = #line) {
        let folder = parent.hasPrefix(project + "/") ? String(parent.dropFirst(project.count + 1)) : parent
        var unchanged = after
        // run.json itself, the folder's time (run.json is replaced by a rename) and the two lock files (the
        // run's writer lock and run.json's update lock, both empty or a holder's line, created on first use).
        for changed in [folder + "/run.json", folder] { unchanged[changed] = before[changed] }
        for lock in [folder + "/.run.json.lock", folder + "/.lock"] where before[lock] == nil { unchanged[lock] = nil }
        XCTAssertEqual(unchanged, before, "nothing but run.json written or changed", file: file, line: line)
        let info = try? json(parent + "/run.json")
        XCTAssertEqual(info?["status"] as? String, "failed", file: file, line: line)
        let error = info?["error"] as? String ?? ""
        XCTAssertTrue(error.hasPrefix("ie-submit: ") && error.contains(reason), error, file: file, line: line)
    }

    /// Every regular file under `folder` with its size and modification time (to prove nothing was written).
    static func snapshot(_ folder: String) -> [String: String] {
        var result: [String: String] = [:]
        guard let walker = FileManager.default.enumerator(atPath: folder) else { return result }
        while let relative = walker.nextObject() as? String {
            let attributes = try? FileManager.default.attributesOfItem(atPath: folder + "/" + relative)
            let size = (attributes?[.size] as? NSNumber)?.intValue ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            result[relative] = "\(size)@\(modified)"
        }
        return result
    }
}

struct IEStringError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

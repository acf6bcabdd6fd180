import Foundation
import XCTest
import IEConfig
import IENet
import IEPipeline
import IERun
import IETestSupport

/// Issue 12 item 1: one evaluation pipeline. A run trained once is copied, and each copy is evaluated another
/// way: `make evaluate` (ie.mk), `ie-evaluate`, in-process `RunCompletion.evaluate` (as ie-train --evaluate, the
/// Slurm job and the cross-validation ensemble step call it), and the single-purpose tools one after the other
/// (ie-infer, ie-metrics, ie-stats outliers, ie-report: what `make evaluate` ran before). Every copy must end
/// with the same files with the same bytes.
///
/// The only content ignored: report.html's "Generated <time> by ie-report." line (the time the report was
/// written; SPEC §9). The log files under logs/ are named after the tool that ran (ie-evaluate, ie-infer, ...)
/// and hold time stamps: the lists are compared between the two ie-evaluate paths only.
final class EvaluationPathsTests: XCTestCase {
    func testEveryEvaluationPathEndsWithTheSameFiles() throws {
        let trained = try ToolRunner(name: "evalpaths")
        defer { trained.remove() }
        let run = try PipelineTests.trainedRun(trained, subjects: 8, epochs: 1)
        let relativeRun = String(run.dropFirst(trained.folder.count + 1))
        XCTAssertTrue(relativeRun.hasPrefix("runs/"), run)
        let single = ["OMP_NUM_THREADS": "1"]

        // Copies with the same runs/<experiment>/<run_id> path below their own settings.yml.
        var copies: [String: ToolRunner] = [:]
        for name in ["make", "evaluate", "inprocess", "tools"] {
            let copy = try ToolRunner(name: "evalpaths-\(name)")
            try FileManager.default.copyItem(atPath: trained.path("runs"), toPath: copy.path("runs"))
            copies[name] = copy
        }
        defer { copies.values.forEach { $0.remove() } }
        func runPath(_ name: String) -> String { copies[name]!.path(relativeRun) }

        // make evaluate (ie.mk).
        let make = try Self.make(["-f", ToolRunner.repoRoot + "/ie.mk", "evaluate", "RUN=\(runPath("make"))",
                                  "IE_BIN=\(ToolRunner.binaryFolder)", "SETTINGS=\(copies["make"]!.path("settings.yml"))"],
                                 in: copies["make"]!.folder, environment: single)
        XCTAssertEqual(make.status, 0, make.output)

        // ie-evaluate.
        let evaluate = try copies["evaluate"]!.run("evaluate", ["--run=\(runPath("evaluate"))"], environment: single)
        XCTAssertEqual(evaluate.status, 0, evaluate.stderr)

        // In-process, the function the other entry points call.
        EngineOptions.fromCommandLine(threads: 1)   // what the tools do with --threads=1
        let settings = try Settings.locate(explicitPath: copies["inprocess"]!.path("settings.yml"))
        let directory = try RunDirectory.open(path: runPath("inprocess"))
        try RunCompletion.evaluate(run: directory, config: directory.modelConfig(settings: settings), settings: settings)

        // The single-purpose tools, as make evaluate chained them before.
        let tools = copies["tools"]!
        for mode in ["Val", "Test"] {
            for (tool, args) in [("infer", ["--mode=\(mode)"]), ("metrics", ["run", "--mode=\(mode)"])] {
                let result = try tools.run(tool, args + ["--run=\(runPath("tools"))"], environment: single)
                XCTAssertEqual(result.status, 0, result.stderr)
            }
            let folder = runPath("tools") + "/outputs/epoch_001/" + mode
            let outliers = try tools.run("stats", ["outliers", folder + "/metrics.csv", "--mode=\(mode)", "--output-dir=\(folder)"])
            XCTAssertEqual(outliers.status, 0, outliers.stderr)
        }
        let report = try tools.run("report", ["--run=\(runPath("tools"))"])
        XCTAssertEqual(report.status, 0, report.stderr)

        // The files every path must have written (so that equal lists cannot be equally empty).
        let reference = try Self.files(runPath("evaluate") + "/outputs")
        for mode in ["Val", "Test"] {
            for file in ["metrics.csv", "metrics_aggregates.csv", "\(mode)_outliers.txt"] {
                XCTAssertTrue(reference.contains("epoch_001/\(mode)/\(file)"), "ie-evaluate wrote no epoch_001/\(mode)/\(file)")
            }
        }
        XCTAssertTrue(reference.contains("report.html") && reference.contains("report.ipynb"), "no report")
        XCTAssertTrue(reference.contains { $0.hasPrefix("epoch_001/Test/") && $0.hasSuffix("/segmentation.nii.gz") })

        let expectedJSON = try Data(contentsOf: URL(fileURLWithPath: runPath("evaluate") + "/run.json"))
        for name in ["make", "inprocess", "tools"] {
            let files = try Self.files(runPath(name) + "/outputs")
            XCTAssertEqual(files, reference, "\(name): other files in outputs/ than ie-evaluate's")
            for file in files where reference.contains(file) {
                let a = try Self.comparable(runPath("evaluate") + "/outputs/" + file)
                let b = try Self.comparable(runPath(name) + "/outputs/" + file)
                XCTAssertTrue(a == b, "\(name): outputs/\(file) differs from ie-evaluate's")
            }
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: runPath(name) + "/run.json")), expectedJSON,
                           "\(name): run.json differs")
        }
        XCTAssertEqual(try Self.files(runPath("make") + "/logs"), try Self.files(runPath("evaluate") + "/logs"))
        XCTAssertTrue(try Self.files(runPath("evaluate") + "/logs").contains("ie-evaluate.log"))

        // --mark_completed (the step after training in a Slurm job): a run left running is completed, its
        // training's start time kept; without the flag (above) run.json was left as it was.
        let json = runPath("evaluate") + "/run.json"
        var info = try Self.json(json)
        info["status"] = "running"
        info["finished"] = NSNull()
        try JSONSerialization.data(withJSONObject: info).write(to: URL(fileURLWithPath: json))
        let mark = try copies["evaluate"]!.run("evaluate", ["--run=\(runPath("evaluate"))", "--mark_completed", "--quiet"],
                                               environment: single)
        XCTAssertEqual(mark.status, 0, mark.stderr)
        let marked = try Self.json(json)
        XCTAssertEqual(marked["status"] as? String, "completed")
        XCTAssertEqual(marked["started"] as? String, info["started"] as? String)
        XCTAssertNotNil(marked["finished"] as? String)
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] ?? [:]
    }

    /// An untrained run is refused (ie-train first), its status unchanged; a cross-validation parent is refused (its
    /// ensemble step evaluates it).
    func testUntrainedRunAndParentAreRefused() throws {
        let runner = try ToolRunner(name: "evalmark")
        defer { runner.remove() }
        let run = try PipelineTests.makeRun(runner, subjects: 6)
        let refused = try runner.run("evaluate", ["--run=\(run)"])
        XCTAssertEqual(refused.status, 2, "an untrained run has no checkpoint: \(refused.stderr)")
        XCTAssertTrue(refused.stderr.hasPrefix("ie-evaluate: error: ") && refused.stderr.contains("not trained yet), expected ie-train --run="),
                      refused.stderr)
        XCTAssertEqual(try Self.json(run + "/run.json")["status"] as? String, "queued")
        let parent = try runner.run("split", ["--model=HelloWorld", "--number_of_cross_validation_splits=2"])
        let parentRun = parent.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let onParent = try runner.run("evaluate", ["--run=\(parentRun)"])
        XCTAssertEqual(onParent.status, 2, onParent.stderr)
        XCTAssertTrue(onParent.stderr.contains("cross-validation parent"), onParent.stderr)
    }

    struct MakeResult { var status: Int32; var output: String }

    static func make(_ arguments: [String], in folder: String, environment extra: [String: String]) throws -> MakeResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["make", "--no-print-directory"] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: folder)
        process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return MakeResult(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    /// Paths of the regular files below `folder`, relative to it, sorted.
    static func files(_ folder: String) throws -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: folder) else { return [] }
        var result: [String] = []
        while let path = enumerator.nextObject() as? String {
            if enumerator.fileAttributes?[.type] as? FileAttributeType == .typeRegular { result.append(path) }
        }
        return result.sorted()
    }

    /// The file's bytes, with report.html's generation time blanked.
    static func comparable(_ path: String) throws -> Data {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard path.hasSuffix("/report.html") else { return data }
        var text = String(decoding: data, as: UTF8.self)
        if let start = text.range(of: "<p class=\"generated\">Generated "),
           let end = text.range(of: " by ie-report.</p>", range: start.upperBound..<text.endIndex) {
            text.replaceSubrange(start.upperBound..<end.lowerBound, with: "<time>")
        }
        return Data(text.utf8)
    }
}

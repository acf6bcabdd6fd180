import Foundation
import XCTest
import IERun

/// What scripts and cron jobs rely on (SPEC §1.3, §8, §10, §11): exit codes and streams, `--version`, one bounded
/// squeue call in ie-status, and nothing left behind when a signal stops a tool that draws plots.
final class ScriptingContractTests: XCTestCase {
    static let tools = ["split", "train", "infer", "ensemble", "evaluate", "metrics", "stats", "report", "synth", "models",
                        "crossval", "submit", "status"]

    /// Every tool answers `--version` with `ie-<tool> <version>` on stdout and exit 0, also where every other
    /// argument is a model parameter (ie-split, ie-train: a parameter `version` does not exist).
    func testVersionOnEveryTool() throws {
        let runner = try ToolRunner(name: "version")
        defer { runner.remove() }
        var commands = Self.tools.map { ($0, ["--version"]) }
        commands += [("train", ["--run=no/such/run", "--version"]), ("split", ["--model=HelloWorld", "--num_epochs=2", "--version"]),
                     ("stats", ["wilcoxon", "--version"])]
        for (tool, arguments) in commands {
            let result = try runner.run(tool, arguments)
            XCTAssertEqual(result.status, 0, "ie-\(tool) \(arguments): \(result.stderr)")
            XCTAssertEqual(result.stdout, "ie-\(tool) 0.1.0\n", "ie-\(tool) \(arguments)")
            XCTAssertEqual(result.stderr, "", "ie-\(tool) \(arguments)")
        }
        XCTAssertFalse(runner.exists("runs"), "ie-split --version makes no run")
    }

    /// A tool with subcommands given none is a usage error (exit 2, one line on stderr naming them); --help is not.
    func testMissingSubcommandIsAUsageError() throws {
        let runner = try ToolRunner(name: "subcommand")
        defer { runner.remove() }
        for (tool, first) in [("stats", "aggregate"), ("metrics", "run")] {
            let missing = try runner.run(tool, [])
            XCTAssertEqual(missing.status, 2, "ie-\(tool): \(missing.stderr)")
            XCTAssertEqual(missing.stdout, "")
            XCTAssertTrue(missing.stderr.hasPrefix("ie-\(tool): error: ") && missing.stderr.contains(first)
                          && missing.stderr.contains(", expected") && missing.stderr.split(separator: "\n").count == 1, missing.stderr)
            let help = try runner.run(tool, ["--help"])
            XCTAssertEqual(help.status, 0, help.stderr)
            XCTAssertTrue(help.stdout.contains("USAGE:"), help.stdout)
        }
    }
}

import Foundation
import XCTest

/// The command scaffold seen from outside (SPEC §1.3): every tool's and subcommand's `--help` shows examples
/// that paste into a shell as printed, every tool reports a bad option as one line with exit 2, and
/// `--print_config` lists a model's parameters with their values and sources.
final class CommandLineTests: XCTestCase {
    /// Every tool, with its subcommands; the examples of each help text are checked.
    static let commands: [(tool: String, subcommands: [String])] = [
        ("split", []), ("train", []), ("infer", []), ("ensemble", []), ("metrics", ["run", "pair", "folder", "labels"]),
        ("stats", ["aggregate", "across-runs", "outliers", "wilcoxon", "mannwhitney", "breakdown"]), ("report", []),
        ("synth", []), ("models", []), ("crossval", ["all", "folds", "ensemble"]), ("submit", []), ("status", [])]

    /// The lines of the "Examples:" block of a help text (up to the next blank line).
    static func exampleLines(_ help: String) -> [String] {
        var lines: [String] = [], inside = false
        for line in help.components(separatedBy: "\n") {
            if line.trimmingCharacters(in: .whitespaces) == "Examples:" { inside = true; continue }
            guard inside else { continue }
            // A line the help formatter wrapped starts in column 0 and stays in the block.
            if line.trimmingCharacters(in: .whitespaces).isEmpty { inside = false; continue }
            lines.append(line)
        }
        return lines
    }

    /// A line starts a command (or is a comment) when it begins with a program or variable assignment.
    static func startsCommand(_ line: String) -> Bool {
        let text = line.trimmingCharacters(in: .whitespaces)
        return ["ie-", "RUN=", "mpirun ", "make ", "#"].contains { text.hasPrefix($0) }
    }

    func testHelpExamplesPasteIntoAShell() throws {
        let runner = try ToolRunner(name: "help")
        defer { runner.remove() }
        for (tool, subcommands) in Self.commands {
            for arguments in [["--help"]] + subcommands.map({ [$0, "--help"] }) {
                let name = (["ie-" + tool] + arguments.dropLast()).joined(separator: " ")
                let help = try runner.run(tool, arguments, environment: ["COLUMNS": "80"])
                XCTAssertEqual(help.status, 0, "\(name): \(help.stderr)")
                let examples = Self.exampleLines(help.stdout)
                XCTAssertFalse(examples.isEmpty, "\(name) --help shows examples:\n\(help.stdout)")
                var continued = false
                for line in examples {
                    XCTAssertLessThanOrEqual(line.count, 80, "\(name): example line over 80 columns: '\(line)'")
                    XCTAssertTrue(continued || Self.startsCommand(line),
                                  "\(name): '\(line)' continues a command whose line does not end with ' \\'")
                    // A placeholder does not paste: bash reads `<run_id>` as a redirection and `...` as an argument.
                    XCTAssertFalse(["<", ">", "..."].contains { line.contains($0) }, "\(name): '\(line)' has a placeholder")
                    continued = line.hasSuffix(" \\")
                }
                XCTAssertFalse(continued, "\(name): the last example line ends with '\\'")
                // The text above USAGE is written within 79 columns: the parser re-wraps lines of 80 or more
                // mid-sentence when the terminal is 80 wide (or unknown, as in a pipe).
                let wide = try runner.run(tool, arguments, environment: ["COLUMNS": "200"])
                for line in wide.stdout.components(separatedBy: "\n").prefix(while: { !$0.hasPrefix("USAGE:") })
                where !line.hasPrefix("OVERVIEW:") {
                    XCTAssertLessThan(line.count, 80, "\(name): help line of 80 columns or more: '\(line)'")
                }
            }
        }
    }

    /// A bad command line is one line `ie-<tool>: error: ...` with exit 2, for every tool and subcommand level.
    func testBadOptionsAreOneLineUsageErrors() throws {
        let runner = try ToolRunner(name: "usage")
        defer { runner.remove() }
        for (tool, subcommands) in Self.commands {
            for arguments in [["--no-such-option=1"]] + subcommands.prefix(1).map({ [$0, "--no-such-option=1"] }) {
                let result = try runner.run(tool, arguments)
                XCTAssertEqual(result.status, 2, "ie-\(tool) \(arguments): \(result.stderr)")
                XCTAssertTrue(result.stderr.hasPrefix("ie-\(tool): error: "), result.stderr)
                XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, "one line: \(result.stderr)")
            }
        }
        let unknown = try runner.run("stats", ["aggregate", "--no-such-option=1"])
        XCTAssertEqual(unknown.status, 2, unknown.stderr)
        XCTAssertTrue(unknown.stderr.hasPrefix("ie-stats: error: ") && unknown.stderr.contains("no-such-option"), unknown.stderr)
        let mode = try runner.run("infer", ["--run=r", "--mode=Validation"])
        XCTAssertEqual(mode.status, 2, mode.stderr)
        XCTAssertTrue(mode.stderr.contains("Validation") && mode.stderr.contains("Train") && mode.stderr.contains("Test"), mode.stderr)
        // The parser's own messages ("Unexpected argument", "Missing expected argument") say what was expected too.
        for (tool, arguments) in [("metrics", ["frob"]), ("stats", ["frob", "x"]), ("synth", [String]()), ("infer", ["--run=r", "--mode=Foo"])] {
            let result = try runner.run(tool, arguments)
            XCTAssertEqual(result.status, 2, "\(tool) \(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(", expected ") && !result.stderr.contains("., expected"), result.stderr)
        }
        // Values that cannot mean anything are refused rather than giving a silent verdict or outlier list.
        for (arguments, fragment) in [(["wilcoxon", "a.csv", "b.csv", "--threshold=2"], "expected a significance level between 0 and 1"),
                                      (["wilcoxon", "a.csv", "b.csv", "--threshold=nan"], "expected a significance level between 0 and 1"),
                                      (["outliers", "a.csv", "--range=nan"], "expected a finite number of standard deviations")] {
            let result = try runner.run("stats", arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(fragment) && result.stderr.split(separator: "\n").count == 1, result.stderr)
        }
    }

    /// `ie-split --print_config` and `ie-train --print_config`: one line per parameter with its value and source;
    /// the values are those of configs/segmentation/HelloWorld.yml (read here with a YAML parser), the command
    /// line's and the schema defaults. ie-train lists a run's config (ie-split's overrides included) and trains nothing.
    func testPrintConfigListsValuesAndSources() throws {
        let runner = try ToolRunner(name: "printconfig")
        defer { runner.remove() }
        let config = ToolRunner.repoRoot + "/configs/segmentation/HelloWorld.yml"
        let split = try runner.run("split", ["--model=HelloWorld", "--num_epochs=3", "--print_config"])
        XCTAssertEqual(split.status, 0, split.stderr)
        XCTAssertFalse(runner.exists("runs"), "--print_config makes no run")
        // Where HelloWorld.yml sets each key (1-based line) and the text of its value.
        let reference = try ToolRunner.python("""
        for i, l in enumerate(open('\(config)').read().split('\\n')):
            if ':' in l and not l.startswith((' ', '#')):
                print(l.split(':')[0], i + 1, l.split(':', 1)[1].split('#')[0].strip())
        """)
        var setAt: [String: (line: String, value: String)] = [:]
        for line in reference.split(separator: "\n") {
            let fields = line.split(separator: " ", maxSplits: 2).map(String.init)
            if fields.count == 3 { setAt[fields[0]] = (fields[1], fields[2]) }
        }
        func rows(_ text: String) -> [String: [String]] {
            var rows: [String: [String]] = [:]
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                if fields.count == 3 { rows[fields[0]] = [fields[1], fields[2]] }
            }
            return rows
        }
        let listed = rows(split.stdout)
        XCTAssertEqual(split.stdout.split(separator: "\n").first, "parameter\tvalue\tsource")
        XCTAssertEqual(listed["num_epochs"], ["3", "command line (--num_epochs=3)"])
        for key in ["train_batch_size", "crop_size", "optimizer_type"] {
            XCTAssertEqual(listed[key]?.last, "config \(config):\(setAt[key]?.line ?? "?")", key)
        }
        XCTAssertEqual(listed["train_batch_size"]?.first, setAt["train_batch_size"]?.value)
        XCTAssertNil(setAt["weight_decay"], "HelloWorld.yml leaves weight_decay to its default")
        XCTAssertEqual(listed["weight_decay"]?.last, "default")
        XCTAssertEqual(listed.count, split.stdout.split(separator: "\n").count - 1, "one line per parameter")

        let synth = try runner.run("synth", ["--output_folder=datasets/HelloWorld", "--subjects=6", "--shape=16,48,48", "--quiet"])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let run = try runner.run("split", ["--model=HelloWorld", "--num_epochs=3"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let train = try runner.run("train", ["--run=\(run)", "--l_rate=0.5", "--print_config"])
        XCTAssertEqual(train.status, 0, train.stderr)
        let trainRows = rows(train.stdout)
        XCTAssertEqual(trainRows["num_epochs"], ["3", "command line (--num_epochs=3)"], "ie-split's override, recorded in the run")
        XCTAssertEqual(trainRows["l_rate"], ["0.5", "command line (--l_rate=0.5)"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/outputs/Train"), "nothing trained")
        XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/outputs/config_overrides.txt"), "nothing recorded")
    }
}

import ArgumentParser
import Foundation
import IECore
import IEConfig

/// Runs a tool's command with the SPEC §1.3 conventions: `--help` prints to stdout and exits 0; a command-line
/// error prints the parser's message and exits 2; an IEError thrown while running prints
/// `ie-<tool>: error: <file>[:<line>]: <what>` and exits with its own code; any other error exits 1.
/// For commands without subcommands (ArgumentParser reports subcommand errors through its own wrapper).
public func runCommand<C: ParsableCommand>(_ type: C.Type, tool: String, arguments: [String]? = nil) -> Never {
    let command: ParsableCommand
    do {
        command = try type.parse(arguments ?? Array(CommandLine.arguments.dropFirst()))
    } catch {
        let code = type.exitCode(for: error)
        if code == .success {
            // --help and --version: their text is the output, so a failed write is an error too.
            do { try StandardStream.write(type.fullMessage(for: error) + "\n") } catch { exitWithError(tool: tool, error) }
            exit(0)
        }
        FileHandle.standardError.write(Data("\(tool): error: \(type.message(for: error))\n".utf8))
        FileHandle.standardError.write(Data("  See '\(tool) --help' for the options and examples.\n".utf8))
        exit(ExitCode.usage.rawValue)
    }
    runTool(tool) {
        var c = command
        try c.run()
    }
}

/// As above for tools that also take model parameters: `--<param>=value` overrides (SPEC §1.3) are split off
/// first and handed to `setOverrides`. `ownOptions` are parameter names the tool parses itself (e.g. ie-infer's
/// repeatable `--model_id`).
public func runCommand<C: ParsableCommand>(_ type: C.Type, tool: String, ownOptions: Set<String> = [],
                                           setOverrides: ([String]) -> Void) -> Never {
    var (overrides, rest) = ConfigOverrides.split(Array(CommandLine.arguments.dropFirst()))
    let own = overrides.filter { arg in ownOptions.contains { arg == "--\($0)" || arg.hasPrefix("--\($0)=") } }
    overrides.removeAll { own.contains($0) }
    rest += own
    setOverrides(overrides)
    runCommand(type, tool: tool, arguments: rest)
}

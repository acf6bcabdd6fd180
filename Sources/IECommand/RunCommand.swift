import ArgumentParser
import Foundation
import IECore
import IEConfig

/// Runs a tool's ParsableCommand with the SPEC §1.3 conventions: config overrides (`--<param>=value`) are split
/// off first and handed to `setOverrides`; `--help` exits 0; argument errors print the parser's message and exit
/// 2; IEErrors print `ie-<tool>: error: <file>[:<line>]: <what>` with their own exit code.
/// `ownOptions` are parameter names the tool parses itself (e.g. ie-infer's repeatable `--model_id`).
public func runCommand<C: ParsableCommand>(_ type: C.Type, tool: String, ownOptions: Set<String> = [],
                                           setOverrides: ([String]) -> Void) -> Never {
    var (overrides, rest) = ConfigOverrides.split(Array(CommandLine.arguments.dropFirst()))
    let own = overrides.filter { arg in ownOptions.contains { arg == "--\($0)" || arg.hasPrefix("--\($0)=") } }
    overrides.removeAll { own.contains($0) }
    rest += own
    setOverrides(overrides)
    let command: C
    do {
        command = try type.parse(rest)
    } catch {
        let code = type.exitCode(for: error)
        if code == .success {
            print(type.fullMessage(for: error))
            exit(0)
        }
        FileHandle.standardError.write(Data("\(tool): error: \(type.message(for: error))\n".utf8))
        FileHandle.standardError.write(Data("Usage: \(type.usageString())\n  See '\(tool) --help' for examples.\n".utf8))
        exit(ExitCode.usage.rawValue)
    }
    runTool(tool) {
        var c = command
        try c.run()
    }
}

import ArgumentParser
import Foundation
import IECore

/// The one runner of every tool (SPEC §1.3), for commands with or without subcommands:
/// `--help` (and a subcommand's help) prints to stdout and exits 0, a failed write of it is an error (exit 1);
/// `--version` prints `<tool> <version>` to stdout and exits 0;
/// a command-line error is one line `ie-<tool>: error: <what>, <what was expected>` and exit 2, a missing
/// subcommand included;
/// an IEError thrown while running prints `ie-<tool>: error: <file>[:<line>]: <what>` and exits with its code;
/// any other error exits 1.
public func runCommand<C: ParsableCommand>(_ type: C.Type, tool: String, arguments: [String]? = nil) -> Never {
    StandardStream.occupyClosedDescriptors()
    let arguments = arguments ?? Array(CommandLine.arguments.dropFirst())
    // Answered before parsing: the tools that take model parameters would otherwise read `--version` as an
    // override of a parameter `version` and refuse it. Arguments after `--` are operands, not options.
    if arguments.prefix(while: { $0 != "--" }).contains("--version") {
        do { try StandardStream.write("\(tool) \(Toolbox.version)\n") } catch { exitWithError(tool: tool, error) }
        exit(0)
    }
    do {
        // parseAsRoot returns a help command for `--help`, whose run() throws the parser's help outcome.
        var command = try type.parseAsRoot(arguments)
        // A command with subcommands and no default one parses to itself when none is named; its default run()
        // prints the help and exits 0, which a script would take for success.
        if command is C, !type.configuration.subcommands.isEmpty {
            let names = type.configuration.subcommands.map { $0._commandName }
            throw IEError.usage("no subcommand given, expected one of \(names.joined(separator: ", ")) (\(tool) --help)")
        }
        try command.run()
    } catch let error as IEError {
        exitWithError(tool: tool, error)
    } catch {
        switch type.exitCode(for: error) {
        case .success:
            // --help and --version: their text is the output, so a failed write is an error too.
            do { try StandardStream.write(type.fullMessage(for: error) + "\n") } catch { exitWithError(tool: tool, error) }
        case .validationFailure:
            exitWithError(tool: tool, IEError.usage(usageMessage(type.message(for: error), tool: tool)))
        default:
            exitWithError(tool: tool, error)
        }
    }
    exit(0)
}

/// The parser's message as one line that says what was expected.
func usageMessage(_ text: String, tool: String) -> String {
    let line = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
        .filter { !$0.isEmpty }.joined(separator: " ")
    // "Unexpected argument" and "Missing expected argument" contain the word but do not say what was expected.
    if line.contains(", expected") { return line }
    let sentence = line.hasSuffix(".") ? String(line.dropLast()) : line
    return sentence + ", expected the options of \(tool) --help"
}

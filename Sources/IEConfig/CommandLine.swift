import Foundation
import IECore

/// Command-line handling shared by every tool (SPEC §1.3). Sources/ie-split/main.swift is the reference use:
///
/// ```swift
/// struct Train: ParsableCommand {
///     @Option(name: .customLong("model")) var model: String?
///     @Option(name: .customLong("settings")) var settings: String?
///     // Everything the parser does not know (the --<param>=value overrides) lands here:
///     @Argument(parsing: .allUnrecognized) var overrides: [String] = []
///     static let ownOptions = ["model", "settings", "help"]      // offered as "closest" suggestions too
///
///     func validate() throws {
///         // ValidationError is swift-argument-parser's usage error; main below maps it to exit 2.
///         do { _ = try ConfigOverrides.parse(overrides, toolOptions: Self.ownOptions) }
///         catch let e as IEError { throw ValidationError(e.description) }
///     }
///     func run() throws {
///         let settings = try Settings.locate(explicitPath: settings)
///         let config = try ModelConfig.load(name: model!, settings: settings,
///                                           overrides: ConfigOverrides.parse(overrides, toolOptions: Self.ownOptions))
///     }
/// }
///
/// runTool("ie-train") {
///     do { var c = try Train.parseAsRoot(); try c.run() }
///     catch let e as IEError { throw e }
///     catch {
///         let code = Train.exitCode(for: error)
///         if code == .success { Train.exit(withError: error) }                  // --help
///         if code == .validationFailure { throw IEError.usage(Train.message(for: error)) }
///         throw error
///     }
/// }
/// ```
/// Alternatively split argv up front with `ConfigOverrides.split(_:)` and hand the rest to the command's
/// `parseAsRoot(_:)`; overrides and tool options may interleave freely either way.
public enum ConfigOverrides {
    /// Parses `--name=value`, `--name value`, `--flag`, `--no-flag` arguments (a boolean's value as InnerEye's
    /// parse_bool reads it, `--flag True` included: BooleanSpelling). Anything that is not a known
    /// parameter, or a value of the wrong type, is a usage error (exit 2) naming the flag and the closest key.
    /// `toolOptions` are the tool's own long option names, offered as suggestions too.
    public static func parse(_ arguments: [String], toolOptions: [String] = []) throws -> [ConfigOverride] {
        var result: [ConfigOverride] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            guard arg.hasPrefix("--"), arg.count > 2 else {
                throw IEError.usage("unexpected argument '\(arg)', expected --<parameter>=<value>")
            }
            let body = arg.dropFirst(2)
            var name: String
            var raw: String?
            if let eq = body.firstIndex(of: "=") {
                name = String(body[..<eq])
                raw = String(body[body.index(after: eq)...])
            } else {
                name = String(body)
            }
            if raw == nil, name.hasPrefix("no-"), let spec = ParameterSchema.byName[String(name.dropFirst(3))], spec.type == .bool {
                result.append(ConfigOverride(name: spec.name, value: .bool(false), flag: arg))
                continue
            }
            guard let spec = ParameterSchema.byName[name] else {
                let candidates = ParameterSchema.names + toolOptions
                let hint = closestMatch(name.hasPrefix("no-") ? String(name.dropFirst(3)) : name, in: candidates).map { " (closest: --\($0))" } ?? ""
                throw IEError.usage("unknown option \(arg)\(hint), expected a parameter of SPEC §1.4 or an option of this tool (see --help)")
            }
            if raw == nil {
                if spec.type == .bool {
                    // InnerEye's argparse takes `--flag value` too; a bare `--flag` sets it (ours for every boolean,
                    // InnerEye's for those that default to False).
                    if i < arguments.count, let word = BooleanSpelling.parse(arguments[i]) {
                        result.append(ConfigOverride(name: name, value: .bool(word), flag: "--\(name)=\(arguments[i])"))
                        i += 1
                    } else {
                        result.append(ConfigOverride(name: name, value: .bool(true), flag: arg))
                    }
                    continue
                }
                guard i < arguments.count, !arguments[i].hasPrefix("--") else {
                    throw IEError.usage("\(arg) needs a value, expected --\(name)=<\(spec.type.expectation)>")
                }
                raw = arguments[i]
                i += 1
            }
            guard let text = raw else { continue }
            if ModelConfig.nullWords.contains(text) && !(text == "None" && spec.type == .choice(ParameterSchema.normMethods)) && spec.defaultValue.isNone {
                result.append(ConfigOverride(name: name, value: .none, flag: "--\(name)=\(text)"))
                continue
            }
            if spec.type == .transforms, let problem = YAMLGuard.problem(in: text) {
                // Name the option only: the value may be thousands of brackets long.
                throw IEError.usage("--\(name): \(problem.message)")
            }
            guard let value = spec.parse(text) else {
                throw IEError.usage("--\(name)=\(text): cannot use '\(text)', expected \(spec.type.expectation)")
            }
            result.append(ConfigOverride(name: name, value: value, flag: "--\(name)=\(text)"))
        }
        return result
    }

    /// Splits argv (without the program name) into config-parameter arguments and the rest (the tool's own
    /// options and arguments). `--settings`, `--model` and every non-parameter stay in `rest`.
    /// A misspelt parameter also stays in `rest`, where the tool's own parser reports it; use `parse` on the
    /// `.allUnrecognized` leftovers to get the "closest key" message instead.
    public static func split(_ arguments: [String]) -> (overrides: [String], rest: [String]) {
        var overrides: [String] = [], rest: [String] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--" { rest += arguments[(i - 1)...]; break }
            guard arg.hasPrefix("--") else { rest.append(arg); continue }
            let body = arg.dropFirst(2)
            let name = body.firstIndex(of: "=").map { String(body[..<$0]) } ?? String(body)
            if let spec = ParameterSchema.byName[name] {
                overrides.append(arg)
                // `--name value`; a boolean's value only when it is one (`--flag` alone sets it).
                if !body.contains("="), i < arguments.count, !arguments[i].hasPrefix("--"),
                   spec.type != .bool || BooleanSpelling.parse(arguments[i]) != nil {
                    overrides.append(arguments[i]); i += 1
                }
            } else if name.hasPrefix("no-"), ParameterSchema.byName[String(name.dropFirst(3))]?.type == .bool, !body.contains("=") {
                overrides.append(arg)
            } else {
                rest.append(arg)
            }
        }
        return (overrides, rest)
    }
}

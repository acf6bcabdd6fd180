import ArgumentParser
import Foundation
import IECore
import IEConfig

/// The model-parameter overrides of a command line (SPEC §1.3): every argument the tool's own options do not
/// claim is a `--<parameter>=<value>` (also `--name value`, `--flag`, `--no-flag`), parsed once by
/// IEConfig.ConfigOverrides.parse. The tool's options win over a parameter of the same name (ie-infer's
/// repeatable `--model_id`).
public struct ModelParameters: ParsableArguments {
    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("Model parameters, --<name>=<value> (SPEC §1.4).", valueName: "parameter"))
    public var arguments: [String] = []

    /// Names offered as "closest" suggestions besides the parameters (the options most tools share).
    static let commonOptions = ["settings", "run", "model", "threads", "precision", "quiet", "verbose", "help"]

    public init() {}

    /// A misspelt or mistyped parameter is a usage error naming the flag and the closest name.
    public func validate() throws {
        do { _ = try overrides() } catch let error as IEError { throw ValidationError(error.description) }
    }

    public func overrides() throws -> [ConfigOverride] {
        try ConfigOverrides.parse(arguments, toolOptions: ModelParameters.commonOptions)
    }

    /// The overrides as `--name=value` arguments (what a run records), without the parameters in `excluding`.
    public func flags(excluding: Set<String> = []) throws -> [String] {
        try overrides().filter { !excluding.contains($0.name) }.map(\.flag)
    }

    /// True when a parameter in `names` is given.
    public func sets(_ names: Set<String>) -> Bool {
        ((try? overrides()) ?? []).contains { names.contains($0.name) }
    }
}

/// `--print_config`: every parameter of a model config with its effective value and where that value comes
/// from (SPEC §1.3), one tab-separated line each under the header `parameter	value	source`. Sources:
/// `command line (--flag)`, `config <file>:<line>` (the model's own file), `base config <file>:<line>` (a file
/// it inherits), `derived` (SPEC §1.2's rules and the defaults that follow other keys), `default`.
public enum ConfigListing {
    public static func text(_ config: ModelConfig) -> String {
        var text = "parameter\tvalue\tsource\n"
        for spec in ParameterSchema.parameters {
            text += "\(spec.name)\t\(config.value(spec.name).description)\t\(source(spec.name, in: config))\n"
        }
        return text
    }

    static func source(_ name: String, in config: ModelConfig) -> String {
        if config.explicitValues[name] != nil, let source = config.sources[name] {
            if let flag = source.flag { return "command line (\(flag))" }
            if let file = source.file {
                let place = file + (source.line.map { ":\($0)" } ?? "")
                return file == config.file ? "config \(place)" : "base config \(place)"
            }
        }
        let schemaDefault = ParameterSchema.byName[name]?.defaultValue ?? .none
        return config.value(name) == schemaDefault ? "default" : "derived"
    }
}

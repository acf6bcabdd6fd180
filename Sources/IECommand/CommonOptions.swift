import ArgumentParser
import Foundation
import IECore

/// The options every tool shares (SPEC §1.3), declared once and included with `@OptionGroup`.

/// `--settings=PATH`: settings.yml (default: $IE_SETTINGS, ./settings.yml, built-in defaults; SPEC §1.1).
public struct SettingsOption: ParsableArguments {
    @Option(help: "settings.yml (default: $IE_SETTINGS, ./settings.yml, built-in defaults).")
    public var settings: String?

    public init() {}
}

/// `--threads=N`: threads for the GEMMs and element-wise loops (ie-metrics: for structures and subjects).
public struct ThreadsOption: ParsableArguments {
    @Option(help: "Threads (default: $OMP_NUM_THREADS, else all cores).")
    public var threads: Int?

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads=\(threads), expected a positive integer") }
    }

    // The thread count itself (--threads, else $OMP_NUM_THREADS, else every core) is decided in one place for the
    // engine's tools: IENet.EngineOptions.fromCommandLine(threads:). Tools without the engine use `count`.

    /// --threads, else a positive $OMP_NUM_THREADS, else every core (IECore.ThreadCount, the rule
    /// EngineOptions.fromEnvironment applies too), for tools that do not link the engine (ie-metrics).
    public func count(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        ThreadCount.resolve(requested: threads, environment: environment)
    }
}

/// `--precision=bf16|fp32`: the convolutions' arithmetic (SPEC §12, IENet.Precision), next to --threads in the
/// tools that run a network. Given, it becomes IENET_PRECISION through IENet.EngineOptions.fromCommandLine.
public struct PrecisionOption: ParsableArguments {
    @Option(help: "Convolution arithmetic: fp32, or bf16 (oneDNN with AVX512_BF16; else fp32 with a warning). Default: $IENET_PRECISION, else fp32.")
    public var precision: String?

    public init() {}

    public func validate() throws {
        if let precision, !["fp32", "bf16"].contains(precision.lowercased()) {
            throw ValidationError("--precision=\(precision), expected fp32 or bf16")
        }
    }
}

/// `--quiet` / `--verbose`, applied to IECore.Log with the tool's name.
public struct LogOptions: ParsableArguments {
    @Flag(help: "Only errors on stderr.") public var quiet = false
    @Flag(help: "More detail on stderr.") public var verbose = false

    public init() {}

    public func validate() throws {
        if quiet && verbose { throw ValidationError("--quiet and --verbose together, expected one of them") }
    }

    /// Sets Log.tool and Log.level.
    public func apply(tool: String) {
        Log.tool = tool
        Log.level = quiet ? .quiet : verbose ? .verbose : .normal
    }
}

/// `--run=RUN`: a run folder (runs/<experiment>/<run_id>) made by ie-split.
public struct RunOption: ParsableArguments {
    @Option(name: .customLong("run"), help: "The run folder (runs/<experiment>/<run_id>) made by ie-split.")
    public var path: String

    public init() {}
}

/// A data split of a run (SPEC §9: outputs/epoch_NNN/<Mode>/). Each tool says which modes it takes.
public enum Mode: String, CaseIterable, Sendable, ExpressibleByArgument {
    case train = "Train", val = "Val", test = "Test"

    /// Val and Test: the splits the evaluation pipeline infers and scores.
    public static let evaluated: [Mode] = [.val, .test]

    /// "Val or Test", "Train, Val or Test".
    public static func describe(_ modes: [Mode]) -> String {
        let names = modes.map(\.rawValue)
        guard names.count > 1 else { return names.first ?? "" }
        return names.dropLast().joined(separator: ", ") + " or " + (names.last ?? "")
    }

    /// Throws the usage error `--mode=X, expected <allowed>` unless `self` is one of `allowed`.
    public func check(allowed: [Mode]) throws {
        guard allowed.contains(self) else {
            throw ValidationError("--mode=\(rawValue), expected \(Mode.describe(allowed))")
        }
    }
}

/// `--epoch=N` of the tools that read or write `epoch_NNN` folders: a positive integer (`--epoch=-1` looked for
/// `epoch_-01.ckpt`). Use as `@Option(help: ..., transform: epochNumber)`.
public func epochNumber(_ text: String) throws -> Int {
    guard let epoch = Int(text), epoch >= 1 else { throw ValidationError("expected an epoch number of at least 1") }
    return epoch
}

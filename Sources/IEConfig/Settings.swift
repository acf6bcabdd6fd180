import Foundation
import IECore
import Yams

/// Slurm requests of settings.yml. Each one left out (or null) is not asked for, so the cluster's defaults
/// apply (its default partition, its time limit, one CPU per task, its DefMemPerCPU...).
public struct SlurmSettings: Sendable, Equatable {
    public var partition: String? = nil
    public var account: String? = nil
    public var time: String? = nil
    public var cpusPerTask: Int? = nil
    public var mem: String? = nil
    public var extra: [String] = []
    public init() {}
}

/// settings.yml (SPEC §1.1): where configs, runs, datasets and models live. Paths are absolute after loading.
public struct Settings: Sendable {
    /// The settings file that was read, or nil for the built-in defaults.
    public var file: String?
    public var modelConfigsDirs: [String]
    public var runsDir: String
    public var datasetsDir: String
    public var modelsDir: String
    public var slurm: SlurmSettings

    public static let knownKeys = ["model_configs_dirs", "runs_dir", "datasets_dir", "models_dir", "slurm"]
    static let slurmKeys = ["partition", "account", "time", "cpus_per_task", "mem", "extra"]

    /// Built-in defaults: everything relative to `base` (the working directory).
    public static func defaults(relativeTo base: String = FileManager.default.currentDirectoryPath) -> Settings {
        Settings(file: nil, modelConfigsDirs: [resolve("configs", against: base)], runsDir: resolve("runs", against: base),
                 datasetsDir: resolve("datasets", against: base), modelsDir: resolve("models", against: base),
                 slurm: SlurmSettings())
    }

    /// Lookup order: `explicitPath` (--settings), `$IE_SETTINGS`, `./settings.yml`, built-in defaults.
    public static func locate(explicitPath: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                              workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> Settings {
        if let explicitPath {
            let path = resolve(explicitPath, against: workingDirectory)
            guard FileManager.default.fileExists(atPath: path) else {
                throw IEError.usage("settings file not found, expected an existing file given by --settings", file: path)
            }
            return try load(path: path)
        }
        if let env = environment["IE_SETTINGS"], !env.isEmpty {
            let path = resolve(env, against: workingDirectory)
            guard FileManager.default.fileExists(atPath: path) else {
                throw IEError.usage("settings file not found, expected an existing file given by $IE_SETTINGS", file: path)
            }
            return try load(path: path)
        }
        let local = resolve("settings.yml", against: workingDirectory)
        if FileManager.default.fileExists(atPath: local) { return try load(path: local) }
        return defaults(relativeTo: workingDirectory)
    }

    /// Reads a settings file; relative paths in it are relative to the file's folder.
    public static func load(path: String) throws -> Settings {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw IEError.usage(FileManager.default.isReadableFile(atPath: path) ? "cannot read settings file: not UTF-8 text, expected a YAML file in UTF-8" : "cannot read settings file, expected a readable YAML file", file: path)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var settings = defaults(relativeTo: folder)
        settings.file = path
        try YAMLGuard.check(text, file: path)
        let node: Node?
        do { node = try Yams.compose(yaml: text) } catch {
            throw IEError.usage("invalid YAML (\(yamlProblem(error))), expected a settings mapping", file: path)
        }
        guard let node else { return settings }
        guard case .mapping(let mapping) = node else {
            throw IEError.usage("expected a mapping of settings keys", file: path, line: node.mark?.line)
        }
        for (keyNode, value) in mapping {
            let key = keyNode.string ?? ""
            let line = keyNode.mark?.line
            func scalar() throws -> String {
                guard case .scalar(let s) = value else {
                    throw IEError.usage("\(key) must be a single value", file: path, line: line)
                }
                return s.string
            }
            switch key {
            case "model_configs_dirs":
                let dirs: [String]
                switch value {
                case .sequence(let seq): dirs = seq.map { $0.string ?? "" }
                case .scalar(let s): dirs = ParameterType.items(s.string)
                default: throw IEError.usage("model_configs_dirs must be a list of folders", file: path, line: line)
                }
                settings.modelConfigsDirs = dirs.map { resolve($0, against: folder) }
            case "runs_dir": settings.runsDir = resolve(try scalar(), against: folder)
            case "datasets_dir": settings.datasetsDir = resolve(try scalar(), against: folder)
            case "models_dir": settings.modelsDir = resolve(try scalar(), against: folder)
            case "slurm":
                guard case .mapping(let sm) = value else {
                    throw IEError.usage("slurm must be a mapping (partition, account, time, cpus_per_task, mem, extra)", file: path, line: line)
                }
                for (k, v) in sm {
                    let name = k.string ?? ""
                    let vline = k.mark?.line
                    let text = v.string
                    let isNull = text == nil || text == "null" || text == "~" || text == ""
                    switch name {
                    case "partition": settings.slurm.partition = isNull ? nil : text
                    case "account": settings.slurm.account = isNull ? nil : text
                    case "time": settings.slurm.time = isNull ? nil : text
                    case "mem": settings.slurm.mem = isNull ? nil : text
                    case "cpus_per_task":
                        if isNull { settings.slurm.cpusPerTask = nil; break }
                        guard let t = text, let n = Int(t), n > 0 else {
                            throw IEError.usage("slurm.cpus_per_task must be a positive integer or null (Slurm's default)", file: path, line: vline)
                        }
                        settings.slurm.cpusPerTask = n
                    case "extra":
                        switch v {
                        case .sequence(let seq): settings.slurm.extra = seq.compactMap { $0.string }
                        case .scalar(let s): settings.slurm.extra = s.string.isEmpty ? [] : [s.string]
                        default: throw IEError.usage("slurm.extra must be a list of sbatch options", file: path, line: vline)
                        }
                    default:
                        let hint = closestMatch(name, in: slurmKeys).map { ", expected a known key (closest: \($0))" } ?? ""
                        throw IEError.usage("unknown slurm key '\(name)'\(hint)", file: path, line: vline)
                    }
                }
            default:
                let hint = closestMatch(key, in: knownKeys).map { ", expected a known key (closest: \($0))" } ?? ""
                throw IEError.usage("unknown settings key '\(key)'\(hint)", file: path, line: line)
            }
        }
        return settings
    }

    /// `<datasets_dir>/<dataset_id>` for `dataset_id: NAME`.
    public func datasetFolder(id: String) -> String { resolve(id, against: datasetsDir) }
}

/// Absolute, standardised path: `path` itself when absolute, else `base/path`.
public func resolve(_ path: String, against base: String) -> String {
    var p = path
    if p.hasPrefix("~/") { p = NSHomeDirectory() + String(p.dropFirst()) }
    let url = p.hasPrefix("/") ? URL(fileURLWithPath: p) : URL(fileURLWithPath: base).appendingPathComponent(p)
    return url.standardizedFileURL.path
}

func yamlProblem(_ error: Error) -> String {
    let text = "\(error)".replacingOccurrences(of: "\n", with: " ")
    return text.count > 160 ? String(text.prefix(160)) + "..." : text
}

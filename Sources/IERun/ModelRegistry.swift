import Foundation
import IECore
import IEConfig

/// One checkpoint of a registered model.
public struct RegisteredCheckpoint: Codable, Sendable, Equatable {
    /// File name inside the version folder.
    public var file: String
    public var sha256: String
}

/// `<models_dir>/<Name>/<version>/model.json` (SPEC §6).
public struct RegisteredModel: Codable, Sendable {
    public var name: String
    public var version: Int
    /// The config's parameters (args.txt values) the model was trained with.
    public var config: [String: String]
    public var checkpoints: [RegisteredCheckpoint]
    public var sourceRunIds: [String]
    public var created: String
    /// The version folder (not stored in model.json).
    public var folder: String = ""

    enum CodingKeys: String, CodingKey {
        case name, version, config, checkpoints, sourceRunIds = "source_run_ids", created
    }

    public var id: String { "\(name):\(version)" }
    public var checkpointPaths: [String] { checkpoints.map { folder + "/" + $0.file } }

    /// Recomputes every checkpoint's SHA-256; a mismatch is bad input (exit 3).
    public func verify() throws {
        for c in checkpoints {
            let path = folder + "/" + c.file
            let actual = try SHA256.hex(file: path)
            guard actual == c.sha256 else {
                throw IEError.badInput("checkpoint SHA-256 is \(actual), expected \(c.sha256) as registered in model.json", file: path)
            }
        }
    }
}

extension RegisteredModel {
    /// model.json, for error messages.
    public var jsonPath: String { folder + "/model.json" }

    /// The config this model was trained with (SPEC §6), the one function every `--model_id` path builds its
    /// config with: the named config's YAML as the base, then each stored parameter whose value differs from the
    /// base's as an override, then `overrides` (the command line's, which win). Only the differences become
    /// overrides so that defaults derived from other parameters (test_crop_size, display names) stay derived from
    /// a command-line override of those. A model registered without a config (none stored) gets the YAML's.
    /// A stored parameter that no longer exists or whose value no longer parses is bad input naming model.json.
    public func modelConfig(settings: Settings, overrides: [ConfigOverride] = []) throws -> ModelConfig {
        // model_name is the config the model was trained from (registration uses the same name today).
        let configName = config["model_name"] ?? name
        // The category (model_category, stored as the effective one) comes first: a config file's folder says
        // it, and a file moved to another folder would otherwise turn a classifier into a segmentation model.
        // The base is the YAML alone where it loads (the stored values are compared with it); a file moved into
        // another category's folder may load only with the stored category.
        let plainBase = try? ModelConfig.load(name: configName, settings: settings, requireRunnable: false)
        var categoryOverride: [ConfigOverride] = []
        if let text = config["model_category"], let stored = ModelCategory(rawValue: text), plainBase?.category != stored {
            categoryOverride = try ConfigOverrides.parse(["--model_category=\(stored.rawValue)"])
                .map { var o = $0; o.flag = "\(jsonPath): model_category=\(text)"; return o }
        }
        let base = try plainBase ?? ModelConfig.load(name: configName, settings: settings, overrides: categoryOverride, requireRunnable: false)
        var stored: [ConfigOverride] = categoryOverride
        for key in config.keys.sorted() where key != "model_name" && key != "model_category" {
            let text = config[key] ?? ""
            guard let spec = ParameterSchema.byName[key] else {
                let hint = closestMatch(key, in: ParameterSchema.names).map { " (closest: \($0))" } ?? ""
                throw IEError.badInput("config parameter '\(key)' is not a parameter of SPEC §1.4\(hint), expected the "
                                       + "parameters of the config \(id) was trained with (register it again)", file: jsonPath)
            }
            // orderedArguments stored each effective value as ConfigValue.description, which is what
            // ConfigOverrides reads back; the same text is the same value, so it needs no override.
            if base.value(key).description == text { continue }
            let parsed: [ConfigOverride]
            do { parsed = try ConfigOverrides.parse(["--\(key)=\(text)"]) } catch {
                throw IEError.badInput("config \(key)=\(text) cannot be used, expected \(spec.type.expectation) "
                                       + "as the config \(id) was trained with (register it again)", file: jsonPath)
            }
            // A later config error (validation) then names model.json and the stored value.
            stored += parsed.map { var o = $0; o.flag = "\(jsonPath): \(key)=\(text)"; return o }
        }
        return try ModelConfig.load(name: configName, settings: settings, overrides: stored + overrides)
    }
}

/// The model registry: versions count up from 1 per name and are taken atomically (mkdir is the lock); a
/// version is complete once its model.json exists (written last).
public struct ModelRegistry: Sendable {
    public let root: String

    public init(root: String) { self.root = root }
    public init(settings: Settings) { self.root = settings.modelsDir }

    /// Versions of `name` that have a folder (complete or not), ascending.
    public func versionFolders(name: String) -> [Int] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root + "/" + name)) ?? []).compactMap(Int.init).filter { $0 > 0 }.sorted()
    }

    /// Complete versions of `name`, ascending.
    public func versions(name: String) -> [Int] {
        versionFolders(name: name).filter { FileManager.default.fileExists(atPath: "\(root)/\(name)/\($0)/model.json") }
    }

    /// Registers checkpoints as the next version of `name`: copies them (with SHA-256) into the version folder
    /// and writes model.json last.
    @discardableResult
    public func register(name: String, config: ModelConfig?, checkpoints: [String], sourceRunIds: [String],
                         date: Date = Date()) throws -> RegisteredModel {
        guard RunIDs.isValidName(name) else {
            throw IEError.usage("invalid model name '\(name)', expected letters, digits, '.', '-' or '_'")
        }
        guard !checkpoints.isEmpty else { throw IEError.usage("nothing to register, expected at least one checkpoint") }
        for c in checkpoints where !FileManager.default.fileExists(atPath: c) {
            throw IEError.badInput("checkpoint not found", file: c)
        }
        let nameDir = root + "/" + name
        try FileManager.default.createDirectory(atPath: nameDir, withIntermediateDirectories: true)
        var version = (versionFolders(name: name).last ?? 0) + 1
        while mkdir("\(nameDir)/\(version)", AtomicFile.folderMode) != 0 {
            guard errno == EEXIST else {
                throw IEError.failure("cannot create registry folder: \(String(cString: strerror(errno)))", file: "\(nameDir)/\(version)")
            }
            version += 1
        }
        let folder = "\(nameDir)/\(version)"
        // Distinct file names even when members share a base name (e.g. every fold's epoch_100.ckpt).
        let baseNames = checkpoints.map { URL(fileURLWithPath: $0).lastPathComponent }
        let clash = Set(baseNames).count != baseNames.count
        var entries: [RegisteredCheckpoint] = []
        for (i, source) in checkpoints.enumerated() {
            let file = clash ? "\(i)_\(baseNames[i])" : baseNames[i]
            let destination = folder + "/" + file
            let temporary = AtomicFile.temporaryPath(for: destination)
            try? FileManager.default.removeItem(atPath: temporary)
            do { try FileManager.default.copyItem(atPath: source, toPath: temporary) } catch {
                throw IEError.failure("cannot copy checkpoint into the registry: \(error.localizedDescription)", file: source)
            }
            try AtomicFile.commit(temporary: temporary, to: destination)
            entries.append(RegisteredCheckpoint(file: file, sha256: try SHA256.hex(file: destination)))
        }
        var configValues: [String: String] = [:]
        if let config {
            configValues["model_name"] = config.name
            for (k, v) in config.orderedArguments { configValues[k] = v }
            // The effective category, also when the config file's folder (not a parameter) gave it.
            configValues["model_category"] = config.category.rawValue
        }
        var model = RegisteredModel(name: name, version: version, config: configValues, checkpoints: entries,
                                    sourceRunIds: sourceRunIds, created: RunIDs.isoDate(date))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(encoder.encode(model) + Data("\n".utf8), to: folder + "/model.json")
        model.folder = folder
        return model
    }

    /// The model `id` (a run's registered_model) when it holds exactly `checkpoints` (same SHA-256, same order):
    /// rerunning a finished step finds its registration instead of adding a copy under a new version.
    public func registered(_ id: String?, holding checkpoints: [String]) -> RegisteredModel? {
        guard let id, let model = try? resolve(id), model.checkpoints.count == checkpoints.count else { return nil }
        for (entry, path) in zip(model.checkpoints, checkpoints) where (try? SHA256.hex(file: path)) != entry.sha256 {
            return nil
        }
        return model
    }

    /// Resolves `Name:version` (or `Name:latest`) to a complete registered model.
    public func resolve(_ modelID: String) throws -> RegisteredModel {
        let parts = modelID.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, parts[1] == "latest" || (Int(parts[1]) ?? 0) > 0 else {
            throw IEError.usage("invalid model id '\(modelID)', expected Name:version such as Prostate:3")
        }
        let name = parts[0]
        // The name becomes a path under the registry: nothing that could leave it.
        guard RunIDs.isValidName(name) else {
            throw IEError.usage("invalid model name '\(name)' in '\(modelID)', expected letters, digits, '.', '-' or '_'")
        }
        let available = versions(name: name)
        let version: Int
        if parts[1] == "latest" {
            guard let last = available.last else {
                throw IEError.usage("no registered versions of \(name), expected a model registered by ie-train", file: root)
            }
            version = last
        } else {
            guard let number = Int(parts[1]) else { throw IEError.usage("invalid model id '\(modelID)'") }
            version = number
        }
        let folder = "\(root)/\(name)/\(version)"
        let json = folder + "/model.json"
        guard let data = FileManager.default.contents(atPath: json) else {
            let known = available.isEmpty ? "none" : available.map(String.init).joined(separator: ", ")
            throw IEError.usage("model \(name):\(version) is not registered (complete versions: \(known)), expected an existing Name:version", file: folder)
        }
        var model: RegisteredModel
        do { model = try JSONDecoder().decode(RegisteredModel.self, from: data) } catch {
            throw IEError.badInput("model.json is not valid (\(error)), expected name, version, config, checkpoints", file: json)
        }
        model.folder = folder
        return model
    }
}

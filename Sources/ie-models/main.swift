import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IERun

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-models",
        abstract: "Lists, shows and removes the registered models (SPEC §6).",
        discussion: """
        The registry is settings.yml's models_dir (default ./models). `list` prints
        one line per model version: id, checkpoints, created and source runs; a
        cross-validation ensemble is followed by its folds' models, indented. `show`
        prints one model's model.json as lines (with --verify it recomputes every
        checkpoint's SHA-256 first). `remove` unregisters a version (model.json goes
        first, then its folder); an ensemble keeps its own copies of the folds'
        checkpoints, so removing a fold's model leaves the ensemble usable.

        Examples:
          ie-models list
          ie-models list HelloWorld --format=csv
          ie-models show HelloWorld:3 --verify
          ie-models remove HelloWorld:1
        """)

    @Argument(help: "list, show or remove.") var action: String
    @Argument(help: "list: model names (default all); show/remove: one Name:version.") var targets: [String] = []
    enum Format: String, ExpressibleByArgument, CaseIterable { case text, csv }

    @Option(help: "list: text or csv.") var format: Format = .text
    @Flag(help: "show: recompute every checkpoint's SHA-256 against model.json.") var verify = false
    @OptionGroup var settings: SettingsOption

    func validate() throws {
        guard ["list", "show", "remove"].contains(action) else {
            throw ValidationError("unknown action '\(action)', expected list, show or remove")
        }
        if action != "list", targets.count != 1 {
            throw ValidationError("\(action) takes one model id Name:version, got \(targets.count)")
        }
    }

    /// The one Name:version of show and remove.
    func target() throws -> String {
        guard let id = targets.first else { throw IEError.usage("\(action) takes one model id Name:version, got none") }
        return id
    }

    func run() throws {
        let registry = ModelRegistry(settings: try Settings.locate(explicitPath: settings.settings))
        switch action {
        case "list":
            try StandardStream.write(Models.listing(try registry.listing(names: targets), csv: format == .csv))
        case "show":
            let model = try registry.resolve(try target())
            if verify { try model.verify() }
            let folds = try registry.listing(names: [model.name]).first { $0.model.id == model.id }?.folds ?? []
            try StandardStream.write(Models.details(model, folds: folds, verified: verify))
        default:
            let model = try registry.remove(try target())
            // A report of what was done, not data: stderr, so stdout stays empty for a pipe.
            try StandardStream.write("ie-models: removed \(model.id) (\(model.folder))\n", to: STDERR_FILENO, name: "standard error")
        }
    }

    static func listing(_ entries: [RegistryEntry], csv: Bool) -> String {
        if csv {
            var text = "model_id,kind,checkpoints,ensemble,created,source_run_ids\n"
            for entry in entries {
                text += row(entry.model, kind: entry.isEnsemble ? "ensemble" : "model", ensemble: "")
                for fold in entry.folds { text += row(fold, kind: "fold", ensemble: entry.model.id) }
            }
            return text
        }
        guard !entries.isEmpty else { return "no registered models\n" }
        var text = ""
        for entry in entries {
            let kind = entry.isEnsemble ? "ensemble of \(entry.model.checkpoints.count)" : "model"
            text += "\(entry.model.id)  \(kind)  created \(entry.model.created)  from \(entry.model.sourceRunIds.joined(separator: " "))\n"
            for fold in entry.folds {
                text += "    \(fold.id)  fold  created \(fold.created)  from \(fold.sourceRunIds.joined(separator: " "))\n"
            }
        }
        return text
    }

    static func row(_ model: RegisteredModel, kind: String, ensemble: String) -> String {
        CSVTable.line([model.id, kind, String(model.checkpoints.count), ensemble, model.created,
                      model.sourceRunIds.joined(separator: " ")])
    }

    static func details(_ model: RegisteredModel, folds: [RegisteredModel], verified: Bool) -> String {
        var text = "model: \(model.id)\nfolder: \(model.folder)\ncreated: \(model.created)\n"
        text += "source runs: \(model.sourceRunIds.joined(separator: " "))\n"
        text += "checkpoints\(verified ? " (SHA-256 verified)" : ""):\n"
        for c in model.checkpoints { text += "  \(c.file)  sha256 \(c.sha256)\n" }
        if !folds.isEmpty { text += "folds: \(folds.map(\.id).joined(separator: " "))\n" }
        text += "config:\n"
        for key in model.config.keys.sorted() { text += "  \(key): \(model.config[key] ?? "")\n" }
        return text
    }
}

runCommand(Models.self, tool: "ie-models")

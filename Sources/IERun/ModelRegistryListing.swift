import Foundation
import IECore

/// Listing and removal of registered models (`ie-models`). A cross-validation registers each fold as a model of
/// one checkpoint and then the ensemble, whose source runs are the folds' runs; the listing shows each fold
/// under the ensemble that holds its run (and at the top level only when no ensemble holds it).
public struct RegistryEntry: Sendable {
    public var model: RegisteredModel
    /// Models of one checkpoint whose source run is one of this ensemble's (empty for a plain model).
    public var folds: [RegisteredModel]
    public var isEnsemble: Bool { model.isEnsemble }
}

extension RegisteredModel {
    /// An ensemble holds its members' checkpoints; a trained model (a fold included) holds one.
    public var isEnsemble: Bool { checkpoints.count > 1 }
}

extension ModelRegistry {
    /// Model names: the registry's folders that are valid names, sorted.
    public func names() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter(RunIDs.isValidName).sorted()
    }

    /// Every complete version of `names` (all names when empty), read and checked as `resolve` does.
    public func models(names wanted: [String] = []) throws -> [RegisteredModel] {
        for name in wanted where !RunIDs.isValidName(name) {
            throw IEError.usage("invalid model name '\(name)', expected letters, digits, '.', '-' or '_'")
        }
        // A name asked for by hand that the registry does not hold is a mistake (a typo, the wrong models_dir),
        // not an empty listing.
        let known = names().filter { !versions(name: $0).isEmpty }
        for name in wanted where !known.contains(name) {
            let hint = closestMatch(name, in: known).map { " (closest: \($0))" } ?? ""
            let expected = known.isEmpty ? "a registered model name (\(root) holds none)"
                                         : "one of \(known.joined(separator: ", "))"
            throw IEError.usage("no registered model '\(name)'\(hint), expected \(expected)")
        }
        return try (wanted.isEmpty ? names() : wanted).flatMap { name in
            try versions(name: name).map { try resolve("\(name):\($0)") }
        }
    }

    /// The listing: ensembles with their folds, other models alone, by name then version.
    public func listing(names wanted: [String] = []) throws -> [RegistryEntry] {
        let all = try models(names: wanted)
        var shownUnder = Set<String>()
        var entries: [RegistryEntry] = []
        for model in all where model.isEnsemble {
            let runs = Set(model.sourceRunIds)
            let folds = all.filter { !$0.isEnsemble && $0.name == model.name && $0.sourceRunIds.count == 1
                                     && runs.contains($0.sourceRunIds[0]) }
            shownUnder.formUnion(folds.map(\.id))
            entries.append(RegistryEntry(model: model, folds: folds))
        }
        for model in all where !model.isEnsemble && !shownUnder.contains(model.id) {
            entries.append(RegistryEntry(model: model, folds: []))
        }
        return entries.sorted { ($0.model.name, $0.model.version) < ($1.model.name, $1.model.version) }
    }

    /// Removes a registered version: model.json first (the version stops being complete at once, so no reader
    /// resolves a half-removed model), then its folder. The ensembles that hold copies of a fold's checkpoint
    /// are not touched.
    public func remove(_ modelID: String) throws -> RegisteredModel {
        let model = try resolve(modelID)
        let json = model.folder + "/model.json"
        guard unlink(json) == 0 else {
            throw IEError.failure("cannot remove model.json: \(String(cString: strerror(errno)))", file: json)
        }
        do { try FileManager.default.removeItem(atPath: model.folder) } catch {
            throw IEError.failure("model \(model.id) is no longer registered but its folder could not be removed: "
                                  + error.localizedDescription, file: model.folder)
        }
        return model
    }
}

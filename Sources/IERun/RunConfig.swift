import Foundation
import IECore
import IEConfig

/// The model config of a run and its split subjects, shared by every tool that takes `--run=RUN`.
extension RunDirectory {
    /// Config overrides given to later tools of a run (e.g. `ie-train --run=R --num_epochs=5`), kept so that
    /// ie-infer and ie-metrics of the same run see the same parameters.
    public var overridesFile: String { layout.configOverrides }

    /// The run's model config: its model, the overrides on the command line that created it, the overrides
    /// recorded by later tools, then `extra` (later wins). With `record`, `extra` is added to the record (call it
    /// once the tool has checked them and is about to act: `recordOverrides`). Unless `resplit` (ie-split
    /// --run_dir), `extra` may not change the run's split (`checkSplitKept`).
    public func modelConfig(settings: Settings, extra: [String] = [], record: Bool = false, resplit: Bool = false) throws -> ModelConfig {
        let info = try readInfo()
        let flags = ConfigOverrides.split(Array(info.commandLine.dropFirst())).overrides + recordedOverrides()
        let extraOverrides = try ConfigOverrides.parse(extra)
        if !resplit && extraOverrides.contains(where: { ParameterSchema.splitParameters.contains($0.name) }) {
            let own = try ModelConfig.load(name: info.model, settings: settings, overrides: ConfigOverrides.parse(flags))
            try checkSplitKept(own: own, extra: extraOverrides, info: info, settings: settings)
        }
        let config = try ModelConfig.load(name: info.model, settings: settings, overrides: ConfigOverrides.parse(flags + extra))
        if record { try recordOverrides(extra) }
        return config
    }

    /// The `--name=value` lines of config_overrides.txt.
    func recordedOverrides() -> [String] {
        let recorded = (try? String(contentsOfFile: overridesFile, encoding: .utf8)) ?? ""
        return recorded.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    /// Adds `extra` to config_overrides.txt (relative paths made absolute). A tool calls it once it has checked the
    /// overrides and is about to act on them, never before a step that can still refuse them (SPEC §1.3).
    public func recordOverrides(_ extra: [String]) throws {
        guard !extra.isEmpty else { return }
        try AtomicFile.write((recordedOverrides() + RunDirectory.absolutePaths(in: extra)).joined(separator: "\n") + "\n", to: overridesFile)
    }

    static let datasetParameters: Set<String> = ["dataset_id", "local_dataset", "dataset_csv"]

    /// A run's subjects are ie-split's: a later tool given a split parameter (ParameterSchema.splitParameters) with
    /// a value other than the run's own would train or evaluate the old split under the new value's name, so it is
    /// refused (exit 2) naming the parameters. The same value (make passes ARGS to ie-split and ie-train alike)
    /// is accepted, lists of subjects in any order, and a dataset named another way that is the same file.
    func checkSplitKept(own: ModelConfig, extra: [ConfigOverride], info: RunInfo, settings: Settings) throws {
        var given = own
        try given.apply(extra)
        var last: [String: ConfigOverride] = [:]
        for o in extra where ParameterSchema.splitParameters.contains(o.name) { last[o.name] = o }
        func same(_ a: ConfigValue, _ b: ConfigValue) -> Bool {
            if case .strings(let x) = a, case .strings(let y) = b { return x.sorted() == y.sorted() }
            return a == b
        }
        var changed = ParameterSchema.splitParameters.filter { last[$0] != nil && !same(own.value($0), given.value($0)) }
        if changed.contains(where: RunDirectory.datasetParameters.contains), let csv = try? given.datasetCSVPath(settings: settings),
           csv == info.dataset || csv == (try? own.datasetCSVPath(settings: settings)) {
            changed.removeAll(where: RunDirectory.datasetParameters.contains)
        }
        guard !changed.isEmpty else { return }
        let flags = changed.compactMap { last[$0]?.flag }.joined(separator: " ")
        let runs = changed.map { "\($0) \(own.value($0).description)" }.joined(separator: ", ")
        throw IEError.usage("\(flags): the run's split is ie-split's (the run has \(runs)), expected the run's own value or none; "
                            + "ie-split --model=\(info.model) --run_dir=\(path) \(flags) re-splits a run that has not trained, "
                            + "ie-split --model=\(info.model) \(flags) makes a new run")
    }

    /// The parameters whose values are files or folders named relative to the working directory.
    static let pathParameters = ["local_weights_path", "local_dataset"]

    /// Overrides as recorded in the run: a relative path is made absolute, since the later tools that read the
    /// record may run in another directory (a cron job, a Slurm job, make -C).
    static func absolutePaths(in arguments: [String]) -> [String] {
        let cwd = FileManager.default.currentDirectoryPath
        func absolute(_ list: String) -> String {
            list.split(separator: ",", omittingEmptySubsequences: false).map { item -> String in
                let path = String(item)
                return path.isEmpty || path.hasPrefix("/") ? path : URL(fileURLWithPath: path, relativeTo: URL(fileURLWithPath: cwd + "/")).path
            }.joined(separator: ",")
        }
        var result: [String] = []
        var valueOf: String?   // `--name value` form: the next argument is the value
        for argument in arguments {
            if valueOf != nil { result.append(absolute(argument)); valueOf = nil; continue }
            let name = argument.hasPrefix("--") ? String(argument.dropFirst(2).prefix { $0 != "=" }) : ""
            guard pathParameters.contains(name) else { result.append(argument); continue }
            if let eq = argument.firstIndex(of: "=") {
                result.append(String(argument[...eq]) + absolute(String(argument[argument.index(after: eq)...])))
            } else {
                result.append(argument)
                valueOf = name
            }
        }
        return result
    }

    /// The dataset the run was split from (issue 11): ie-split's copy `outputs/dataset.csv` (its file paths made
    /// absolute), so `ie-split --dataset=X` is what training and evaluation read; the model config's dataset only
    /// for a run without that copy.
    public func datasetCSVPath(config: ModelConfig, settings: Settings) throws -> String {
        let copy = layout.datasetCSV
        return FileManager.default.fileExists(atPath: copy) ? copy : try config.datasetCSVPath(settings: settings)
    }

    /// Subjects of a split CSV written by ie-split (`train`, `val`, `test`), in string-sorted order.
    public func splitSubjects(_ split: String) throws -> [String] {
        let path = layout.splitCSV(split)
        guard FileManager.default.fileExists(atPath: path) else {
            throw IEError.usage("no \(split)_dataset.csv in the run, expected ie-split to have written it", file: path)
        }
        let table = try CSVTable.read(path: path)
        guard let column = table.columnIndex("subject") else {
            throw IEError.badInput("missing column subject", file: path, line: 1)
        }
        return Array(Set(table.rows.compactMap { $0.count > column ? $0[column] : nil })).sorted()
    }

    /// `outputs/epoch_NNN/<Mode>/`.
    public func epochFolder(epoch: Int, mode: String) -> String { layout.modeFolder(epoch: epoch, mode: mode) }
}

import Foundation
import IECore
import IEConfig

public enum RunStatus: String, Codable, Sendable {
    case queued, running, completed, failed
}

/// run.json (SPEC §9).
public struct RunInfo: Codable, Sendable, Equatable {
    public var id: String
    public var experiment: String
    public var model: String
    public var parent: String?
    public var children: [String]
    public var status: RunStatus
    public var error: String?
    public var commandLine: [String]
    public var gitCommit: String?
    public var gitBranch: String?
    public var host: String
    public var slurmJobId: String?
    public var created: String
    public var started: String?
    public var finished: String?
    /// The model this run registered (`Name:version`): a trained run's model, or a cross-validation parent's
    /// ensemble of its folds. Absent in run.json files written before it existed.
    public var registeredModel: String?
    /// The dataset.csv ie-split split the run from (its copy with absolute paths is outputs/dataset.csv).
    public var dataset: String?

    enum CodingKeys: String, CodingKey {
        case id, experiment, model, parent, children, status, error
        case commandLine = "command_line", gitCommit = "git_commit", gitBranch = "git_branch", host
        case slurmJobId = "slurm_job_id", created, started, finished, registeredModel = "registered_model", dataset
    }

    // Every key is always written (null when unknown), so readers can rely on the field set.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(experiment, forKey: .experiment)
        try c.encode(model, forKey: .model)
        try c.encode(parent, forKey: .parent)
        try c.encode(children, forKey: .children)
        try c.encode(status, forKey: .status)
        try c.encode(error, forKey: .error)
        try c.encode(commandLine, forKey: .commandLine)
        try c.encode(gitCommit, forKey: .gitCommit)
        try c.encode(gitBranch, forKey: .gitBranch)
        try c.encode(host, forKey: .host)
        try c.encode(slurmJobId, forKey: .slurmJobId)
        try c.encode(created, forKey: .created)
        try c.encode(started, forKey: .started)
        try c.encode(finished, forKey: .finished)
        try c.encode(registeredModel, forKey: .registeredModel)
        try c.encode(dataset, forKey: .dataset)
    }
}

/// `<runs_dir>/<experiment>/<run_id>/` with run.json, logs/ and outputs/ (SPEC §9).
public struct RunDirectory: Sendable {
    public let path: String
    public let experiment: String
    public let id: String

    public var recoveryID: RunRecoveryID { RunRecoveryID(experiment: experiment, runID: id) }
    /// Every path of the run (SPEC §9).
    public var layout: RunLayout { RunLayout(run: path) }
    public var outputs: String { layout.outputs }
    public var logs: String { layout.logs }
    public var runJSON: String { layout.runJSON }

    init(path: String, experiment: String, id: String) {
        self.path = path
        self.experiment = experiment
        self.id = id
    }

    /// Creates a new run (status queued). With `parent`, the run is the parent's cross-validation child
    /// `<parent>_<childIndex>` and is added to the parent's children.
    public static func create(runsDir: String, experiment: String, model: String, commandLine: [String] = CommandLine.arguments,
                              parent: RunDirectory? = nil, childIndex: Int? = nil, date: Date = Date()) throws -> RunDirectory {
        let experimentDir = runsDir + "/" + experiment
        try AtomicFile.createFolder(experimentDir, for: experimentDir)
        var id = ""
        var attempts = 0
        while true {
            if let parent {
                guard let k = childIndex else { throw IEError.failure("a child run needs its fold index") }
                id = RunIDs.childRunID(parent: parent.id, index: k)
            } else {
                id = RunIDs.newRunID(experiment: experiment, date: date)
            }
            // mkdir is atomic: two processes can never both create the same run.
            if mkdir(experimentDir + "/" + id, AtomicFile.folderMode) == 0 { break }
            let reason = errno
            attempts += 1
            if reason != EEXIST || parent != nil || attempts > 100 {
                throw IEError.failure("cannot create run directory: \(String(cString: strerror(reason)))", file: experimentDir + "/" + id)
            }
        }
        let run = RunDirectory(path: experimentDir + "/" + id, experiment: experiment, id: id)
        try FileManager.default.createDirectory(atPath: run.outputs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: run.logs, withIntermediateDirectories: true)
        let env = ProcessInfo.processInfo.environment
        let git = GitInfo.find(from: FileManager.default.currentDirectoryPath)
        let info = RunInfo(id: id, experiment: experiment, model: model, parent: parent?.id, children: [], status: .queued, error: nil,
                           commandLine: commandLine, gitCommit: git?.commit, gitBranch: git?.branch,
                           host: ProcessInfo.processInfo.hostName, slurmJobId: RunDirectory.slurmJobID(env),
                           created: RunIDs.isoDate(date), started: nil, finished: nil, registeredModel: nil, dataset: nil)
        try run.write(info)
        if let parent {
            try parent.update { p in if !p.children.contains(id) { p.children.append(id) } }
        }
        return run
    }

    /// The job id as squeue and scontrol name it: `<array job>_<task>` for an element of a job array (whose own
    /// SLURM_JOB_ID is a separate number), else SLURM_JOB_ID.
    public static func slurmJobID(_ env: [String: String]) -> String? {
        if let array = env["SLURM_ARRAY_JOB_ID"], let task = env["SLURM_ARRAY_TASK_ID"] { return "\(array)_\(task)" }
        return env["SLURM_JOB_ID"]
    }

    /// An existing run by recovery id.
    public static func open(runsDir: String, recoveryID: RunRecoveryID) throws -> RunDirectory {
        try open(path: runsDir + "/" + recoveryID.experiment + "/" + recoveryID.runID)
    }

    /// An existing run by folder.
    public static func open(path: String) throws -> RunDirectory {
        let standardized = URL(fileURLWithPath: path).standardizedFileURL.path
        guard FileManager.default.fileExists(atPath: RunLayout(run: standardized).runJSON) else {
            throw IEError.usage("no run here (run.json missing), expected a run directory <runs_dir>/<experiment>/<run_id>", file: standardized)
        }
        let url = URL(fileURLWithPath: standardized)
        return RunDirectory(path: standardized, experiment: url.deletingLastPathComponent().lastPathComponent, id: url.lastPathComponent)
    }

    /// The run that `folder` lies in (a run folder or one of its sub-folders, up to `<run>/outputs/epoch_NNN/<Mode>`
    /// and a subject folder below it), or nil when it is not inside a run.
    public static func enclosing(_ folder: String) -> RunDirectory? {
        var url = URL(fileURLWithPath: folder).standardizedFileURL
        for _ in 0..<5 {
            if let run = try? open(path: url.path) { return run }
            let parent = url.deletingLastPathComponent()
            if parent.path == url.path { break }
            url = parent
        }
        return nil
    }

    /// The parent run of a cross-validation child.
    public func parentRun() throws -> RunDirectory? {
        guard let p = RunIDs.parentAndIndex(of: id) else { return nil }
        return try RunDirectory.open(path: URL(fileURLWithPath: path).deletingLastPathComponent().path + "/" + p.parent)
    }

    public func readInfo() throws -> RunInfo {
        guard let data = FileManager.default.contents(atPath: runJSON) else {
            throw IEError.badInput("cannot read run.json", file: runJSON)
        }
        do { return try JSONDecoder().decode(RunInfo.self, from: data) } catch {
            throw IEError.badInput("run.json is not valid (\(error)), expected the fields of SPEC §9", file: runJSON)
        }
    }

    func write(_ info: RunInfo) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(encoder.encode(info) + Data("\n".utf8), to: runJSON)
    }

    /// Read-modify-write of run.json under an exclusive lock (parallel children update their parent), written atomically.
    public func update(_ change: (inout RunInfo) throws -> Void) throws {
        let lockPath = layout.runJSONLock
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, AtomicFile.fileMode)
        guard fd >= 0 else { throw IEError.failure("cannot open lock file: \(String(cString: strerror(errno)))", file: lockPath) }
        defer { Glibc.close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw IEError.failure("cannot lock: \(String(cString: strerror(errno)))", file: lockPath) }
        defer { flock(fd, LOCK_UN) }
        var info = try readInfo()
        try change(&info)
        try write(info)
    }

    /// `keepStarted`: a later step of the same training (the evaluation step of a multi-node job) keeps the
    /// training's start time.
    public func markRunning(date: Date = Date(), keepStarted: Bool = false) throws {
        try update {
            $0.status = .running
            $0.error = nil
            if !keepStarted || $0.started == nil { $0.started = RunIDs.isoDate(date) }
            $0.finished = nil
            if let job = RunDirectory.slurmJobID(ProcessInfo.processInfo.environment) { $0.slurmJobId = job }
        }
    }

    public func markCompleted(date: Date = Date()) throws {
        try update { $0.status = .completed; $0.error = nil; $0.finished = RunIDs.isoDate(date) }
    }

    public func markFailed(_ error: Error, tool: String? = nil, date: Date = Date()) throws {
        let text = (error as? IEError)?.description ?? "\(error)"
        try update { $0.status = .failed; $0.error = (tool.map { "\($0): " } ?? "") + text; $0.finished = RunIDs.isoDate(date) }
    }

    /// Runs a training tool's work in this run (ie-split, ie-train: they own the run's status and its
    /// started/finished times): logs to logs/<tool>.log, marks the run running, then completed, or failed with
    /// the error (which is rethrown for `runTool` to report). `completes: false` leaves the status running for
    /// tools that are one step of a longer pipeline; `keepStarted` keeps the start time of the training this
    /// step continues.
    /// The run's lock (RunLock) is held throughout; a second writer is refused before it touches anything.
    public func perform(tool: String, completes: Bool = true, keepStarted: Bool = false, _ body: () throws -> Void) throws {
        try RunLock.process.withLock(run: path, tool: tool) {
            try performLocked(tool: tool, completes: completes, keepStarted: keepStarted, body)
        }
    }

    /// `perform` for a run that may be a cross-validation fold: a fold that fails fails its parent as well, since
    /// the parent's ensemble step will never run (Slurm cancels its afterok job; make stops), so the parent must
    /// not stay `queued`. Rerunning the fold and the ensemble step completes it again.
    public func performFailingParent(tool: String, completes: Bool = true, keepStarted: Bool = false,
                                     _ body: () throws -> Void) throws {
        do {
            try perform(tool: tool, completes: completes, keepStarted: keepStarted, body)
        } catch {
            failParent(error: error)
            throw error
        }
    }

    /// Marks a fold's parent failed with the fold's error (nothing for a run that is not a fold).
    public func failParent(error: Error) {
        guard let (parentID, index) = RunIDs.parentAndIndex(of: id) else { return }
        let parentPath = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(parentID).path
        guard let parent = try? RunDirectory.open(path: parentPath) else { return }
        let text = (error as? IEError)?.description ?? "\(error)"
        try? parent.update { $0.status = .failed; $0.error = "fold \(index) (\(id)) failed: \(text)"; $0.finished = RunIDs.isoDate(Date()) }
    }

    private func performLocked(tool: String, completes: Bool, keepStarted: Bool, _ body: () throws -> Void) throws {
        try openLog(tool: tool)
        defer { closeLog() }
        try markRunning(keepStarted: keepStarted)
        do {
            try body()
        } catch {
            logError(error, tool: tool)
            try? markFailed(error, tool: tool)
            throw error
        }
        if completes { try markCompleted() }
    }

    /// Runs an evaluation tool's work on a run (ie-infer, ie-ensemble, ie-metrics): logs to logs/<tool>.log and
    /// leaves the run's times alone (they are its training's). A failure marks the run failed with the error,
    /// unless training is under way or has itself failed (that status and error stay); a later success of the
    /// same tool clears its own failure again (completed when training had finished, else queued), and a success
    /// of ie-evaluate, which reruns inference and metrics, clears theirs too. A usage error (a wrong `--epoch`, a
    /// missing option: exit 2) leaves the status alone: the command was wrong, not the run.
    /// The run's lock is held throughout, as in `perform`.
    public func performEvaluation(tool: String, _ body: () throws -> Void) throws {
        try RunLock.process.withLock(run: path, tool: tool) { try performEvaluationLocked(tool: tool, body) }
    }

    private func performEvaluationLocked(tool: String, _ body: () throws -> Void) throws {
        try openLog(tool: tool)
        defer { closeLog() }
        let prefix = tool + ": "
        do {
            try body()
        } catch {
            logError(error, tool: tool)
            if let e = error as? IEError, e.code == .usage { throw error }
            let text = (error as? IEError)?.description ?? "\(error)"
            try? update { info in
                let failedByEvaluation = info.status == .failed && RunDirectory.isEvaluationError(info.error)
                guard info.status == .completed || info.status == .queued || failedByEvaluation else { return }
                info.status = .failed
                info.error = prefix + text
            }
            throw error
        }
        try update { info in
            guard info.status == .failed, RunDirectory.isCleared(info.error, bySuccessOf: tool) else { return }
            info.status = info.finished == nil ? .queued : .completed
            info.error = nil
        }
    }

    /// The tools that run `performEvaluation`; their errors in run.json start with `<tool>: `.
    public static let evaluationTools = ["ie-infer", "ie-ensemble", "ie-metrics", "ie-evaluate"]

    /// Whether `tool` succeeding clears a recorded failure: its own, and for ie-evaluate (inference and metrics
    /// of every evaluated epoch, then the report) those of ie-infer and ie-metrics as well.
    static func isCleared(_ error: String?, bySuccessOf tool: String) -> Bool {
        guard let error else { return false }
        let covered = tool == "ie-evaluate" ? [tool, "ie-infer", "ie-metrics"] : [tool]
        return covered.contains { error.hasPrefix($0 + ": ") }
    }

    static func isEvaluationError(_ error: String?) -> Bool {
        guard let error else { return false }
        return evaluationTools.contains { error.hasPrefix($0 + ": ") }
    }

    /// Into the log file only: runTool prints the same line to stderr.
    private func logError(_ error: Error, tool: String) {
        let text = "\(tool): error: \((error as? IEError)?.description ?? "\(error)")\n"
        if let logFile = Log.logFile { StandardStream.writeBestEffort("[\(RunIDs.isoDate(Date()))] \(text)", to: logFile.fileDescriptor) }
    }

    // MARK: Logs and outputs

    /// Appends this tool's log lines to logs/<tool>.log (sets `Log.logFile`). The log is opened without following
    /// a symbolic link (a link planted in the run must not make the tool append to a file outside it), and its
    /// writes are best effort: a full disk fails the tool's real outputs with one line, not its log.
    public func openLog(tool: String) throws {
        try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
        let file = layout.log(tool: tool)
        let fd = Glibc.open(file, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, AtomicFile.fileMode)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link, expected a regular file in the run folder"
                                        : String(cString: strerror(errno))
            throw IEError.failure("cannot open log file: \(reason)", file: file)
        }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        Log.logFile = handle
        StandardStream.writeBestEffort("[\(RunIDs.isoDate(Date()))] \(tool): \(CommandLine.arguments.joined(separator: " "))\n",
                                       to: fd)
    }

    public func closeLog() {
        try? Log.logFile?.close()
        Log.logFile = nil
    }

    /// outputs/args.txt: "Arguments:" then one `\t<name:40>: <value>` line per parameter (InnerEye's format).
    public func writeArguments(_ config: ModelConfig) throws {
        try AtomicFile.write(RunDirectory.argumentsText(config), to: layout.arguments)
    }

    public static func argumentsText(_ config: ModelConfig) -> String {
        var text = "Arguments:\n"
        for (name, value) in [("model_name", config.name)] + config.orderedArguments.map({ ($0.name, $0.value) }) {
            text += "\t" + name.padding(toLength: max(40, name.count), withPad: " ", startingAt: 0) + ": " + value + "\n"
        }
        return text
    }

    /// outputs/buildinformation.json.
    public func writeBuildInformation(blas: String = "OpenBLAS") throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try AtomicFile.write(encoder.encode(BuildInformation.current(blas: blas)) + Data("\n".utf8), to: layout.buildInformation)
    }
}

/// What built the toolbox and where it runs.
public struct BuildInformation: Codable, Sendable {
    public static let toolboxVersion = Toolbox.version
    public var toolboxVersion: String
    public var gitCommit: String?
    public var gitBranch: String?
    public var buildDate: String?
    public var host: String
    public var swiftVersion: String
    public var blas: String

    enum CodingKeys: String, CodingKey {
        case toolboxVersion = "toolbox_version", gitCommit = "git_commit", gitBranch = "git_branch", buildDate = "build_date"
        case host, swiftVersion = "swift_version", blas
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(toolboxVersion, forKey: .toolboxVersion)
        try c.encode(gitCommit, forKey: .gitCommit)
        try c.encode(gitBranch, forKey: .gitBranch)
        try c.encode(buildDate, forKey: .buildDate)
        try c.encode(host, forKey: .host)
        try c.encode(swiftVersion, forKey: .swiftVersion)
        try c.encode(blas, forKey: .blas)
    }

    /// The toolbox checkout is found from the running executable (`<checkout>/.build/<config>/ie-*`); the build
    /// date is the executable's modification time.
    public static func current(blas: String) -> BuildInformation {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let git = GitInfo.find(from: URL(fileURLWithPath: exe).deletingLastPathComponent().path)
        let modified = (try? FileManager.default.attributesOfItem(atPath: exe))?[.modificationDate] as? Date
        return BuildInformation(toolboxVersion: toolboxVersion, gitCommit: git?.commit, gitBranch: git?.branch,
                                buildDate: modified.map(RunIDs.isoDate), host: ProcessInfo.processInfo.hostName,
                                swiftVersion: swiftCompilerVersion, blas: blas)
    }

    static var swiftCompilerVersion: String {
        #if compiler(>=6.4)
        return ">=6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #elseif compiler(>=6.0)
        return "6.0"
        #else
        return "<6.0"
        #endif
    }
}

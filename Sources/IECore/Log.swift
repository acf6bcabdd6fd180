import Foundation

/// Verbosity and progress, to stderr (SPEC §1.3): a bar on a terminal, one plain line per step otherwise.
public enum Log {
    public enum Level: Int, Sendable { case quiet = 0, normal = 1, verbose = 2 }
    nonisolated(unsafe) public static var level: Level = .normal
    nonisolated(unsafe) public static var tool: String = "ie"
    /// Extra sink (a run's logs/<tool>.log) that receives every line, whatever the verbosity.
    nonisolated(unsafe) public static var logFile: FileHandle?
    /// Put before every line, e.g. "[rank 1] " for the worker ranks of data-parallel training, whose lines
    /// share one Slurm log with rank 0's.
    nonisolated(unsafe) public static var linePrefix = ""
    private static let lock = NSLock()
    /// Messages `warningOnce` has already shown in this process.
    nonisolated(unsafe) private static var shownOnce = Set<String>()

    public static var stderrIsTerminal: Bool { isatty(2) == 1 }

    public static func info(_ message: String) {
        emit(message, show: level.rawValue >= Level.normal.rawValue)
    }
    public static func verbose(_ message: String) {
        emit(message, show: level == .verbose)
    }
    public static func warning(_ message: String) {
        emit("\(tool): warning: \(message)", show: true)
    }

    /// A warning shown at most once per process (e.g. a setting that falls back, read by every model built);
    /// true when this call showed it.
    @discardableResult
    public static func warningOnce(_ message: String) -> Bool {
        lock.lock()
        let first = shownOnce.insert(message).inserted
        lock.unlock()
        if first { warning(message) }
        return first
    }

    /// Forgets which `warningOnce` messages were shown (for tests that check the warning itself).
    public static func forgetWarningsShownOnce() {
        lock.lock(); defer { lock.unlock() }
        shownOnce.removeAll()
    }

    private static func emit(_ message: String, show: Bool) {
        lock.lock(); defer { lock.unlock() }
        let line = linePrefix + message + "\n"
        if show { StandardStream.writeBestEffort(line) }
        if let logFile {
            let stamp = ISO8601DateFormatter().string(from: Date())
            StandardStream.writeBestEffort("[\(stamp)] \(line)", to: logFile.fileDescriptor)
        }
    }
}

/// Progress over a known number of steps.
public final class Progress {
    let label: String
    let total: Int
    var done = 0
    let start = Date()
    let bar: Bool
    /// Seconds between two reports (0: every step). Fine-grained steps (sliding-window patches) would otherwise
    /// write thousands of log lines or redraw the bar faster than anyone reads it.
    let interval: TimeInterval
    var lastReport: Date?

    public init(_ label: String, total: Int, every interval: TimeInterval = 0) {
        self.label = label
        self.total = max(total, 1)
        self.bar = Log.stderrIsTerminal && Log.level != .quiet
        self.interval = interval
        // The first report comes after one interval, when there is an ETA worth reading.
        lastReport = interval > 0 ? start : nil
    }

    public func step(_ detail: String = "") {
        advance(to: done + 1, detail: detail)
    }

    /// `done` steps of `total` are finished; reported unless the last report is less than `interval` ago (the
    /// last step is always reported).
    public func advance(to done: Int, detail: String = "") {
        self.done = done
        let now = Date()
        if interval > 0, done < total, let last = lastReport, now.timeIntervalSince(last) < interval { return }
        lastReport = now
        let elapsed = now.timeIntervalSince(start)
        let remaining = done < total ? String(format: ", ETA %.0fs", elapsed / Double(done) * Double(total - done)) : ""
        if bar {
            let width = 30
            let filled = width * done / total
            let text = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] \(done)/\(total) \(String(format: "%.1fs", elapsed))\(remaining) \(detail)"
            StandardStream.writeBestEffort(text + (done >= total ? "\n" : ""))
            if let f = Log.logFile { StandardStream.writeBestEffort("\(label) \(done)/\(total) \(detail)\n", to: f.fileDescriptor) }
        } else {
            Log.info("\(label) \(done)/\(total) \(String(format: "%.1fs", elapsed))\(remaining) \(detail)")
        }
    }
}

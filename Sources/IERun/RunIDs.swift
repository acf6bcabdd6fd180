import Foundation
import IECore

/// Experiment names, run ids and run recovery ids (SPEC §9).
public enum RunIDs {
    /// `--experiment`, else the git branch of `workingDirectory` with `/` replaced by `_`, else `default`.
    public static func experimentName(explicit: String?, workingDirectory: String = FileManager.default.currentDirectoryPath) throws -> String {
        if let explicit {
            guard isValidName(explicit) else {
                throw IEError.usage("invalid experiment name '\(explicit)', expected letters, digits, '.', '-' or '_'")
            }
            return explicit
        }
        if let branch = GitInfo.find(from: workingDirectory)?.branch {
            let name = sanitize(branch.replacingOccurrences(of: "/", with: "_"))
            if !name.isEmpty { return name }
        }
        return "default"
    }

    static func isValidName(_ s: String) -> Bool {
        !s.isEmpty && s != "." && s != ".." && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
    }

    static func sanitize(_ s: String) -> String {
        String(s.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "_" })
    }

    /// `<experiment>_<YYYYMMDDTHHMMSSZ>_<4 hex>`.
    public static func newRunID(experiment: String, date: Date = Date(), suffix: UInt16 = UInt16.random(in: 0...UInt16.max)) -> String {
        "\(experiment)_\(timestamp(date))_\(String(format: "%04x", suffix))"
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    public static func timestamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return f.string(from: date)
    }

    /// ISO 8601 UTC with seconds, for run.json and model.json.
    public static func isoDate(_ date: Date) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: date)
    }

    /// Cross-validation child k of `parent`: `<parent>_<k>`.
    public static func childRunID(parent: String, index: Int) -> String { "\(parent)_\(index)" }

    private static let childPattern = try! NSRegularExpression(pattern: "^(.+_[0-9]{8}T[0-9]{6}Z_[0-9a-f]{4})_([0-9]+)$")

    /// The parent of a cross-validation child (the id without its final `_<k>`) and k; nil for a plain run.
    public static func parentAndIndex(of runID: String) -> (parent: String, index: Int)? {
        let range = NSRange(runID.startIndex..., in: runID)
        guard let m = childPattern.firstMatch(in: runID, range: range),
              let p = Range(m.range(at: 1), in: runID), let k = Range(m.range(at: 2), in: runID), let index = Int(runID[k]) else { return nil }
        return (String(runID[p]), index)
    }
}

/// `<experiment>:<run_id>`.
public struct RunRecoveryID: Sendable, Equatable, CustomStringConvertible {
    public var experiment: String
    public var runID: String

    public init(experiment: String, runID: String) {
        self.experiment = experiment
        self.runID = runID
    }

    /// Parses `EXPERIMENT:RUN_ID` (exit 2 on anything else).
    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, RunIDs.isValidName(parts[0]), RunIDs.isValidName(parts[1]) else {
            throw IEError.usage("invalid run recovery id '\(text)', expected EXPERIMENT:RUN_ID such as main:main_20260101T120000Z_1a2b")
        }
        self.init(experiment: parts[0], runID: parts[1])
    }

    public var description: String { "\(experiment):\(runID)" }

    /// The parent's recovery id when this is a cross-validation child.
    public var parent: RunRecoveryID? {
        RunIDs.parentAndIndex(of: runID).map { RunRecoveryID(experiment: experiment, runID: $0.parent) }
    }
}

/// Branch and commit of a git checkout, read from `.git` directly (no git process; works for worktrees).
public struct GitInfo: Sendable {
    public var branch: String?
    public var commit: String?

    /// Looks for `.git` in `directory` and its parents.
    public static func find(from directory: String) -> GitInfo? {
        var url = URL(fileURLWithPath: directory).standardizedFileURL
        let fm = FileManager.default
        while true {
            let dotGit = url.appendingPathComponent(".git").path
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dotGit, isDirectory: &isDir) {
                var gitDir = dotGit
                if !isDir.boolValue {
                    // A worktree or submodule: ".git" is a file "gitdir: <path>".
                    guard let text = try? String(contentsOfFile: dotGit, encoding: .utf8),
                          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("gitdir:") }) else { return nil }
                    let p = line.dropFirst("gitdir:".count).trimmingCharacters(in: .whitespaces)
                    gitDir = p.hasPrefix("/") ? p : url.appendingPathComponent(p).standardizedFileURL.path
                }
                return read(gitDir: gitDir)
            }
            let parent = url.deletingLastPathComponent()
            if parent.path == url.path { return nil }
            url = parent
        }
    }

    static func read(gitDir: String) -> GitInfo {
        var info = GitInfo()
        guard let head = try? String(contentsOfFile: gitDir + "/HEAD", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) else { return info }
        var commonDir = gitDir
        if let c = try? String(contentsOfFile: gitDir + "/commondir", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) {
            commonDir = c.hasPrefix("/") ? c : URL(fileURLWithPath: gitDir).appendingPathComponent(c).standardizedFileURL.path
        }
        if head.hasPrefix("ref:") {
            let ref = head.dropFirst(4).trimmingCharacters(in: .whitespaces)
            if ref.hasPrefix("refs/heads/") { info.branch = String(ref.dropFirst("refs/heads/".count)) }
            for dir in [gitDir, commonDir] {
                if let c = try? String(contentsOfFile: dir + "/" + ref, encoding: .utf8) {
                    info.commit = c.trimmingCharacters(in: .whitespacesAndNewlines)
                    break
                }
            }
            if info.commit == nil, let packed = try? String(contentsOfFile: commonDir + "/packed-refs", encoding: .utf8) {
                for line in packed.split(separator: "\n") where line.hasSuffix(" " + ref) {
                    info.commit = String(line.prefix(while: { $0 != " " }))
                }
            }
        } else {
            info.commit = head   // detached HEAD
        }
        return info
    }
}

import Foundation
import IECore

/// One writer per run folder (issue 11): every tool that writes into a run (ie-train, ie-infer, ie-ensemble,
/// ie-metrics) holds an exclusive `flock` on `<run>/.lock` while it works. The kernel releases it on any exit,
/// SIGKILL included, so a lock never outlives its holder; the file itself stays (removing it would let two
/// writers lock two different files). The holder writes its pid, host and tool into the file so that a second
/// writer's error can name it. Nested steps of one process on the same run (a cross-validation's ensemble step
/// evaluating the parent) share the lock.
public final class RunLock: @unchecked Sendable {
    public static let fileName = RunLayout.lockFileName

    private let guardLock = NSLock()
    /// Held locks of this process: run folder path -> (descriptor, nesting depth).
    private var held: [String: (fd: Int32, depth: Int)] = [:]

    /// The process's lock table: flock locks belong to the process's open file descriptions, so one table per
    /// process is what the kernel's locks mean.
    public static let process = RunLock()

    /// Runs `body` holding the run's lock; throws naming the holder when another process has it.
    public func withLock<T>(run path: String, tool: String, _ body: () throws -> T) throws -> T {
        try acquire(run: path, tool: tool)
        defer { release(run: path) }
        return try body()
    }

    func acquire(run path: String, tool: String) throws {
        guardLock.lock(); defer { guardLock.unlock() }
        if let entry = held[path] {
            held[path] = (entry.fd, entry.depth + 1)
            return
        }
        let lockPath = RunLayout(run: path).lock
        // O_NOFOLLOW: a link planted as the lock file must not make the tool truncate a file outside the run.
        let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, AtomicFile.fileMode)
        guard fd >= 0 else {
            let reason = errno == ELOOP ? "it is a symbolic link, expected a regular file in the run folder"
                                        : String(cString: strerror(errno))
            throw IEError.failure("cannot open the run's lock file: \(reason)", file: lockPath)
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = RunLock.holder(fd: fd)
            Glibc.close(fd)
            if reason == EWOULDBLOCK {
                throw IEError.failure("the run is in use by \(holder ?? "another process"), expected one writer at a time "
                                      + "(wait for it to finish, or stop it)", file: path)
            }
            throw IEError.failure("cannot lock the run: \(String(cString: strerror(reason)))", file: lockPath)
        }
        let host = ProcessInfo.processInfo.hostName
        let text = "\(tool) pid \(getpid()) on host \(host) since \(RunIDs.isoDate(Date()))\n"
        // Best effort: the lock is the flock, the text only names its holder.
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        held[path] = (fd, 1)
    }

    func release(run path: String) {
        guardLock.lock(); defer { guardLock.unlock() }
        guard let entry = held[path] else { return }
        if entry.depth > 1 {
            held[path] = (entry.fd, entry.depth - 1)
            return
        }
        held[path] = nil
        flock(entry.fd, LOCK_UN)
        Glibc.close(entry.fd)
    }

    /// Whether a process (of this host, or one whose file system shares flock locks) holds the run's lock now:
    /// a shared lock that cannot be taken means a writer is at work. A missing lock file means no writer.
    public static func isHeld(run path: String) -> Bool {
        let fd = Glibc.open(RunLayout(run: path).lock, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { Glibc.close(fd) }
        guard flock(fd, LOCK_SH | LOCK_NB) == 0 else { return errno == EWOULDBLOCK }
        flock(fd, LOCK_UN)
        return false
    }

    /// The holder's line of the lock file (at most 512 bytes), nil when it has not written it yet.
    static func holder(fd: Int32) -> String? {
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = pread(fd, &buffer, buffer.count, 0)
        guard count > 0 else { return nil }
        let line = String(decoding: buffer[0..<count], as: UTF8.self).split(separator: "\n").first.map(String.init)
        return line.flatMap { $0.isEmpty ? nil : $0 }
    }
}

import Foundation

/// Runs helper programs (gnuplot, squeue) with a clean signal state, and keeps what a termination signal must not
/// leave behind: the children still running and the scratch folders (TerminationCleanup).
///
/// Not Foundation's Process: its children inherit the signal mask of the thread that starts them, and a plot drawn
/// from a libdispatch worker thread (which blocks almost every signal) started gnuplot with SIGTERM, SIGINT and
/// SIGHUP blocked, so that nothing but SIGKILL could stop it. Here every child starts with an empty mask and
/// default dispositions, in a process group of its own (so that stopping it stops whatever it started).
public enum ChildProcess {
    public struct Output: Sendable {
        /// The exit status, or 128 + the signal that ended the child.
        public var status: Int32
        public var stdout: String
        public var stderr: String
        /// True when the child was killed at `timeout`.
        public var timedOut: Bool
    }

    /// Runs `executable` (a path) with `arguments`, stdin from /dev/null (or the text `stdin`, through a private
    /// temporary file), and collects stdout and stderr. With `currentDirectory`, the child runs there. With
    /// `timeout`, the child's process group is killed (SIGKILL) once that many seconds have passed, and what it
    /// wrote so far is returned with `timedOut`.
    public static func run(_ executable: String, _ arguments: [String], currentDirectory: String? = nil,
                           stdin: String? = nil, timeout: TimeInterval? = nil) throws -> Output {
        var stdinFile: String?
        if let stdin {
            var template = Array((URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("ie-stdin-XXXXXX").path).utf8CString)
            let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw IEError.failure("cannot create a temporary file for \(executable)'s input: \(String(cString: strerror(errno)))") }
            let path = String(cString: template)
            stdinFile = path
            let bytes = Array(stdin.utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
            guard written == bytes.count else {
                unlink(path)
                throw IEError.failure("cannot write \(executable)'s input to \(path)")
            }
        }
        defer { if let stdinFile { unlink(stdinFile) } }
        var argv = [executable] + arguments
        var program = executable
        if let currentDirectory {
            // posix_spawn has no chdir action that Swift imports (glibc's addchdir_np is a GNU extension): a shell
            // changes folder and execs the program, which keeps the process id and so the cleanup's hold on it.
            program = "/bin/sh"
            argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", currentDirectory] + argv
        }
        let (pid, out, err) = try TerminationCleanup.spawn(program, argv, stdinFile: stdinFile)
        var streams = [(fd: out, data: Data()), (fd: err, data: Data())]
        let deadline = timeout.map { Date().addingTimeInterval($0) }
        var timedOut = false
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        // Both pipes are read in one poll loop, so a chatty child cannot block on a full pipe.
        while streams.contains(where: { $0.fd >= 0 }) {
            var fds = streams.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            var wait: Int32 = -1
            if let deadline { wait = Int32(max(0, min(deadline.timeIntervalSinceNow * 1000, 1e6)).rounded(.up)) }
            let ready = poll(&fds, nfds_t(fds.count), wait)
            if ready < 0 {
                if errno == EINTR { continue }
                break
            }
            if ready == 0 {
                timedOut = true
                kill(-pid, SIGKILL)
                break
            }
            for i in streams.indices where streams[i].fd >= 0 && fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(streams[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    streams[i].data.append(contentsOf: buffer[0..<n])
                } else if n == 0 || errno != EINTR {
                    close(streams[i].fd)
                    streams[i].fd = -1
                }
            }
        }
        for stream in streams where stream.fd >= 0 { close(stream.fd) }
        let status = TerminationCleanup.wait(pid)
        return Output(status: status, stdout: String(decoding: streams[0].data, as: UTF8.self),
                      stderr: String(decoding: streams[1].data, as: UTF8.self), timedOut: timedOut)
    }
}

/// What a termination signal (SIGTERM, SIGINT, SIGHUP) must not leave behind in the tools that start helper
/// programs (ie-report, ie-metrics, ie-evaluate: gnuplot and its `$TMPDIR/ie-gnuplot-<pid>-*` folder): once
/// `install` has run, such a signal stops every running child (SIGTERM to its process group, SIGKILL after a
/// second), removes every registered scratch folder and exits with 128 + the signal.
///
/// No thread runs a signal handler (the rule of IETrain.StopSignal, docs/DESIGN.md "Stop signals"): `install`
/// blocks the signals on the main thread before any other thread exists, every later thread inherits the mask,
/// and a Dispatch signal source reads them from a signalfd and does the cleanup as ordinary code.
public enum TerminationCleanup {
    public static let signals: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var children: Set<pid_t> = []
    nonisolated(unsafe) private static var folders: [Int: String] = [:]
    nonisolated(unsafe) private static var nextToken = 0

    /// Call first in a tool's main, on the main thread, before anything starts a thread.
    public static func install() {
        SignalReader.start(signals) { terminate(signal: $0) }
    }

    /// The lock is taken and never given back: no child starts and no waiter carries on (a waiter whose gnuplot
    /// was just stopped would report "gnuplot failed" and exit 1) while the process ends.
    static func terminate(signal sig: Int32) -> Never {
        lock.lock()
        for pid in children { kill(-pid, SIGTERM) }
        let deadline = Date().addingTimeInterval(1)
        for pid in children {
            // A child the waiting thread reaped already answers ECHILD.
            var status: Int32 = 0
            while waitpid(pid, &status, WNOHANG) == 0 {
                if Date() >= deadline { kill(-pid, SIGKILL); _ = waitpid(pid, &status, 0); break }
                usleep(10_000)
            }
        }
        for folder in folders.values { try? FileManager.default.removeItem(atPath: folder) }
        _exit(128 + sig)
    }

    /// Starts `argv` (argv[0] = `path`) with an empty signal mask, default dispositions and its own process
    /// group, stdin from `stdinFile` (default /dev/null), stdout and stderr into pipes; returns the child and the
    /// pipes' read ends.
    static func spawn(_ path: String, _ argv: [String], stdinFile: String? = nil) throws -> (pid_t, Int32, Int32) {
        lock.lock()
        defer { lock.unlock() }
        var out: [Int32] = [-1, -1], err: [Int32] = [-1, -1]
        guard pipe(&out) == 0 else { throw IEError.failure("cannot run \(path): \(String(cString: strerror(errno)))") }
        guard pipe(&err) == 0 else {
            let reason = String(cString: strerror(errno))
            out.forEach { close($0) }
            throw IEError.failure("cannot run \(path): \(reason)")
        }
        // Close-on-exec while the lock is held, so no other child started here inherits them.
        for fd in out + err { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        defer { close(out[1]); close(err[1]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, stdinFile ?? "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        let cArguments = argv.map { strdup($0) } + [nil]
        defer { cArguments.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, cArguments, environ)
        guard rc == 0 else {
            close(out[0]); close(err[0])
            throw IEError.failure("cannot run \(path): \(String(cString: strerror(rc)))")
        }
        children.insert(pid)
        return (pid, out[0], err[0])
    }

    /// Waits for a child of `spawn` and returns its exit status (128 + signal when a signal ended it).
    static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        var result: pid_t
        repeat { result = waitpid(pid, &status, 0) } while result < 0 && errno == EINTR
        lock.lock()
        children.remove(pid)
        lock.unlock()
        // The <sys/wait.h> macros are not imported: the low 7 bits are the terminating signal, 0 for an exit.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Creates a new folder `<$TMPDIR>/<prefix>-<pid>-<random>`, runs `body` with its path and removes it
    /// afterwards, and also when a termination signal ends the process meanwhile. A folder that cannot be created
    /// is one error naming it and the reason.
    public static func withScratchFolder<T>(prefix: String, _ body: (String) throws -> T) throws -> T {
        let parent = FileManager.default.temporaryDirectory.path
        let folder = parent + "/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        lock.lock()
        let created = mkdir(folder, 0o700) == 0
        let reason = String(cString: strerror(errno))
        var token = 0
        if created {
            nextToken += 1
            token = nextToken
            folders[token] = folder
        }
        lock.unlock()
        guard created else {
            throw IEError.failure("cannot create a scratch folder there (\(reason)), expected a writable temporary folder "
                                  + "(set TMPDIR)", file: parent)
        }
        defer {
            try? FileManager.default.removeItem(atPath: folder)
            lock.lock()
            folders[token] = nil
            lock.unlock()
        }
        return try body(folder)
    }
}

import Foundation

/// Writes and reads of the standard streams and log files through POSIX calls. Foundation's `FileHandle.write` and
/// `readDataToEndOfFile` trap on a closed or full stream (`ie-stats ... >/dev/full`, `<&-`); these report it as an
/// `IEError` instead, so a tool fails with one line and exit 1 rather than a crash or a silent exit 0.
public enum StandardStream {
    /// A tool started with stdin, stdout or stderr closed (`>&-`, `2>&-`) would be given that descriptor number by
    /// the first file it opens (a run's .lock, its log) and then write its output or messages into that file. Each
    /// closed one is taken by /dev/null opened the wrong way round (stdin write-only, stdout and stderr read-only),
    /// so the number is used up and every read or write on the closed stream still fails with EBADF, as before.
    public static func occupyClosedDescriptors() {
        for fd in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", fd == STDIN_FILENO ? O_WRONLY : O_RDONLY)
            guard opened >= 0 else { continue }
            if opened != fd {
                dup2(opened, fd)
                close(opened)
            }
        }
    }

    /// Writes all of `text` to `fd` (retrying short writes and EINTR); throws `IEError.failure` naming the stream.
    public static func write(_ text: String, to fd: Int32 = STDOUT_FILENO, name: String = "standard output") throws {
        try writeAll(Data(text.utf8), to: fd, name: name)
    }

    public static func writeAll(_ data: Data, to fd: Int32, name: String) throws {
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, base + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw IEError.failure("cannot write to \(name): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }

    /// Writes to stderr or a log file where a failure has nowhere to be reported: it is dropped.
    public static func writeBestEffort(_ text: String, to fd: Int32 = STDERR_FILENO) {
        try? writeAll(Data(text.utf8), to: fd, name: "standard error")
    }

    /// The bytes of the file at `path`, or one error (bad input, exit 3) that says why not: a folder, a missing
    /// file, no permission (FileManager.contents(atPath:) only answers nil). `expected` ends the message.
    public static func readFile(atPath path: String, expected: String) throws -> Data {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw IEError.badInput("cannot read: is a directory, expected \(expected)", file: path)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw IEError.badInput("cannot read: \(String(cString: strerror(errno))), expected \(expected)", file: path)
        }
        defer { close(fd) }
        do { return try readAll(from: fd, name: "it") } catch let error as IEError {
            throw IEError.badInput(error.message + ", expected \(expected)", file: path)
        }
    }

    /// Reads `fd` to its end; throws `IEError.failure` for a closed or unreadable stream.
    public static func readAll(from fd: Int32 = STDIN_FILENO, name: String = "standard input") throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Foundation.read(fd, $0.baseAddress, $0.count) }
            if n == 0 { return data }
            if n < 0 {
                if errno == EINTR { continue }
                throw IEError.failure("cannot read \(name): \(String(cString: strerror(errno)))")
            }
            data.append(contentsOf: buffer[0..<n])
        }
    }
}

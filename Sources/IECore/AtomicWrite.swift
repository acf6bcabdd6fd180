import Foundation

/// Atomic file output: write to a temporary file in the same folder, fsync, then rename over the target,
/// so a reader never sees a half-written file and a killed process leaves the old file intact.
/// Permissions: new files are 0666 and folders 0777 less the user's umask, as `touch` and `mkdir` make them (a group
/// that shares runs sets umask 002), and a file that is replaced keeps the permissions it had (an administrator's
/// `chmod g+w` survives the next report).
public enum AtomicFile {
    /// The permission bits for a new file and a new folder; the umask is applied by the kernel.
    public static let fileMode: mode_t = 0o666, folderMode: mode_t = 0o777

    public static func write(_ data: Data, to path: String) throws {
        // An existing device, FIFO or socket (`-o /dev/stdout`, a named pipe a reader waits on) is written as it
        // is: renaming a file over it would replace the device node or leave the reader waiting forever.
        // So is anything under /dev or /proc (`-o /dev/stdout` redirected to a file is a regular file, but a
        // temporary file renamed over /dev/stdout would replace the link itself, as root).
        var existing = stat()
        let exists = stat(path, &existing) == 0
        if exists, (existing.st_mode & S_IFMT) != S_IFDIR,
           !isRegularFile(existing.st_mode) || path.hasPrefix("/dev/") || path.hasPrefix("/proc/") {
            return try writeInPlace(data, to: path)
        }
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        try createFolder(dir, for: path)
        // A short hidden name: the target's own name may already be near the 255-byte limit.
        let tmp = dir + "/.tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fileMode)
        guard fd >= 0 else {
            throw IEError.failure("cannot create a temporary file in its folder: \(String(cString: strerror(errno)))", file: path)
        }
        // The file being replaced keeps its permission bits (stat'ed above).
        if exists && isRegularFile(existing.st_mode) { fchmod(fd, existing.st_mode & 0o7777) }
        var failure: Int32 = 0
        if !writeAll(data, to: fd, failure: &failure), failure == 0 { failure = EIO }
        if failure == 0, fsync(fd) != 0 { failure = errno }
        close(fd)
        guard failure == 0 else {
            unlink(tmp)
            throw IEError.failure("write failed: \(String(cString: strerror(failure)))", file: path)
        }
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw IEError.failure("cannot rename temporary file into place: \(reason)", file: path)
        }
    }

    static func isRegularFile(_ mode: mode_t) -> Bool { (mode & S_IFMT) == S_IFREG }

    /// The file being replaced keeps its permission bits: the temporary file that takes its place (written by a
    /// library through `temporaryPath`) gets them.
    static func keepPermissions(of path: String, on temporary: String) {
        var existing = stat()
        guard lstat(path, &existing) == 0, isRegularFile(existing.st_mode) else { return }
        chmod(temporary, existing.st_mode & 0o7777)
    }

    /// The output's folder, created as needed (each missing level with mkdir); a failure (a regular file in the
    /// way, no permission) is one line naming the output and the reason, not Foundation's NSError text.
    public static func createFolder(_ dir: String, for path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw IEError.failure(dir == path ? "it exists and is not a folder, expected a folder to write into"
                                                  : "cannot write into \(dir): it is not a folder", file: path)
            }
            return
        }
        let parent = (dir as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != dir { try createFolder(parent, for: path) }
        guard mkdir(dir, folderMode) == 0 || errno == EEXIST else {
            let reason = String(cString: strerror(errno))
            throw IEError.failure(dir == path ? "cannot create this folder: \(reason)" : "cannot create its folder \(dir): \(reason)", file: path)
        }
    }

    /// Writes a device or FIFO directly (no temporary file can stand in for it).
    static func writeInPlace(_ data: Data, to path: String) throws {
        // The process's own streams are written through their descriptors (reopening /dev/stdout would start at
        // offset 0 of a file the shell opened for appending).
        if let own = ["/dev/stdout": STDOUT_FILENO, "/dev/stderr": STDERR_FILENO, "/dev/fd/1": STDOUT_FILENO,
                      "/dev/fd/2": STDERR_FILENO, "/proc/self/fd/1": STDOUT_FILENO, "/proc/self/fd/2": STDERR_FILENO][path] {
            var failure: Int32 = 0
            guard writeAll(data, to: own, failure: &failure) else {
                throw IEError.failure("write failed: \(String(cString: strerror(failure == 0 ? EIO : failure)))", file: path)
            }
            return
        }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { throw IEError.failure("cannot open for writing: \(String(cString: strerror(errno)))", file: path) }
        defer { close(fd) }
        var failure: Int32 = 0
        guard writeAll(data, to: fd, failure: &failure) else {
            throw IEError.failure("write failed: \(String(cString: strerror(failure == 0 ? EIO : failure)))", file: path)
        }
    }

    /// All of `data` to `fd`, retrying short writes and EINTR; false with the errno in `failure` otherwise.
    static func writeAll(_ data: Data, to fd: Int32, failure: inout Int32) -> Bool {
        data.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return true }
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, base + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = n < 0 ? errno : 0; return false }
                offset += n
            }
            return true
        }
    }

    public static func write(_ text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }

    /// A temporary path beside `path`, for writers (libnifti, libpng) that must write a file themselves;
    /// call `commit` to rename it into place.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        // Keep the extension so that libraries choosing the format by suffix (.nii.gz) still do, but not the
        // whole name, which may already be near the 255-byte limit.
        let name = url.lastPathComponent
        let suffix = name.firstIndex(of: ".").map { String(name[$0...]) }.flatMap { $0.utf8.count <= 16 ? $0 : nil }
            ?? (url.pathExtension.isEmpty ? "" : "." + url.pathExtension)
        return dir + "/.tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))\(suffix)"
    }

    public static func commit(temporary: String, to path: String) throws {
        keepPermissions(of: path, on: temporary)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw IEError.failure("cannot rename temporary file into place: \(reason)", file: path)
        }
    }
}

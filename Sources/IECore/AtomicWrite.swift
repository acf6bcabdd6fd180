import Foundation

/// Atomic file output: write to a temporary file in the same folder, fsync, then rename over the target,
/// so a reader never sees a half-written file and a killed process leaves the old file intact.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let tmp = dir + "/.\(url.lastPathComponent).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw IEError.failure("cannot create temporary file: \(String(cString: strerror(errno)))", file: tmp) }
        var ok = true
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { ok = false; break }
                offset += n
            }
        }
        if ok { ok = fsync(fd) == 0 }
        close(fd)
        guard ok else {
            unlink(tmp)
            throw IEError.failure("write failed: \(String(cString: strerror(errno)))", file: path)
        }
        guard rename(tmp, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(tmp)
            throw IEError.failure("cannot rename temporary file into place: \(reason)", file: path)
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
        // Keep the extension so that libraries choosing the format by suffix (.nii.gz) still do.
        return dir + "/.tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max)).\(url.lastPathComponent)"
    }

    public static func commit(temporary: String, to path: String) throws {
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw IEError.failure("cannot rename temporary file into place: \(reason)", file: path)
        }
    }
}

import Foundation
import IECore

/// Draws PNGs with gnuplot (pngcairo) from data files we write: one process per plot, in a scratch folder,
/// the result moved into place atomically.
public enum Gnuplot {
    /// `$IE_GNUPLOT`, else `gnuplot` on PATH.
    public static func executable() -> String? {
        let env = ProcessInfo.processInfo.environment
        if let explicit = env["IE_GNUPLOT"], FileManager.default.isExecutableFile(atPath: explicit) { return explicit }
        for dir in (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/gnuplot"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Quotes a string for a gnuplot script (single quotes, a quote doubled).
    public static func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "''") + "'" }

    /// Runs `body` (a script without terminal/output lines) with `dataFiles` (name -> content) in a scratch
    /// folder and returns the PNG bytes.
    public static func png(body: String, dataFiles: [String: String], width: Int = 1000, height: Int = 600) throws -> Data {
        guard let gnuplot = executable() else {
            throw IEError.failure("gnuplot not found on PATH, expected gnuplot with the pngcairo terminal "
                                  + "(Debian: apt-get install gnuplot-nox) or IE_GNUPLOT=/path/to/gnuplot")
        }
        // The scratch folder and gnuplot are TerminationCleanup's: a tool stopped by SIGTERM, SIGINT or SIGHUP
        // leaves neither behind (SPEC §11).
        return try TerminationCleanup.withScratchFolder(prefix: "ie-gnuplot") { scratch in
            let script = """
                set terminal pngcairo size \(width),\(height) noenhanced font 'sans,10'
                set output 'plot.png'
                \(body)
                unset output

                """
            for (name, content) in dataFiles.sorted(by: { $0.key < $1.key }) + [("plot.gp", script)] {
                try writeScratchFile(content, to: scratch + "/" + name)
            }
            let result = try ChildProcess.run(gnuplot, ["plot.gp"], currentDirectory: scratch)
            let output = URL(fileURLWithPath: scratch + "/plot.png")
            guard result.status == 0, let data = try? Data(contentsOf: output), !data.isEmpty else {
                let lastLine = result.stderr.split(separator: "\n").last.map(String.init) ?? "no message"
                throw IEError.failure("gnuplot failed (exit \(result.status)): \(lastLine)")
            }
            return data
        }
    }

    /// A file of the scratch folder (no fsync and rename: the folder is thrown away), or one error with the reason.
    static func writeScratchFile(_ text: String, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw IEError.failure("cannot create a file (\(String(cString: strerror(errno)))), expected a writable temporary "
                                  + "folder (set TMPDIR)", file: path)
        }
        defer { close(fd) }
        do { try StandardStream.write(text, to: fd, name: path) } catch let error as IEError {
            throw IEError.failure(error.message + ", expected a writable temporary folder (set TMPDIR)")
        }
    }
}

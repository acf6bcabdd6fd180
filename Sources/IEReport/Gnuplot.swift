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
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("ie-gnuplot-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        for (name, content) in dataFiles {
            try Data(content.utf8).write(to: scratch.appendingPathComponent(name))
        }
        let script = """
            set terminal pngcairo size \(width),\(height) noenhanced font 'sans,10'
            set output 'plot.png'
            \(body)
            unset output

            """
        try Data(script.utf8).write(to: scratch.appendingPathComponent("plot.gp"))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gnuplot)
        process.arguments = ["plot.gp"]
        process.currentDirectoryURL = scratch
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let errorText = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let output = scratch.appendingPathComponent("plot.png")
        guard process.terminationStatus == 0, let data = try? Data(contentsOf: output), !data.isEmpty else {
            let firstLine = errorText.split(separator: "\n").last.map(String.init) ?? "no message"
            throw IEError.failure("gnuplot failed (exit \(process.terminationStatus)): \(firstLine)")
        }
        return data
    }
}

import Foundation

/// One machine-readable benchmark figure: `BENCH {"figure": ..., "impl": "ie", ...}` on standard output.
/// bench/run_bench.py (`make bench`) pairs our figures with the peers' (PyTorch, MONAI, SimpleITK, the sgemm peak)
/// by (figure, threads, precision) and prints the ratios; the human-readable lines stay as they are. Values that
/// are not finite numbers are left out (JSON has none).
func benchLine(figure: String, impl: String = "ie", threads: Int, precision: String = "fp32",
               _ values: [String: Any], labels: [String: String] = [:]) {
    var object: [String: Any] = ["figure": figure, "impl": impl, "threads": threads, "precision": precision]
    for (key, value) in values {
        if let number = value as? Double, !number.isFinite { continue }
        object[key] = value
    }
    for (key, value) in labels { object[key] = value }
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
          let text = String(data: data, encoding: .utf8) else { return }
    print("BENCH " + text)
    fflush(stdout)
}

/// This process's peak resident set in MiB (VmHWM). Not getrusage's ru_maxrss alone: a child started by
/// posix_spawn (vfork) inherits its parent's high-water mark at exec, so a child would report at least that.
func peakRSSMiB() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kib = Double(line.split(separator: " ").dropFirst().first ?? "") {
        return kib / 1024
    }
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
}

import Foundation

/// One machine-readable benchmark figure: `BENCH {"figure": ..., "impl": "ie", ...}` on standard output.
/// bench/run_bench.py (`make bench`) pairs our figures with the peers' (PyTorch, MONAI, SimpleITK, the sgemm peak)
/// by (figure, threads, precision) and prints the ratios; the human-readable lines stay as they are.
func benchLine(figure: String, impl: String = "ie", threads: Int, precision: String = "fp32",
               _ values: [String: Double], labels: [String: String] = [:]) {
    var object: [String: Any] = ["figure": figure, "impl": impl, "threads": threads, "precision": precision]
    for (key, value) in values where value.isFinite { object[key] = value }
    for (key, value) in labels { object[key] = value }
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
          let text = String(data: data, encoding: .utf8) else { return }
    print("BENCH " + text)
    fflush(stdout)
}

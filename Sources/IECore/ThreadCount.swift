import Foundation

/// The thread-count rule of every tool (SPEC §12): `--threads` when given, else a positive $OMP_NUM_THREADS, else
/// every core. IENet's EngineOptions (tools that run a network) and IECommand's ThreadsOption (tools that do not
/// link the engine, e.g. ie-metrics) both call this, so the rule is written once. An unusable OMP_NUM_THREADS is
/// warned about and ignored.
public enum ThreadCount {
    public static func resolve(requested: Int?,
                               environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        if let requested, requested >= 1 { return requested }
        if let text = environment["OMP_NUM_THREADS"] {
            if let value = Int(text), value >= 1 { return value }
            Log.warning("OMP_NUM_THREADS=\(text) not understood, expected an integer >= 1; using the default")
        }
        return ProcessInfo.processInfo.activeProcessorCount
    }
}

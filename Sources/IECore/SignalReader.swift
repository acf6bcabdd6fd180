import Foundation

/// Signals taken without a handler (docs/DESIGN.md, "Stop signals"): blocked on the calling thread, which must be
/// the main thread before any other thread exists (threads inherit the mask), and read by Dispatch signal sources
/// from a signalfd, so that `handler` runs as ordinary code on a Dispatch thread and no compute thread ever gets a
/// signal frame (oneDNN's JIT kernels run with rsp in a heap workspace). Used by IETrain.StopSignal and
/// TerminationCleanup.
public enum SignalReader {
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []

    /// A thread started before main (OpenBLAS's pool) does not block them; libdispatch installs a handler for each
    /// signal it reads that blocks the signal in whichever thread takes it and passes it on to its reader, so such
    /// a thread neither dies of one nor loses it.
    /// A signal the process was started ignoring stays ignored and is not read: `nohup` (SIGHUP), `trap '' TERM`,
    /// or a non-interactive shell's background job (SIGINT) asked for that.
    public static func start(_ signals: [Int32], handler: @escaping @Sendable (Int32) -> Void) {
        let signals = signals.filter { !startedIgnoring($0) }
        var mask = sigset_t()
        sigemptyset(&mask)
        for sig in signals { sigaddset(&mask, sig) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        for sig in signals {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { handler(sig) }
            source.resume()
            // Kept for the life of the process: a released source stops reading.
            sources.append(source)
        }
    }

    /// Whether `sig`'s disposition is SIG_IGN now (inherited through exec).
    public static func startedIgnoring(_ sig: Int32) -> Bool {
        var current = sigaction()
        guard sigaction(sig, nil, &current) == 0 else { return false }
        return unsafeBitCast(current.__sigaction_handler.sa_handler, to: Int.self) == unsafeBitCast(SIG_IGN, to: Int.self)
    }
}

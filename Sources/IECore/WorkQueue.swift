import Foundation

/// Indices 0..<count handed out one at a time to whichever worker asks next (largest items first is the caller's
/// order to choose), until all are taken or `stop()` is called. ie-metrics' label-map scoring (labels) and its
/// run/folder evaluation (subjects) share it; their results land by index, so they do not depend on scheduling.
public final class WorkQueue: @unchecked Sendable {
    private let count: Int
    private var next = 0
    private var stopped = false
    private let lock = NSLock()

    public init(count: Int) { self.count = count }

    /// The next index, or nil when all are taken or the queue was stopped.
    public func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard !stopped, next < count else { return nil }
        next += 1
        return next - 1
    }

    /// No index is handed out after this (a worker failed).
    public func stop() {
        lock.lock()
        stopped = true
        lock.unlock()
    }

    /// Runs `worker` on min(threads, count) threads (at least one); each calls `take()` until it returns nil.
    public func run(threads: Int, _ worker: (WorkQueue) -> Void) {
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, count))) { _ in worker(self) }
    }
}

import Foundation
import CBLAS

/// A dense Float32 tensor: contiguous storage plus shape. Activations are laid out NCDHW (X fastest).
public struct Tensor {
    public var shape: [Int]
    public var data: [Float]

    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "Tensor: shape \(shape) does not match \(data.count) values")
        self.shape = shape
        self.data = data
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Storage that the caller promises to overwrite completely (skips the zeroing pass).
    init(uninitialized shape: [Int]) {
        self.shape = shape
        let count = shape.reduce(1, *)
        self.data = [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    public var count: Int { data.count }
    /// Batch, channels and the spatial element count of an NC... tensor.
    public var batch: Int { shape[0] }
    public var channels: Int { shape[1] }
    public var spatialCount: Int { shape.dropFirst(2).reduce(1, *) }
}

/// A trainable tensor with its accumulated gradient. `name` is the PyTorch state_dict key.
public final class Parameter {
    public let name: String
    public let shape: [Int]
    public var value: [Float]
    public var grad: [Float]

    public init(name: String, shape: [Int], value: [Float]) {
        precondition(shape.reduce(1, *) == value.count)
        self.name = name
        self.shape = shape
        self.value = value
        self.grad = [Float](repeating: 0, count: value.count)
    }

    public var count: Int { value.count }

    public func zeroGrad() {
        grad.withUnsafeMutableBufferPointer { g in
            if let base = g.baseAddress { base.update(repeating: 0, count: g.count) }
        }
    }
}

// MARK: - Threads

nonisolated(unsafe) private var configuredThreads: Int = {
    if let text = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"], let n = Int(text), n > 0 { return n }
    return 1
}()
nonisolated(unsafe) private var blasThreadsApplied = false

/// Sets the thread count used both inside GEMMs (OpenBLAS) and for our own element-wise loops.
/// The two never run at the same time, so the cores are not oversubscribed.
public func setThreads(_ count: Int) {
    configuredThreads = max(1, count)
    openblas_set_num_threads(Int32(configuredThreads))
    blasThreadsApplied = true
}

public var threadCount: Int {
    if !blasThreadsApplied { setThreads(configuredThreads) }
    return configuredThreads
}

/// Runs `body(i)` for i in 0..<count, split into at most `threadCount` contiguous chunks.
/// Each index is processed by exactly one thread, so results do not depend on scheduling.
@inline(__always)
func parallelFor(_ count: Int, minimumPerThread: Int = 1, threads requested: Int = threadCount,
                 _ body: (Int) -> Void) {
    let threads = min(requested, max(1, count / max(1, minimumPerThread)))
    if threads <= 1 || count <= 1 {
        for i in 0..<count { body(i) }
        return
    }
    withoutActuallyEscaping(body) { body in
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let start = count * t / threads
            let end = count * (t + 1) / threads
            for i in start..<end { body(i) }
        }
    }
}

// MARK: - Random numbers

/// Deterministic generator (SplitMix64) so that a seed fixes the initial weights on every machine.
public struct SeededGenerator: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
    /// Standard normal (Box-Muller).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUnit(), 1e-300)
        let u2 = nextUnit()
        return (-2 * Foundation.log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
    public mutating func nextUniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * nextUnit() }
}

// MARK: - Allocator

/// glibc serves large blocks with fresh mmap()s, so every multi-MB activation would page-fault (and the kernel
/// would zero it) on first touch, every layer, every step. Keeping large blocks on the heap and never trimming
/// it lets the next step reuse the same pages. Done once, when the first network is built.
let largeTensorAllocatorConfigured: Bool = {
    #if os(Linux)
    let mallocMmapMax: Int32 = -4, mallocTrimThreshold: Int32 = -1  // M_MMAP_MAX, M_TRIM_THRESHOLD (malloc.h)
    _ = glibcMallopt(mallocMmapMax, 0)
    _ = glibcMallopt(mallocTrimThreshold, Int32.max)
    #endif
    return true
}()

#if os(Linux)
@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

import Foundation
import CBLAS
import IECore

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

    /// The one way kernels reach a tensor's storage: its first element's address during `body`.
    @inline(__always)
    public func withPointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try data.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// The same, for writing.
    @inline(__always)
    public mutating func withMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try data.withUnsafeMutableBufferPointer { try body($0.baseAddress!) }
    }
}

/// A trainable tensor with its accumulated gradient. `name` is the PyTorch state_dict key.
public final class Parameter {
    public let name: String
    public let shape: [Int]
    public var value: [Float]
    /// The accumulated gradient, zero until something writes it: its storage is allocated on the first write, so
    /// a network used only for inference never holds one (a UNet3D f=32: 129 MB less).
    public var grad: [Float] {
        get { storedGrad.count == value.count ? storedGrad : [Float](repeating: 0, count: value.count) }
        set { storedGrad = newValue }
        _modify {
            if storedGrad.count != value.count { storedGrad = [Float](repeating: 0, count: value.count) }
            yield &storedGrad
        }
    }
    private var storedGrad: [Float] = []

    public init(name: String, shape: [Int], value: [Float]) {
        precondition(shape.reduce(1, *) == value.count)
        self.name = name
        self.shape = shape
        self.value = value
    }

    public var count: Int { value.count }

    // Storage access, as Tensor's: the value and the gradient during `body`. (Small per-channel vectors, such as
    // a bias or BatchNorm's gamma, may also be passed to a kernel's pointer argument as `parameter.value`.)

    /// The value's storage during `body`.
    func withValuePointer<R>(_ body: (UnsafePointer<Float>) -> R) -> R {
        value.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// The value's and the gradient's storage during `body` (the gradient for writing: a backward pass).
    func withPointers<R>(_ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> R) -> R {
        value.withUnsafeBufferPointer { v in grad.withUnsafeMutableBufferPointer { body(v.baseAddress!, $0.baseAddress!) } }
    }

    /// The value's storage for writing and the gradient's for reading during `body` (an optimizer step).
    func withUpdatePointers<R>(_ body: (UnsafeMutablePointer<Float>, UnsafePointer<Float>) -> R) -> R {
        grad.withUnsafeBufferPointer { g in value.withUnsafeMutableBufferPointer { body($0.baseAddress!, g.baseAddress!) } }
    }

    public func zeroGrad() {
        let n = count
        withPointers { _, g in g.update(repeating: 0, count: n) }
    }
}

// MARK: - Threads

/// Runs `body(i)` for i in 0..<count, split into at most `requested` contiguous chunks (the engine's threads).
/// Each index is processed by exactly one thread, so results do not depend on scheduling.
@inline(__always)
func parallelFor(_ count: Int, minimumPerThread: Int = 1, threads requested: Int, _ body: (Int) -> Void) {
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

/// Deterministic generator (IECore's SplitMix64) so that a seed fixes the initial weights on every machine.
public typealias SeededGenerator = SplitMix64

extension SplitMix64 {
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

/// Hands the heap's free pages back to the system (glibc's malloc_trim), once, after a model is loaded for
/// inference: the checkpoint's bytes and the replaced initial weights were freed into a heap that is otherwise
/// never trimmed, and the first forward pass would stack its activations on top of them (peak RSS).
public func releaseFreeHeapMemory() {
    #if os(Linux)
    _ = glibcMallocTrim(0)
    #endif
}

#if os(Linux)
@_silgen_name("malloc_trim")
private func glibcMallocTrim(_ pad: Int) -> Int32

@_silgen_name("mallopt")
private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
#endif

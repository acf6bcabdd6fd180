// Training data prepared one batch ahead (SPEC §4.2 "Data preparation"): while the main thread runs the step of
// batch k (forward, backward, optimizer), one worker prepares batch k+1 (crops, sampling, augmentation or the
// scalar transforms). The worker calls the same closure, for the same batches, in the same order, one at a time,
// as the sequential loop would, so whatever it consumes (the epoch's random generator) sees the same sequence and
// the results are bit-identical to preparing each batch just before its step (IENET_DATA_PREFETCH=0).
import Foundation
import IECore
import IENet

/// Produces items 0..<count with `produce`, at most one ahead of the caller, on one serial worker queue.
/// `next()` is called from one thread (the training loop); the item's error, if `produce` threw, is rethrown
/// there, for that item, after every earlier item was handed over (as in the sequential order). After an error
/// nothing more is produced. Not thread-safe for several callers.
final class BatchPrefetcher<Item>: @unchecked Sendable {
    /// How many items the prefetcher hands out.
    let count: Int
    private let produce: (Int) throws -> Item
    private let queue: DispatchQueue?
    /// The next index `next()` hands out (caller's thread only).
    private var nextIndex = 0
    /// The item in preparation on the worker: written by the worker before it signals, read after waiting.
    private var pending: (index: Int, done: DispatchSemaphore, result: ResultBox)?
    private var failed = false
    /// Seconds the caller spent in `next()`: waiting for the worker, or producing the item itself when off.
    private(set) var waitSeconds = 0.0

    private final class ResultBox: @unchecked Sendable {
        var value: Result<Item, Error>?
    }

    /// With `ahead` true, item 0 starts on the worker at once; false produces each item in `next()` (the
    /// sequential order, for comparison).
    init(count: Int, ahead: Bool, label: String, produce: @escaping (Int) throws -> Item) {
        self.count = count
        self.produce = produce
        queue = ahead ? DispatchQueue(label: "ie.prefetch.\(label)", qos: .userInitiated) : nil
        start(0)
    }

    deinit { finish() }

    /// The next item, or nil after the last; rethrows the error `produce` raised for it.
    func next() throws -> Item? {
        guard nextIndex < count, !failed else { return nil }
        let began = DispatchTime.now().uptimeNanoseconds
        let result: Result<Item, Error>
        if let job = pending, job.index == nextIndex {
            job.done.wait()
            pending = nil
            result = job.result.value ?? .failure(IEError.failure("batch \(nextIndex + 1) was not prepared, expected the worker's result"))
        } else {
            result = Result { try produce(nextIndex) }
        }
        waitSeconds += Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9
        nextIndex += 1
        if case .failure = result { failed = true } else { start(nextIndex) }
        return try result.get()
    }

    /// Waits for the item in preparation (if any) and discards it: called when the caller stops early (a stop
    /// signal, an error of its own), so that no worker runs on after the epoch.
    func finish() {
        if let job = pending {
            job.done.wait()
            pending = nil
        }
    }

    private func start(_ index: Int) {
        guard let queue, index < count, pending == nil else { return }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        let produce = self.produce
        pending = (index, done, box)
        queue.async {
            box.value = Result { try produce(index) }
            done.signal()
        }
    }
}

/// One epoch's training batches (segmentation: [CropBatch] per step; scalar models: ScalarBatch) and their producer.
struct EpochBatches<Item> {
    let epoch: Int
    let data: BatchPrefetcher<Item>
    var batches: Int { data.count }
}

/// Seconds of the training steps (from asking for the batch to the optimizer step) and the part the training
/// thread spent waiting for its data; what shows whether data preparation is hidden behind the steps.
public struct DataTiming: Sendable {
    public var steps = 0
    public var stepSeconds = 0.0
    public var waitSeconds = 0.0

    mutating func add(wait: Double, since began: UInt64) {
        steps += 1
        waitSeconds += wait
        stepSeconds += Double(DispatchTime.now().uptimeNanoseconds - began) * 1e-9
    }
}

/// One prepared batch of a scalar model: its samples, the transformed images [N, C, D, H, W], features, labels.
struct ScalarBatch {
    let samples: [ScalarSample]
    let images: Tensor
    let features: Tensor
    let labels: [Float]
}

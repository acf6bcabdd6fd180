import Foundation
import IECore
import IENet
import XCTest
@testable import IETrain

/// Training data prepared one batch ahead on a worker (SPEC §4.2): the same items in the same order as the
/// sequential loop, errors surfacing on the training thread for the batch that raised them, and training runs
/// that write the same bytes with IENET_DATA_PREFETCH on and off.
final class BatchPrefetcherTests: XCTestCase {
    struct Failure: Error, Equatable { let index: Int }

    /// A producer that consumes a shared counter (as the training loop's generator) in call order.
    func drain(ahead: Bool, count: Int, failAt: Int? = nil) -> (items: [Int], calls: [Int], error: Error?) {
        var state: UInt64 = 7
        var calls = [Int]()
        let prefetcher = BatchPrefetcher(count: count, ahead: ahead, label: "test") { k -> Int in
            calls.append(k)
            if k == failAt { throw Failure(index: k) }
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33) + k
        }
        var items = [Int]()
        do {
            while let item = try prefetcher.next() { items.append(item) }
        } catch {
            prefetcher.finish()
            return (items, calls, error)
        }
        prefetcher.finish()
        return (items, calls, nil)
    }

    func testItemsComeInTheSequentialOrder() {
        let sequential = drain(ahead: false, count: 9)
        let ahead = drain(ahead: true, count: 9)
        XCTAssertEqual(sequential.items.count, 9)
        XCTAssertEqual(ahead.items, sequential.items)
        XCTAssertEqual(ahead.calls, Array(0..<9))
        XCTAssertEqual(drain(ahead: true, count: 0).items, [])
    }

    func testAnErrorSurfacesForItsItemAfterTheEarlierOnesAndStopsProduction() {
        for ahead in [false, true] {
            let run = drain(ahead: ahead, count: 6, failAt: 3)
            XCTAssertEqual(run.items, Array(drain(ahead: false, count: 3).items), "ahead \(ahead)")
            XCTAssertEqual(run.error as? Failure, Failure(index: 3), "ahead \(ahead)")
            XCTAssertEqual(run.calls, [0, 1, 2, 3], "nothing is produced after the failing item (ahead \(ahead))")
        }
    }

    func testStoppingEarlyWaitsForTheItemInPreparation() {
        let started = DispatchSemaphore(value: 0)
        final class Flag: @unchecked Sendable { var done = false }
        let flag = Flag()
        let prefetcher = BatchPrefetcher(count: 3, ahead: true, label: "test") { k -> Int in
            if k == 1 { started.signal(); usleep(50_000); flag.done = true }
            return k
        }
        XCTAssertEqual(try prefetcher.next(), 0)
        started.wait()
        prefetcher.finish()
        XCTAssertTrue(flag.done, "finish() returned while item 1 was still being prepared")
    }

    // MARK: training with prefetch on and off

    static let shape = Shape3D(6, 12, 12)

    /// A subject with a random image, two box structures and a mask (all zeros when `emptyMask`: no crop centre).
    func subject(_ index: Int, emptyMask: Bool = false) throws -> SegmentationSubject {
        let shape = Self.shape, n = shape.count
        var rng = Xoshiro256(seed: UInt64(index), stream: "prefetch-test-subject")
        let image = (0..<n).map { _ in Float(rng.uniform(-1, 1)) }
        var a = [UInt8](repeating: 0, count: n), b = [UInt8](repeating: 0, count: n)
        let oz = index % 2, oy = index % 3, ox = (index * 2) % 4
        for z in 0..<shape.z { for y in 0..<shape.y { for x in 0..<shape.x {
            let i = shape.index(z, y, x)
            if (1 + oz..<4 + oz).contains(z) && (2 + oy..<7 + oy).contains(y) && (1 + ox..<6 + ox).contains(x) { a[i] = 1 }
            else if (2..<5).contains(z) && (8..<11).contains(y) && (7..<11).contains(x) { b[i] = 1 }
        } } }
        let mask = [UInt8](repeating: emptyMask ? 0 : 1, count: n)
        return try SegmentationSubject(id: "s\(index)", shape: shape, channels: 1, image: image, classCount: 3,
                                       labels: SegmentationSubject.oneHot(structures: [a, b], voxelCount: n), mask: mask)
    }

    func setup(prefetch: Bool, shards: Int = 1, epochs: Int = 3) -> TrainingSetup {
        var setup = TrainingSetup(modelName: "PrefetchTest", structureNames: ["a", "b"], imageChannels: 1, featureChannels: 2,
                                  cropSize: Shape3D(4, 8, 8))
        setup.downsamplingPaths = 1
        setup.batchSize = 2
        setup.numEpochs = epochs
        setup.learningRate = 1e-2
        setup.applyAugmentations = true
        setup.classWeights = [0.2, 0.4, 0.4]
        setup.saveStartEpoch = 1
        setup.saveStepEpochs = 1
        setup.shards = shards
        setup.engine = EngineOptions(threads: 1)
        setup.engine.prefetchBatches = prefetch
        return setup
    }

    func scratch() throws -> String {
        let folder = NSTemporaryDirectory() + "ie-prefetch-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        return folder
    }

    /// The epoch logs without their timing column.
    func logWithoutSeconds(_ path: String) throws -> [[String]] {
        let table = try CSVTable.read(path: path)
        guard let seconds = table.header.firstIndex(of: "seconds") else { XCTFail("no seconds column in \(path)"); return [] }
        return ([table.header] + table.rows).map { row in row.enumerated().filter { $0.offset != seconds }.map(\.element) }
    }

    func testSegmentationTrainingWritesTheSameBytesWithPrefetchOnAndOff() throws {
        let train = try (0..<7).map { try subject($0) }   // 4 batches per epoch, the last one short
        let validation = try (7..<9).map { try subject($0) }
        for shards in [1, 2] {
            var outputs = [Bool: String]()
            for prefetch in [false, true] {
                let folder = try scratch()
                let trainer = try Trainer(setup: setup(prefetch: prefetch, shards: shards), outputs: folder, train: train,
                                          validation: validation, start: .fresh)
                XCTAssertTrue(try trainer.run(progress: false))
                XCTAssertEqual(trainer.dataTiming.steps, 12)
                outputs[prefetch] = folder
            }
            let (off, on) = (RunLayout(outputs: outputs[false]!), RunLayout(outputs: outputs[true]!))
            for epoch in 1...3 {
                let a = FileManager.default.contents(atPath: off.checkpoint(epoch: epoch))
                XCTAssertGreaterThan(a?.count ?? 0, 1000)
                XCTAssertEqual(a, FileManager.default.contents(atPath: on.checkpoint(epoch: epoch)), "epoch \(epoch), \(shards) shard(s)")
            }
            for mode in ["Train", "Val"] {
                let a = try logWithoutSeconds(off.epochMetrics(mode: mode))
                XCTAssertEqual(a.count, 4)
                XCTAssertEqual(a, try logWithoutSeconds(on.epochMetrics(mode: mode)), "\(mode), \(shards) shard(s)")
            }
        }
    }

    /// A subject without a crop centre in the last batch of epoch 1: the same error after the same steps.
    func testAPreparationErrorMidEpochIsTheSameWithPrefetchOnAndOff() throws {
        var train = try (0..<5).map { try subject($0) }
        // The epoch's order (SPEC §4.2): Fisher-Yates over the indices with xoshiro256**(seed, "train-epoch-1").
        var rng = Xoshiro256(seed: 42, stream: "train-epoch-1")
        var order = Array(train.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(below: i + 1)) }
        let last = try XCTUnwrap(order.last)
        train[last] = try subject(last, emptyMask: true)
        var results = [(message: String, code: ExitCode?, weights: [[Float]])]()
        for prefetch in [false, true] {
            let trainer = try Trainer(setup: setup(prefetch: prefetch), outputs: try scratch(), train: train,
                                      validation: [try subject(8)], start: .fresh)
            let initial = trainer.model.parameters.map(\.value)
            XCTAssertThrowsError(try trainer.run(progress: false)) { error in
                results.append(("\(error)", (error as? IEError)?.code, trainer.model.parameters.map(\.value)))
            }
            XCTAssertEqual(trainer.dataTiming.steps, 2, "two full batches train before the failing third")
            XCTAssertNotEqual(results.last?.weights, initial)
            XCTAssertEqual(trainer.lastCompletedEpoch, 0)
        }
        XCTAssertEqual(results.count, 2)
        XCTAssertTrue(results[0].message.contains("subject s\(last): no labelled voxel inside the mask"), results[0].message)
        XCTAssertEqual(results[0].message, results[1].message)
        XCTAssertEqual(results[0].code, .badInput)
        XCTAssertEqual(results[1].code, .badInput)
        XCTAssertEqual(results[0].weights, results[1].weights)
    }
}

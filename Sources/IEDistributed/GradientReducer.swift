import Foundation
import IECore
import IENet
import CBLAS
#if canImport(CMPI)
import CMPI
#endif

/// Data-parallel training's one collective: after every backward pass each rank's gradients are replaced by
/// their mean over all ranks, so every rank takes the same optimizer step (PyTorch DDP semantics; BatchNorm
/// statistics stay per rank). `LocalReducer` is the single-process no-op; `MPIReducer` uses MPI_Allreduce.
public protocol GradientReducer: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Replaces every element by its mean over the ranks (in place).
    func average(_ buffer: UnsafeMutableBufferPointer<Float>) throws
}

extension GradientReducer {
    /// Averages the gradients of `parameters` over the ranks with one collective call: the gradients are
    /// packed into `scratch` (resized as needed), reduced, and unpacked.
    public func averageGradients(_ parameters: [Parameter], scratch: inout [Float]) throws {
        if size == 1 { return }
        let total = parameters.reduce(0) { $0 + $1.count }
        if scratch.count != total { scratch = [Float](repeating: 0, count: total) }
        var offset = 0
        for p in parameters {
            scratch.replaceSubrange(offset..<(offset + p.count), with: p.grad)
            offset += p.count
        }
        try scratch.withUnsafeMutableBufferPointer { try average($0) }
        offset = 0
        for p in parameters {
            p.grad.replaceSubrange(0..<p.count, with: scratch[offset..<(offset + p.count)])
            offset += p.count
        }
    }
}

/// One process: nothing to reduce.
public final class LocalReducer: GradientReducer {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func average(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
}

public enum Distributed {
    /// Whether this build has Open MPI (libopenmpi-dev was present when the package was built).
    public static var mpiAvailable: Bool {
        #if canImport(CMPI)
        return true
        #else
        return false
        #endif
    }

    /// Ranks announced by the launcher (mpirun: OMPI_COMM_WORLD_SIZE; srun: SLURM_NTASKS, PMIX_RANK set), 1 otherwise.
    public static func launchedRanks(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        if let n = environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) { return n }
        if environment["PMIX_RANK"] != nil, let n = environment["SLURM_NTASKS"].flatMap(Int.init) { return n }
        return 1
    }

    /// This process's rank when it was launched as one of several MPI ranks, else 0 (read before MPI_Init, so
    /// that a tool can tell a worker rank before it opens the run).
    public static func launchedRank(environment: [String: String] = ProcessInfo.processInfo.environment) -> Int {
        guard launchedRanks(environment: environment) > 1 else { return 0 }
        return (environment["OMPI_COMM_WORLD_RANK"] ?? environment["PMIX_RANK"]).flatMap(Int.init) ?? 0
    }

    /// The reducer for this process: MPI when launched with more than one rank, else local. More than one rank
    /// in a build without MPI is a usage error (exit 2).
    public static func reducer(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> GradientReducer {
        let ranks = launchedRanks(environment: environment)
        if ranks <= 1 { return LocalReducer() }
        #if canImport(CMPI)
        return try MPIReducer.shared()
        #else
        throw IEError.usage("launched as \(ranks) ranks but this build has no MPI, expected libopenmpi-dev when the toolbox is built")
        #endif
    }
}

#if canImport(CMPI)
/// MPI_COMM_WORLD of an mpirun/srun launch. MPI may be initialised once per process, so there is one instance;
/// MPI_Finalize runs at exit.
public final class MPIReducer: GradientReducer {
    public let rank: Int
    public let size: Int
    nonisolated(unsafe) private static var instance: MPIReducer?

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    public static func shared() throws -> MPIReducer {
        if let instance { return instance }
        var provided: Int32 = 0
        // Only the main thread calls MPI (OpenBLAS and Dispatch threads never do).
        try check(MPI_Init_thread(nil, nil, ie_mpi_thread_funneled(), &provided), "MPI_Init_thread")
        var rank: Int32 = 0, size: Int32 = 0
        try check(MPI_Comm_rank(ie_mpi_comm_world(), &rank), "MPI_Comm_rank")
        try check(MPI_Comm_size(ie_mpi_comm_world(), &size), "MPI_Comm_size")
        let reducer = MPIReducer(rank: Int(rank), size: Int(size))
        instance = reducer
        atexit { MPI_Finalize() }
        return reducer
    }

    static func check(_ status: Int32, _ call: String) throws {
        guard status == ie_mpi_success() else { throw IEError.failure("\(call) failed with MPI error \(status)") }
    }

    public func average(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard size > 1, let base = buffer.baseAddress, !buffer.isEmpty else { return }
        // MPI counts are Int32: reduce in chunks below 2^31 elements.
        var offset = 0
        while offset < buffer.count {
            let n = min(buffer.count - offset, Int(Int32.max))
            try MPIReducer.check(MPI_Allreduce(ie_mpi_in_place(), base + offset, Int32(n), ie_mpi_float(), ie_mpi_sum(),
                                               ie_mpi_comm_world()), "MPI_Allreduce")
            offset += n
        }
        // OpenBLAS's scal: fast in debug builds too.
        var offset2 = 0
        while offset2 < buffer.count {
            let n = min(buffer.count - offset2, Int(Int32.max))
            cblas_sscal(Int32(n), 1 / Float(size), base + offset2, 1)
            offset2 += n
        }
    }

    public func barrier() throws {
        try MPIReducer.check(MPI_Barrier(ie_mpi_comm_world()), "MPI_Barrier")
    }
}
#endif

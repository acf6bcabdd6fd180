// Software prefetch of the next padded slice's source data while the kernels compute the current one.
//
// Why: the backward pass of a 1->32 layer copies every gradOutput z-slice (32 channels x H x W, 512 KB at 64^2)
// into a padded slice before using it; the copy is a memory-only phase (6-7 ms of ~28 ms at 64^3, batch 2) while
// the arithmetic around it leaves the memory bus idle. Prefetching slice z + 2's lines a few at a time during
// slice z's arithmetic overlaps the two: the copy then reads from the caches.

import CPrefetch

/// A region of `chunks` contiguous runs of `chunkBytes` bytes, `chunkStrideBytes` apart (e.g. one z-slice of every
/// channel of a [C][D][H][W] tensor), walked one 64-byte cache line at a time.
public struct PrefetchStream {
    public static let lineBytes = 64

    private let start: UnsafeRawPointer?
    private let chunks: Int
    private let chunkBytes: Int
    private let chunkStrideBytes: Int
    private var chunk = 0
    /// The current chunk's next line and its end (lines from the one holding its first byte to the one holding
    /// its last).
    private var lineAddress = 0
    private var chunkEnd = 0

    /// Nothing to prefetch.
    public static let none = PrefetchStream()

    private init() { start = nil; chunks = 0; chunkBytes = 0; chunkStrideBytes = 0 }

    /// `chunks` runs of `chunkFloats` floats from `start`, `chunkStrideFloats` apart.
    public init(start: UnsafePointer<Float>, chunks: Int, chunkFloats: Int, chunkStrideFloats: Int) {
        self.start = UnsafeRawPointer(start)
        self.chunks = chunkFloats > 0 ? max(0, chunks) : 0
        chunkBytes = chunkFloats * 4
        chunkStrideBytes = chunkStrideFloats * 4
        enterChunk()
    }

    private mutating func enterChunk() {
        guard chunk < chunks, let start else { return }
        let first = Int(bitPattern: start) + chunk * chunkStrideBytes
        lineAddress = first & ~(PrefetchStream.lineBytes - 1)
        chunkEnd = first + chunkBytes
    }

    /// The next line's address (nil once the region is done).
    @inline(__always) public mutating func next() -> UnsafeRawPointer? {
        guard chunk < chunks else { return nil }
        let address = UnsafeRawPointer(bitPattern: lineAddress)
        lineAddress += PrefetchStream.lineBytes
        if lineAddress >= chunkEnd {
            chunk += 1
            enterChunk()
        }
        return address
    }

    /// Prefetches the next `count` lines (fewer at the end of the region).
    @inline(__always) public mutating func issue(_ count: Int) {
        var left = count
        while left > 0, let address = next() {
            ie_prefetch_read(address)
            left -= 1
        }
    }

    /// An upper bound of the lines in the whole region (each chunk may straddle one more line than its size).
    public var lineCount: Int { chunks * ((chunkBytes + PrefetchStream.lineBytes - 1) / PrefetchStream.lineBytes + 1) }
}

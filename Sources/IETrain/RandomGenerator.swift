// The one random number generator of training: xoshiro256** seeded through SplitMix64, so a run is
// reproducible from random_seed and its whole state (four UInt64) fits in a checkpoint's metadata.
import Foundation
import IECore

/// xoshiro256** 1.0 (Blackman and Vigna). Deterministic across platforms; `state` can be saved and restored.
public struct Xoshiro256: RandomNumberGenerator, Sendable, Equatable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        state = [mixer.next(), mixer.next(), mixer.next(), mixer.next()]
    }

    /// Restores a saved state; an all-zero state is invalid for xoshiro and refused.
    public init(state: [UInt64]) throws {
        guard state.count == 4, state.contains(where: { $0 != 0 }) else {
            throw IEError.badInput("random generator state \(state) is invalid, expected four UInt64 not all zero")
        }
        self.state = state
    }

    /// A generator for a named sub-stream (e.g. one validation subject), independent of how many numbers
    /// were drawn elsewhere: the seed is mixed with a stable hash of the name.
    public init(seed: UInt64, stream: String) {
        self.init(seed: seed ^ stableHash(stream))
    }

    @inline(__always) static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Xoshiro256.rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = Xoshiro256.rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * nextDouble() }

    /// Uniform integer in 0..<n without modulo bias (Lemire's method via the standard library).
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0)
        return Int.random(in: 0..<n, using: &self)
    }

    /// True with probability p.
    public mutating func bernoulli(_ p: Double) -> Bool { nextDouble() < p }

    /// Standard normal by Box-Muller (no cached second value, so the state stays four words).
    public mutating func nextGaussian() -> Double {
        var u1 = nextDouble()
        while u1 <= 0 { u1 = nextDouble() }
        let u2 = nextDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// An index drawn with probability proportional to `weights` (non-negative, positive sum).
    public mutating func weightedIndex(_ weights: [Double]) -> Int {
        let total = weights.reduce(0, +)
        precondition(total > 0, "weights must have a positive sum")
        let r = nextDouble() * total
        var cumulative = 0.0
        for (i, w) in weights.enumerated() {
            cumulative += w
            if r < cumulative && w > 0 { return i }
        }
        return weights.lastIndex(where: { $0 > 0 })!
    }
}

/// FNV-1a 64 over UTF-8: Swift's Hasher is randomised per process, this is stable across runs.
public func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}

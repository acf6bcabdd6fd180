/// SplitMix64 (Steele, Lea & Flood 2014): the small seeded generator behind every "same seed, same bytes"
/// promise (initial weights, synthetic data, seeding xoshiro). Platform independent, unlike the system RNG.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The output function on its own: a bijective 64-bit mixer, used to derive unrelated seeds.
    /// (Seeds that differ by a multiple of the increment would give shifted copies of one stream.)
    public static func mix(_ value: UInt64) -> UInt64 {
        var generator = SplitMix64(seed: value)
        return generator.next()
    }
}

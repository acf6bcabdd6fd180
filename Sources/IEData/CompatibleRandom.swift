/// Random number generators that reproduce Python's and numpy's streams bit for bit, so that splits select
/// exactly the subjects InnerEye selected (SPEC §3).

/// MT19937 (Matsumoto & Nishimura 1998), the generator behind both `random.Random` and `numpy.random.RandomState`.
public struct MersenneTwister: Sendable {
    private static let n = 624, m = 397
    private static let matrixA: UInt32 = 0x9908_b0df
    private static let upperMask: UInt32 = 0x8000_0000, lowerMask: UInt32 = 0x7fff_ffff
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 625

    /// `init_genrand(seed)`: numpy's `RandomState(seed)` for an integer seed.
    public init(seed: UInt32) {
        initGenrand(seed)
    }

    /// `init_by_array(key)`: CPython's `random.seed(int)` with the integer split into 32-bit words.
    public init(key: [UInt32]) {
        initGenrand(19_650_218)
        var i = 1, j = 0
        let keyLength = max(key.count, 1)
        let k0 = key.isEmpty ? [UInt32(0)] : key
        for _ in 0..<max(MersenneTwister.n, keyLength) {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_664_525)) &+ k0[j] &+ UInt32(j)
            i += 1; j += 1
            if i >= MersenneTwister.n { state[0] = state[MersenneTwister.n - 1]; i = 1 }
            if j >= keyLength { j = 0 }
        }
        for _ in 0..<(MersenneTwister.n - 1) {
            state[i] = (state[i] ^ ((state[i - 1] ^ (state[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= MersenneTwister.n { state[0] = state[MersenneTwister.n - 1]; i = 1 }
        }
        state[0] = 0x8000_0000
    }

    private mutating func initGenrand(_ seed: UInt32) {
        state[0] = seed
        for i in 1..<MersenneTwister.n {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
        index = MersenneTwister.n
    }

    private mutating func twist() {
        let n = MersenneTwister.n, m = MersenneTwister.m
        for k in 0..<n {
            let y = (state[k] & MersenneTwister.upperMask) | (state[(k + 1) % n] & MersenneTwister.lowerMask)
            state[k] = state[(k + m) % n] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : MersenneTwister.matrixA)
        }
        index = 0
    }

    /// `genrand_uint32`: the next tempered 32-bit output.
    public mutating func next() -> UInt32 {
        if index >= MersenneTwister.n { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }
}

/// CPython's `random.Random(seed)` for a non-negative integer seed: `seed`, `getrandbits`, `_randbelow`
/// (the getrandbits rejection method) and `shuffle`, as in Python 3.2–3.11.
public struct PythonRandom: Sendable {
    private var mt: MersenneTwister

    public init(seed: UInt64) {
        // The absolute value of the seed as 32-bit words, least significant first; 0 gives the key [0].
        var key: [UInt32] = []
        var s = seed
        repeat { key.append(UInt32(truncatingIfNeeded: s)); s >>= 32 } while s > 0
        mt = MersenneTwister(key: key)
    }

    /// `getrandbits(k)` for 1 <= k <= 64.
    public mutating func getrandbits(_ k: Int) -> UInt64 {
        precondition(k >= 1 && k <= 64)
        if k <= 32 { return UInt64(mt.next() >> UInt32(32 - k)) }
        // CPython fills 32-bit words from the least significant end; the last word keeps its top bits.
        let low = UInt64(mt.next())
        let high = UInt64(mt.next() >> UInt32(64 - k))
        return low | (high << 32)
    }

    /// `_randbelow_with_getrandbits(n)`: uniform in 0..<n by rejection on n.bit_length() bits.
    public mutating func randbelow(_ n: Int) -> Int {
        precondition(n >= 1)
        let k = Int.bitWidth - n.leadingZeroBitCount
        var r = getrandbits(k)
        while r >= UInt64(n) { r = getrandbits(k) }
        return Int(r)
    }

    /// `shuffle(x)`: Fisher–Yates from the end, j = randbelow(i + 1).
    public mutating func shuffle<T>(_ x: inout [T]) {
        guard x.count > 1 else { return }
        for i in stride(from: x.count - 1, through: 1, by: -1) {
            let j = randbelow(i + 1)
            x.swapAt(i, j)
        }
    }
}

/// numpy's legacy `RandomState(seed)` (init_genrand) with the bounded integers and shuffle it uses.
public struct NumpyRandomState: Sendable {
    private var mt: MersenneTwister

    public init(seed: UInt32) { mt = MersenneTwister(seed: seed) }

    /// `random_interval(max)` of numpy's legacy distributions: uniform in 0...max by masked rejection,
    /// on 32-bit draws when max fits in 32 bits, else on 64-bit draws (high word first).
    public mutating func interval(_ max: UInt64) -> UInt64 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4
        mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32
        if max <= 0xffff_ffff {
            while true {
                let v = UInt64(mt.next()) & mask
                if v <= max { return v }
            }
        }
        while true {
            let v = ((UInt64(mt.next()) << 32) | UInt64(mt.next())) & mask
            if v <= max { return v }
        }
    }

    /// `RandomState.shuffle` of a 1-D sequence: for i from n-1 down to 1, swap with interval(i).
    public mutating func shuffle<T>(_ x: inout [T]) {
        guard x.count > 1 else { return }
        for i in stride(from: x.count - 1, through: 1, by: -1) {
            let j = Int(interval(UInt64(i)))
            x.swapAt(i, j)
        }
    }

    /// `RandomState.permutation(n)`.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        shuffle(&p)
        return p
    }
}

/// scikit-learn's `KFold(n_splits, shuffle=True, random_state=seed)`: indices permuted by
/// `RandomState(seed).shuffle`, then cut into consecutive folds of n // k, the first n % k one larger.
/// Each fold's train indices are the others in ascending order (as `split` yields them).
public func kFoldSplits(count n: Int, folds k: Int, seed: UInt32 = 0) -> [(train: [Int], validation: [Int])] {
    precondition(k >= 2 && k <= n, "KFold needs 2 <= k <= n")
    var rng = NumpyRandomState(seed: seed)
    let order = rng.permutation(n)
    var result: [(train: [Int], validation: [Int])] = []
    var start = 0
    for fold in 0..<k {
        let size = n / k + (fold < n % k ? 1 : 0)
        let validation = Array(order[start..<(start + size)])
        let inValidation = Set(validation)
        result.append((train: (0..<n).filter { !inValidation.contains($0) }, validation: validation))
        start += size
    }
    return result
}

import XCTest
@testable import IENet

/// Random tensors and a finite-difference checker shared by the layer tests.
struct TestRandom {
    var rng: SeededGenerator
    init(_ seed: UInt64) { rng = SeededGenerator(seed: seed) }
    mutating func tensor(_ shape: [Int], scale: Double = 1) -> Tensor {
        let n = shape.reduce(1, *)
        return Tensor(shape: shape, data: (0..<n).map { _ in Float(scale * rng.nextNormal()) })
    }
    mutating func index(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
}

/// L = sum(output * projection) in Double: a scalar whose gradient w.r.t. the output is `projection`.
func projectedSum(_ y: Tensor, _ projection: Tensor) -> Double {
    var total = 0.0
    for i in 0..<y.count { total += Double(y.data[i]) * Double(projection.data[i]) }
    return total
}

/// Central differences on `samples` random entries of `values` (mutated and restored through `set`),
/// compared with `analytic` as a vector: ||a - n|| / ||n|| must stay below `tolerance`.
func checkFiniteDifferences(label: String, count: Int, samples: Int = 24, step: Float = 1e-2,
                            tolerance: Double = 1e-2, seed: UInt64 = 7,
                            get: (Int) -> Float, set: (Int, Float) -> Void,
                            loss: () -> Double, analytic: (Int) -> Float,
                            file: StaticString = #filePath, line: UInt = #line) {
    var random = TestRandom(seed)
    var indices = Set<Int>()
    while indices.count < min(samples, count) { indices.insert(random.index(count)) }
    var diff2 = 0.0, norm2 = 0.0
    var worst = ""
    for i in indices.sorted() {
        let original = get(i)
        set(i, original + step); let plus = loss()
        set(i, original - step); let minus = loss()
        set(i, original)
        let numeric = (plus - minus) / (2 * Double(step))
        let a = Double(analytic(i))
        diff2 += (a - numeric) * (a - numeric)
        norm2 += numeric * numeric
        if abs(a - numeric) > 0.05 * abs(numeric) + 1e-3 { worst += " [\(i): analytic \(a) numeric \(numeric)]" }
    }
    let relative = (diff2 / max(norm2, 1e-20)).squareRoot()
    XCTAssertGreaterThan(norm2, 1e-12, "\(label): gradient is identically zero, test would be vacuous", file: file, line: line)
    XCTAssertLessThan(relative, tolerance, "\(label): relative error \(relative)\(worst)", file: file, line: line)
}

import Foundation
import CBLAS
import IENet

/// oneDNN's own sgemm (its JIT picks the widest vector unit of the CPU, whatever OPENBLAS_CORETYPE says): the
/// second candidate for the machine's sgemm peak. nil in a build without oneDNN.
func oneDNNSgemm(size n: Int, threads: Int, repeats: Int, a: [Float], b: [Float], c: inout [Float])
    -> (gflops: Double, gflopsPerCPUSecond: Double)? {
    var ok = true
    let seconds = best(repeats) { ok = dnnlSGEMM(m: n, n: n, k: n, a: a, b: b, c: &c, threads: threads) }
    guard ok else { return nil }
    let flops = 2 * Double(n) * Double(n) * Double(n)
    return (flops / seconds / 1e9, flops / lastBestCPU / 1e9)
}

/// The best sgemm rate (OpenBLAS as loaded and oneDNN's JIT, 2048^3, one call each, twice) timed right beside a
/// figure. This VM's speed drifts by 10-25 % within minutes, so each conv figure is also given as a share of the
/// sgemm measured next to it, not only of the peak measured minutes earlier.
final class SgemmBeside {
    private let size = 2048
    private let a: [Float], b: [Float]
    private var c: [Float]

    init() {
        var rng = SeededGenerator(seed: 11)
        a = (0..<size * size).map { _ in Float(rng.nextUniform(-1, 1)) }
        b = (0..<size * size).map { _ in Float(rng.nextUniform(-1, 1)) }
        c = [Float](repeating: 0, count: size * size)
    }

    func gflops(threads: Int) -> Double {
        let n = Int32(size)
        openblas_set_num_threads(Int32(threads))
        let openblas = best(2) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, &c, n)
        }
        let openblasGFLOPs = 2 * pow(Double(size), 3) / openblas / 1e9
        let dnnl = oneDNNSgemm(size: size, threads: threads, repeats: 2, a: a, b: b, c: &c)
        return max(openblasGFLOPs, dnnl?.gflops ?? 0)
    }
}

/// oneDNN's bf16 matmul (DNNLBF16MatMul: operands rounded to bf16, fp32 accumulation), the peak bf16 convolutions
/// are measured against where the CPU has AVX512_BF16. Also returns the largest difference from OpenBLAS's fp32
/// product of the same bf16-rounded operands, relative to the largest entry: the two differ by summation order
/// only, so a kernel that computed something else shows here. nil where oneDNN cannot make the matmul.
func oneDNNBF16GEMM(size n: Int, threads: Int, repeats: Int, a: [Float], b: [Float])
    -> (gflops: Double, gflopsPerCPUSecond: Double, relativeError: Double)? {
    guard let matmul = DNNLBF16MatMul(m: n, n: n, k: n, a: a, b: b, threads: threads) else { return nil }
    var ok = true
    let seconds = best(repeats) { ok = matmul.run() && ok }
    let cpuSeconds = lastBestCPU
    let product = matmul.result()
    guard ok, product.count == n * n else { return nil }
    func roundedToBF16(_ x: Float) -> Float {  // round to nearest even, as oneDNN's reorder (finite inputs)
        let bits = x.bitPattern
        return Float(bitPattern: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000)
    }
    let aRounded = a.map(roundedToBF16), bRounded = b.map(roundedToBF16)
    var reference = [Float](repeating: 0, count: n * n)
    let size = Int32(n)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, size, size, size, 1, aRounded, size, bRounded, size, 0,
                &reference, size)
    var largestDifference: Float = 0, largest: Float = 0
    for i in 0..<(n * n) {
        largestDifference = max(largestDifference, abs(product[i] - reference[i]))
        largest = max(largest, abs(reference[i]))
    }
    let flops = 2 * Double(n) * Double(n) * Double(n)
    return (flops / seconds / 1e9, flops / cpuSeconds / 1e9, Double(largestDifference / max(largest, .leastNormalMagnitude)))
}

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

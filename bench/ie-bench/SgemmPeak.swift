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

#if canImport(CDNNL)
import CDNNL
#endif

/// oneDNN's own sgemm (its JIT picks the widest vector unit of the CPU, whatever OPENBLAS_CORETYPE says): the
/// second candidate for the machine's sgemm peak. nil in a build without oneDNN.
func oneDNNSgemm(size n: Int, threads: Int, repeats: Int, a: [Float], b: [Float], c: inout [Float])
    -> (gflops: Double, gflopsPerCPUSecond: Double, isa: String)? {
    // The ISA by name is in the "conv backend in use" line (oneDNN's description); here its dnnl_cpu_isa_t code.
#if canImport(CDNNL)
    omp_set_num_threads(Int32(threads))
    let dim = dnnl_dim_t(n)
    var status = dnnl_success
    let seconds = best(repeats) {
        status = dnnl_sgemm(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")), dim, dim, dim, 1, a, dim, b, dim,
                            0, &c, dim)
    }
    guard status == dnnl_success else { return nil }
    let flops = 2 * Double(n) * Double(n) * Double(n)
    return (flops / seconds / 1e9, flops / lastBestCPU / 1e9, "isa code \(dnnl_get_effective_cpu_isa().rawValue)")
#else
    return nil
#endif
}

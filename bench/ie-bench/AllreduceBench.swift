import Foundation
import IEDistributed
import IENet

/// `mpirun -np 2 ie-bench --allreduce`: the time to average one UNet3D gradient (f=32: 32.3 M floats) over the
/// ranks, and from it the speed-up model of data-parallel training on K nodes:
///   step(K) = t_step + t_allreduce(K),  t_allreduce(K) = 2 (K-1)/K * bytes / bandwidth  (ring allreduce),
///   speed-up(K) = K * t_step / step(K)   (each node computes the same per-node batch; K times the samples).
/// The bandwidth measured here is shared memory between two processes on one machine, so the model is also shown
/// for 10 and 100 Gbit/s links; t_step is passed with --step-seconds (from the single-node bench above).
func runAllreduceBenchmark(arguments: [String]) {
    func option(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    let stepSeconds = Double(option("--step-seconds") ?? "5.5") ?? 5.5
    do {
        let reducer = try Distributed.reducer()
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: 32, seed: 1)
        for p in net.parameters { for i in stride(from: 0, to: p.count, by: 97) { p.grad[i] = Float(reducer.rank + 1) } }
        var scratch: [Float] = []
        try reducer.averageGradients(net.parameters, scratch: &scratch)   // warm-up, buffers allocated
        var best = Double.infinity
        for _ in 0..<5 {
            let start = Date()
            try reducer.averageGradients(net.parameters, scratch: &scratch)
            best = min(best, Date().timeIntervalSince(start))
        }
        guard reducer.rank == 0 else { return }
        let floats = net.parameterCount
        let bytes = Double(floats * 4)
        let k = Double(reducer.size)
        let bandwidth = 2 * (k - 1) / k * bytes / best
        print(String(format: "allreduce of the UNet3D f=32 gradient (%d floats, %.0f MB) over %d ranks: %.3f s per step "
                     + "(effective %.2f GB/s, shared memory)", floats, bytes / 1e6, reducer.size, best, bandwidth / 1e9))
        print(String(format: "speed-up model, t_step = %.2f s per node-step (InnerEye reported 1.65x on 2 nodes, 2.8x on 4):", stepSeconds))
        for (name, b) in [("this machine's shared memory", bandwidth), ("10 Gbit/s Ethernet", 1.25e9), ("100 Gbit/s InfiniBand", 12.5e9)] {
            let speedups = [2.0, 4.0].map { nodes -> Double in
                let t = 2 * (nodes - 1) / nodes * bytes / b
                return nodes * stepSeconds / (stepSeconds + t)
            }
            print(String(format: "  %@: 2 nodes %.2fx, 4 nodes %.2fx", name, speedups[0], speedups[1]))
        }
    } catch {
        print("allreduce benchmark: \(error)")
    }
}

import Foundation
import CBLAS
import IENet

/// `ie-bench --precision fp32,bf16 [--threads 1,2] [--repeats N] [--deep] [--skip-unet] [--profile]`: the conv
/// shapes of the main bench and the UNet3D f=32 training step (batch 2, 64^3) in each precision and thread count,
/// each figure also as a `BENCH {json}` line (SPEC 12 / issue 14's protocol): conv figures
/// "conv_<cin>_<cout>_<size>[_s2|T]_fwd" / "_fwdbwd" with "gflops", the step "unet_train_step" in seconds. A bf16
/// row runs only where bf16 really runs (the engine's precision after fallback); elsewhere it says why and is left
/// out, never reported as bf16. Also the sgemm figures of this run: OpenBLAS (the core it picked; set
/// OPENBLAS_CORETYPE before the process starts for others) and oneDNN's own sgemm. `--profile` prints oneDNN's
/// per-layer implementation and the GFLOP/s of the primitive alone and with its reorders (IENET_DNNL_PROFILE).
func runPrecisionBenchmark(arguments: [String], threadCounts: [Int], repeats: Int) {
    func option(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    let precisions = (option("--precision") ?? "fp32,bf16").split(separator: ",").compactMap { Precision(rawValue: String($0)) }
    let profile = arguments.contains("--profile")
    print("precision bench: OpenBLAS core \(String(cString: openblas_get_corename())), OPENBLAS_CORETYPE="
          + (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)"))
    for threads in threadCounts { precisionSGEMM(threads: threads, repeats: repeats) }
    var shapes: [(cin: Int, cout: Int, size: Int, kind: String)] = [(32, 32, 64, ""), (32, 32, 32, ""), (1, 32, 64, ""),
                                                                     (32, 64, 64, "_s2"), (64, 32, 32, "T")]
    if arguments.contains("--deep") { shapes += [(64, 64, 32, ""), (128, 128, 16, ""), (256, 256, 8, ""), (512, 512, 4, "")] }
    for precision in precisions {
        for threads in threadCounts {
            var options = EngineOptions.fromEnvironment(threads: threads)
            options.precision = precision
            options.dnnlProfile = profile
            let engine = Engine(options)
            guard engine.precision == precision else {
                print("\(precision.rawValue) rows left out: \(options.bf16Obstacle ?? "not available")")
                continue
            }
            for shape in shapes {
                timeConvShape(shape, engine: engine, repeats: repeats)
            }
            if profile { engine.convProfile.forEach { print("  " + $0) } }
            if !arguments.contains("--skip-unet") { timeTrainingStep(options, repeats: repeats, profile: profile) }
        }
    }
}

/// One `BENCH {json}` line (keys sorted) with the fields every figure has.
func printBenchLine(figure: String, precision: Precision, threads: Int, seconds: Double, extra: [String: Any] = [:]) {
    var fields: [String: Any] = ["figure": figure, "impl": "ie", "threads": threads, "precision": precision.rawValue,
                                 "seconds": seconds, "peak_rss_mib": (peakRSSMiB() * 10).rounded() / 10]
    fields.merge(extra) { _, new in new }
    guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]),
          let text = String(data: data, encoding: .utf8) else { return }
    print("BENCH " + text)
}

/// OpenBLAS's and oneDNN's sgemm at 2048^3: the peak the conv figures are compared with.
func precisionSGEMM(threads: Int, repeats: Int) {
    let size = 2048
    let a = randomTensor([size, size]).data, b = randomTensor([size, size]).data
    var c = [Float](repeating: 0, count: size * size)
    let flops = 2 * pow(Double(size), 3)
    openblas_set_num_threads(Int32(threads))
    let blas = best(repeats) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(size), Int32(size), Int32(size), 1, a, Int32(size),
                    b, Int32(size), 0, &c, Int32(size))
    }
    var ok = true
    let onednn = best(repeats) { ok = dnnlSGEMM(m: size, n: size, k: size, a: a, b: b, c: &c, threads: threads) }
    let core = String(cString: openblas_get_corename())
    print(String(format: "  sgemm %d^3, %d thread(s): OpenBLAS (%@) %.1f GFLOP/s, oneDNN %@", size, threads, core,
                 flops / blas / 1e9, ok ? String(format: "%.1f GFLOP/s", flops / onednn / 1e9) : "not built"))
    printBenchLine(figure: "sgemm_peak_openblas", precision: .fp32, threads: threads, seconds: blas,
                   extra: ["gflops": flops / blas / 1e9, "core": core])
    if ok {
        printBenchLine(figure: "sgemm_peak_onednn", precision: .fp32, threads: threads, seconds: onednn,
                       extra: ["gflops": flops / onednn / 1e9])
    }
}

/// Forward and forward+backward of one conv shape (k3 p1 stride 1 or 2; "T": ConvTranspose3d k4 s2 p1), batch 2.
func timeConvShape(_ shape: (cin: Int, cout: Int, size: Int, kind: String), engine: Engine, repeats: Int) {
    var rng = SeededGenerator(seed: 2)
    let x = randomTensor([2, shape.cin, shape.size, shape.size, shape.size])
    let forward: (Bool) -> Tensor, backward: (Tensor) -> Void
    let flops: Double
    if shape.kind == "T" {
        let up = ConvTranspose3d(name: "up", inChannels: shape.cin, outChannels: shape.cout, kernel: 4, stride: 2,
                                 padding: 1, rng: &rng, engine: engine)
        forward = { up.forward(x, saveForBackward: $0) }
        backward = { _ = up.backward($0, inputGradient: true) }
        flops = 2.0 * 2 * Double(shape.cin * shape.cout * 64) * pow(Double(shape.size), 3)
    } else {
        let stride = shape.kind == "_s2" ? 2 : 1
        let conv = Conv3d(name: "conv", inChannels: shape.cin, outChannels: shape.cout, kernel: 3, stride: stride,
                          padding: 1, bias: false, rng: &rng, engine: engine)
        forward = { conv.forward(x, saveForBackward: $0) }
        backward = { _ = conv.backward($0, inputGradient: true) }
        flops = 2.0 * 2 * Double(shape.cin * shape.cout * 27) * pow(Double(shape.size / stride), 3)
    }
    _ = forward(false)
    let forwardSeconds = best(repeats) { _ = forward(false) }
    let forwardCPU = lastBestCPU
    let bothSeconds = best(repeats) { backward(forward(true)) }
    let bothCPU = lastBestCPU
    let name = "conv_\(shape.cin)_\(shape.cout)_\(shape.size)\(shape.kind)"
    print(String(format: "  %@ %@, %d thread(s): forward %.1f GFLOP/s (%.1f per CPU-second), forward+backward %.1f (%.1f)",
                 engine.precision.rawValue, name, engine.threads, flops / forwardSeconds / 1e9, flops / forwardCPU / 1e9,
                 3 * flops / bothSeconds / 1e9, 3 * flops / bothCPU / 1e9))
    printBenchLine(figure: name + "_fwd", precision: engine.precision, threads: engine.threads, seconds: forwardSeconds,
                   extra: ["gflops": flops / forwardSeconds / 1e9, "gflops_per_cpu_second": flops / forwardCPU / 1e9])
    printBenchLine(figure: name + "_fwdbwd", precision: engine.precision, threads: engine.threads, seconds: bothSeconds,
                   extra: ["gflops": 3 * flops / bothSeconds / 1e9, "gflops_per_cpu_second": 3 * flops / bothCPU / 1e9])
}

/// The UNet3D f=32 training step (batch 2, 64^3 crops, soft Dice, Adam) in the options' precision.
func timeTrainingStep(_ options: EngineOptions, repeats: Int, profile: Bool) {
    let (size, batch) = (64, 2)
    let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: 32, seed: 42, options: options)
    let optimizer = Optimizer(kind: .adam, parameters: net.parameters)
    let x = randomTensor([batch, 1, size, size, size])
    let voxels = size * size * size
    var target = Tensor(zeros: [batch, 2, size, size, size])
    for i in 0..<(batch * voxels) { target.data[(i / voxels * 2 + (i % 5 == 0 ? 1 : 0)) * voxels + i % voxels] = 1 }
    let loss = SegmentationLoss.softDice()
    let step = {
        net.zeroGrad()
        net.backward(loss.evaluate(logits: net.forward(x, training: true), target: target, threads: options.threads).gradLogits)
        optimizer.step(lr: 1e-4)
    }
    step()  // first touch of the buffers, primitives built
    let seconds = best(max(1, repeats - 1), step)
    print(String(format: "  %@ UNet3D f=32 training step, batch %d, %d^3, %d thread(s): %.2f s wall, %.2f s CPU",
                 net.engine.precision.rawValue, batch, size, options.threads, seconds, lastBestCPU))
    printBenchLine(figure: "unet_train_step", precision: net.engine.precision, threads: options.threads, seconds: seconds,
                   extra: ["cpu_seconds": lastBestCPU])
    if profile { net.engine.convProfile.forEach { print("  " + $0) } }
}

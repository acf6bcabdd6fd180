import Foundation
import IENet

/// The engine section of ie-bench: the conv shapes of the UNet (k3 stride 1 at 64^3 and 32^3, the 1-channel first
/// layer, the stride-2 downsampling, the k4 s2 transposed upsampling; --deep adds the deeper levels) and the UNet3D
/// training step, for each backend (--backends, default all built), precision (--precision, default fp32,bf16) and
/// thread count, each figure also as a `BENCH {json}` line for bench/run_bench.py: "conv_<cin>_<cout>_<size>[_s2|T]
/// _fwd" / "_fwdbwd" with "gflops", the step "unet_train_step" in seconds with the peak memory so far. A bf16 row
/// runs only where bf16 really runs (the engine's precision after fallback); elsewhere it says why and is left out,
/// never reported as bf16. `--profile` prints oneDNN's per-layer implementation and the GFLOP/s of the primitive
/// alone and with its reorders (IENET_DNNL_PROFILE).
struct EngineBenchSettings {
    var backends: [ConvBackend]
    var precisions: [Precision]
    var threadCounts: [Int]
    var repeats: Int
    var deep: Bool
    var skipConv: Bool
    var skipUNet: Bool
    var profile: Bool
    var unet: (size: Int, batch: Int, features: Int)
}

func runEngineBenchmark(_ settings: EngineBenchSettings) {
    var shapes: [(cin: Int, cout: Int, size: Int, kind: String)] = [(32, 32, 64, ""), (32, 32, 32, ""), (1, 32, 64, ""),
                                                                     (32, 64, 64, "_s2"), (64, 32, 32, "T")]
    if settings.deep { shapes += [(64, 64, 32, ""), (128, 128, 16, ""), (256, 256, 8, ""), (512, 512, 4, "")] }
    // Training reuses activation memory (a network applies IENet's allocator settings when it is built), so conv
    // layers are timed the same way: without it each 67 MB output of the 1->32 layer is fresh mmap()ed memory whose
    // page faults cost about as much as the convolution (measured 45 ms of ~57 ms).
    _ = UNet3D(imageChannels: 1, classes: 2, featureChannels: 1, seed: 0, downsamplingPaths: 1)
    let sgemmBeside = SgemmBeside()
    print("conv3d batch 2 (GFLOP/s; forward: the eval forward, Winograd where it applies, counted as "
          + "2*N*Cout*Cin*k^3*output voxels; forward+backward: the training forward and both gradients, 3x that; "
          + "output memory reused as in training)")
    for backend in settings.backends {
        for precision in settings.precisions {
            for threads in settings.threadCounts {
                var options = benchOptions(backend, threads: threads)
                options.precision = precision
                options.dnnlProfile = settings.profile
                options = options.resolvingPrecision()
                let engine = Engine(options)
                guard engine.precision == precision else {
                    print("\(backend.rawValue) \(precision.rawValue) rows left out: "
                          + "\(options.bf16Obstacle ?? "not available")")
                    continue
                }
                if !settings.skipConv {
                    for shape in shapes {
                        timeConvShape(shape, engine: engine, backend: backend, repeats: settings.repeats,
                                      sgemmBeside: sgemmBeside)
                    }
                    if settings.profile { engine.convProfile.forEach { print("  " + $0) } }
                }
                if !settings.skipUNet {
                    timeTrainingStep(options, backend: backend, unet: settings.unet, repeats: settings.repeats,
                                     profile: settings.profile, sgemmBeside: sgemmBeside)
                }
            }
        }
    }
}

/// Forward and forward+backward of one conv shape (k3 p1 stride 1 or 2; "T": ConvTranspose3d k4 s2 p1), batch 2.
/// The best sgemm timed just before and just after the row goes into its BENCH line as "sgemm_beside_gflops".
func timeConvShape(_ shape: (cin: Int, cout: Int, size: Int, kind: String), engine: Engine, backend: ConvBackend,
                   repeats: Int, sgemmBeside: SgemmBeside) {
    var rng = SeededGenerator(seed: 2)
    let x = randomTensor([2, shape.cin, shape.size, shape.size, shape.size])
    let forward: (Bool) -> Tensor, backward: (Tensor) -> Void, weightGradient: (Tensor) -> Void
    let flops: Double
    if shape.kind == "T" {
        let up = ConvTranspose3d(name: "up", inChannels: shape.cin, outChannels: shape.cout, kernel: 4, stride: 2,
                                 padding: 1, rng: &rng, engine: engine)
        forward = { up.forward(x, saveForBackward: $0) }
        backward = { _ = up.backward($0, inputGradient: true) }
        weightGradient = { _ = up.backward($0, inputGradient: false) }
        flops = 2.0 * 2 * Double(shape.cin * shape.cout * 64) * pow(Double(shape.size), 3)
    } else {
        let stride = shape.kind == "_s2" ? 2 : 1
        let conv = Conv3d(name: "conv", inChannels: shape.cin, outChannels: shape.cout, kernel: 3, stride: stride,
                          padding: 1, bias: false, rng: &rng, engine: engine)
        forward = { conv.forward(x, saveForBackward: $0) }
        backward = { _ = conv.backward($0, inputGradient: true) }
        weightGradient = { _ = conv.backward($0, inputGradient: false) }
        flops = 2.0 * 2 * Double(shape.cin * shape.cout * 27) * pow(Double(shape.size / stride), 3)
    }
    _ = forward(false)
    let sgemmBefore = sgemmBeside.gflops(threads: engine.threads)
    let forwardSeconds = best(repeats) { _ = forward(false) }
    let forwardCPU = lastBestCPU
    let bothSeconds = best(repeats) { backward(forward(true)) }
    let bothCPU = lastBestCPU
    // The weight gradient alone (printed only), each time after an untimed forward that keeps its input.
    var weightSeconds = Double.infinity
    for _ in 0..<repeats {
        let saved = forward(true)
        let start = now()
        weightGradient(saved)
        weightSeconds = min(weightSeconds, now() - start)
    }
    let sgemmNearby = max(sgemmBefore, sgemmBeside.gflops(threads: engine.threads))
    let name = "conv_\(shape.cin)_\(shape.cout)_\(shape.size)\(shape.kind)"
    let ran = shape.kind == "T" ? backend.rawValue
        : engine.backendName(inChannels: shape.cin, outChannels: shape.cout, kernel: 3, stride: shape.kind == "_s2" ? 2 : 1,
                             padding: 1, size: (shape.size, shape.size, shape.size), batch: 2)
    print(String(format: "  %@ %@ %@, %d thread(s)%@: forward %.1f GFLOP/s (%.1f per CPU-second), forward+backward %.1f (%.1f), "
                 + "weight gradient alone %.1f; sgemm beside it %.1f",
                 backend.rawValue, engine.precision.rawValue, name, engine.threads,
                 ran == backend.rawValue ? "" : " (runs on \(ran))", flops / forwardSeconds / 1e9,
                 flops / forwardCPU / 1e9, 3 * flops / bothSeconds / 1e9, 3 * flops / bothCPU / 1e9,
                 flops / weightSeconds / 1e9, sgemmNearby))
    let labels = ["backend": backend.rawValue, "ran_on": ran]
    benchLine(figure: name + "_fwd", threads: engine.threads, precision: engine.precision.rawValue,
              ["gflops": flops / forwardSeconds / 1e9, "gflops_per_cpu_second": flops / forwardCPU / 1e9,
               "seconds": forwardSeconds, "sgemm_beside_gflops": sgemmNearby], labels: labels)
    benchLine(figure: name + "_fwdbwd", threads: engine.threads, precision: engine.precision.rawValue,
              ["gflops": 3 * flops / bothSeconds / 1e9, "gflops_per_cpu_second": 3 * flops / bothCPU / 1e9,
               "seconds": bothSeconds, "sgemm_beside_gflops": sgemmNearby], labels: labels)
}

/// The UNet3D training step (soft Dice, Adam, 2 classes, 1 image channel) in the options' precision, with the
/// split of the last step into forward, loss, backward and Adam.
/// Also the rate of all its convolution calls in the last step ("conv_layers_unet_train_step": the conv layers as
/// the network runs them, with their reorders and in the step's cache state), against the sgemm timed beside it.
func timeTrainingStep(_ options: EngineOptions, backend: ConvBackend, unet: (size: Int, batch: Int, features: Int),
                      repeats: Int, profile: Bool, sgemmBeside: SgemmBeside) {
    let (size, batch) = (unet.size, unet.batch)
    var options = options
    options.convTiming = true
    let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: unet.features, seed: 42, options: options)
    guard let ledger = net.engine.convLedger else { preconditionFailure("convTiming set but no ledger") }
    let optimizer = Optimizer(kind: .adam, parameters: net.parameters)
    let x = randomTensor([batch, 1, size, size, size])
    let voxels = size * size * size
    var target = Tensor(zeros: [batch, 2, size, size, size])
    for n in 0..<batch { for i in 0..<voxels { target.data[(n * 2 + (i % 7 == 0 ? 1 : 0)) * voxels + i] = 1 } }
    let loss = SegmentationLoss.softDice()
    var parts = (forward: 0.0, loss: 0.0, backward: 0.0, adam: 0.0)
    var convs = (forward: ConvLedger.Totals(), backward: ConvLedger.Totals(), all: ConvLedger.Totals())
    var layerTimes: [(layer: String, totals: ConvLedger.Totals)] = []
    func step() {
        ledger.reset()
        var t0 = now()
        net.zeroGrad()
        let logits = net.forward(x, training: true)
        var t1 = now(); parts.forward = t1 - t0; t0 = t1
        let result = loss.evaluate(logits: logits, target: target, threads: options.threads)
        t1 = now(); parts.loss = t1 - t0; t0 = t1
        net.backward(result.gradLogits)
        t1 = now(); parts.backward = t1 - t0; t0 = t1
        optimizer.step(lr: 1e-4)
        parts.adam = now() - t0
        convs = (ledger.totals(.forward), ledger.totals(.backward), ledger.totals())
        layerTimes = ledger.byLayer
    }
    step()  // first touch of the buffers, primitives built
    let seconds = best(max(1, repeats - 1), step)
    print(String(format: "%@ %@ UNet3D f=%d, batch %d, %d^3 crops, 2 classes, %d thread(s): %.2f s per training step "
                 + "wall, %.2f s CPU (last: forward %.2f, loss %.2f, backward %.2f, Adam %.2f); parameters %d",
                 backend.rawValue, net.engine.precision.rawValue, unet.features, batch, size, options.threads, seconds,
                 lastBestCPU, parts.forward, parts.loss, parts.backward, parts.adam, net.parameterCount))
    benchLine(figure: "unet_train_step", threads: options.threads, precision: net.engine.precision.rawValue,
              ["seconds": seconds, "cpu_seconds": lastBestCPU, "peak_rss_mib": peakRSSMiB()],
              labels: ["backend": backend.rawValue])
    let sgemmNearby = sgemmBeside.gflops(threads: options.threads)
    print(String(format: "  its conv layers (last step): forward %.1f GFLOP/s (%d calls, %.2f s), backward %.1f "
                 + "(%d calls, %.2f s), all %.1f GFLOP/s in %.2f s; sgemm beside it %.1f",
                 convs.forward.gflops, convs.forward.calls, convs.forward.seconds, convs.backward.gflops,
                 convs.backward.calls, convs.backward.seconds, convs.all.gflops, convs.all.seconds, sgemmNearby))
    benchLine(figure: "conv_layers_unet_train_step", threads: options.threads, precision: net.engine.precision.rawValue,
              ["gflops": convs.all.gflops, "seconds": convs.all.seconds, "forward_gflops": convs.forward.gflops,
               "backward_gflops": convs.backward.gflops, "sgemm_beside_gflops": sgemmNearby],
              labels: ["backend": backend.rawValue])
    if profile {
        for (layer, totals) in layerTimes {
            print(String(format: "  %@: %d calls, %.3f s, %.1f GFLOP/s", layer, totals.calls, totals.seconds,
                         totals.gflops))
        }
        net.engine.convProfile.forEach { print("  " + $0) }
    }
}

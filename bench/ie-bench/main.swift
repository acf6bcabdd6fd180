// ie-bench: conv and UNet3D training-step throughput of the IENet engine on this machine.
// Run by `make bench` (release build). Not a test: numbers depend on the machine and its load.
//   ie-bench [--threads 1,2] [--repeats N] [--deep] [--skip-conv] [--skip-unet] [--unet-size 64] [--unet-batch 2]
//            [--features 32] [--parity-export FILE]
// Rates are given per wall second and per CPU second: on a machine shared with other jobs the CPU-second figure
// is the steadier measure of our own code (with 1 thread it equals the wall figure on an idle machine).
// Tuning knobs (environment, read by EngineOptions.fromEnvironment; table in docs/SPEC.md section 12):
// IENET_SLAB_FLOATS, IENET_COLUMNS_PER_CHANNEL, IENET_IMPLICIT_GEMM=0, IENET_DNNL_LAYOUT=blocked|plain,
// IENET_DIRECT_CONV=0 (the 1..4-input-channel layers, e.g. 1->32, back on the GEMM path); --backends picks rows.
// --conv-in-channels N times only the conv shapes with N input channels; --first-touch times the conv layers
// with fresh (page-faulting) output memory, as before the allocator settings were applied to this section.
// --backends gemm,dnnl runs the conv shapes and the training step with each backend in turn (default: all built).
import Foundation
import CBLAS
import IEEval
import IENet

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func cpuSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

func peakRSSMiB() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux reports KiB
}

/// Best of `repeats` timings (the least disturbed by other processes on a shared machine). Returns wall seconds;
/// the best CPU seconds of the same runs go to `lastBestCPU` (on a loaded machine CPU time is the steadier
/// measure of our own work; with 1 thread it equals wall time on an idle machine).
nonisolated(unsafe) var lastBestCPU = 0.0
func best(_ repeats: Int, _ body: () -> Void) -> Double {
    var fastest = Double.infinity
    var fastestCPU = Double.infinity
    for _ in 0..<repeats {
        let start = now(), startCPU = cpuSeconds()
        body()
        fastest = min(fastest, now() - start)
        fastestCPU = min(fastestCPU, cpuSeconds() - startCPU)
    }
    lastBestCPU = fastestCPU
    return fastest
}

var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.contains("--allreduce") {
    runAllreduceBenchmark(arguments: arguments)
    exit(0)
}
// Sliding-window inference (InferenceBench.swift): --inference (that section only), --inference-run/-export (children).
if ["--inference", "--inference-run", "--inference-export"].contains(where: arguments.contains) {
    exit(runInferenceBenchmark(arguments: arguments))
}
func option(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
let threadCounts = (option("--threads") ?? "1,2").split(separator: ",").compactMap { Int($0) }
let repeats = Int(option("--repeats") ?? "3") ?? 3
let skipUNet = arguments.contains("--skip-unet")
let skipConv = arguments.contains("--skip-conv")
let unetSize = Int(option("--unet-size") ?? "64") ?? 64
let unetBatch = Int(option("--unet-batch") ?? "2") ?? 2
let features = Int(option("--features") ?? "32") ?? 32

var seed = SeededGenerator(seed: 1)
func randomTensor(_ shape: [Int]) -> Tensor {
    Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in Float(seed.nextUniform(-1, 1)) })
}

// --parity-export PATH: writes a small UNet3D's initial weights, an input, our eval/train logits, the parameter
// gradients of sum(logits * projection) and the BatchNorm buffers after the training forward, as safetensors,
// so that an independent PyTorch implementation can be compared against ours.
/// The environment's options (SPEC 12) with `threads` threads and, for a bench row of `backend`, that library for
/// the general layers (the direct kernel stays on for the few-channel layers unless the environment turned it off).
func benchOptions(_ backend: ConvBackend, threads: Int) -> EngineOptions {
    var options = EngineOptions.fromEnvironment(threads: threads)
    let direct = options.usesDirectKernel
    options.convBackend = backend == .dnnl ? (direct ? .auto : .dnnl) : (direct ? .direct : .gemm)
    return options
}

if let path = option("--parity-export") {
    let net = UNet3D(imageChannels: 2, classes: 3, featureChannels: 4, seed: 7,
                     options: EngineOptions.fromEnvironment(threads: threadCounts.first ?? 1))
    var tensors = net.stateDict()
    let x = randomTensor([2, 2, 32, 32, 32])
    let evalLogits = net.forward(x, training: false)
    let trainLogits = net.forward(x, training: true)
    let projection = randomTensor(trainLogits.shape)
    net.zeroGrad()
    net.backward(projection)
    tensors.append(NamedTensor(name: "parity/input", shape: x.shape, float32: x.data))
    tensors.append(NamedTensor(name: "parity/projection", shape: projection.shape, float32: projection.data))
    tensors.append(NamedTensor(name: "parity/logits_eval", shape: evalLogits.shape, float32: evalLogits.data))
    tensors.append(NamedTensor(name: "parity/logits_train", shape: trainLogits.shape, float32: trainLogits.data))
    for p in net.parameters { tensors.append(NamedTensor(name: "parity/grad/" + p.name, shape: p.shape, float32: p.grad)) }
    for t in net.stateDict() where t.name.contains("running_") || t.name.hasSuffix("num_batches_tracked") {
        var after = t
        after.name = "parity/after/" + t.name
        tensors.append(after)
    }
    try! Checkpoint.serialize(tensors: tensors, metadata: ["purpose": "parity"]).write(to: URL(fileURLWithPath: path))
    print("wrote \(path)")
    exit(0)
}

print("ie-bench: OpenBLAS core \(String(cString: openblas_get_corename())), "
      + "OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "(unset)")")
print("conv backend in use by default: \(EngineOptions.fromEnvironment().summary)")
let backends: [ConvBackend] = (option("--backends")?.split(separator: ",").compactMap { ConvBackend(rawValue: String($0)) }
    ?? ConvBackend.allCases).filter { $0 == .gemm || ConvBackend.isDNNLAvailable }
print("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores visible; load average at start: "
      + ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"))

// sgemm peak
let gemmSize = 2048
let a = (0..<gemmSize * gemmSize).map { _ in Float(seed.nextUniform(-1, 1)) }
let b = (0..<gemmSize * gemmSize).map { _ in Float(seed.nextUniform(-1, 1)) }
var c = [Float](repeating: 0, count: gemmSize * gemmSize)
var sgemmPeak: [Int: Double] = [:]
var sgemmPeakCPU: [Int: Double] = [:]
for threads in threadCounts {
    openblas_set_num_threads(Int32(threads))
    let seconds = best(repeats) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(gemmSize), Int32(gemmSize), Int32(gemmSize), 1,
                    a, Int32(gemmSize), b, Int32(gemmSize), 0, &c, Int32(gemmSize))
    }
    sgemmPeak[threads] = 2 * pow(Double(gemmSize), 3) / seconds / 1e9
    sgemmPeakCPU[threads] = 2 * pow(Double(gemmSize), 3) / lastBestCPU / 1e9
    print(String(format: "sgemm %d^3, %d thread(s): %.1f GFLOP/s wall, %.1f per CPU-second", gemmSize, threads,
                 sgemmPeak[threads]!, sgemmPeakCPU[threads]!))
    benchLine(figure: "sgemm_\(gemmSize)", impl: "openblas", threads: threads,
              ["gflops": sgemmPeak[threads]!, "gflops_per_cpu_second": sgemmPeakCPU[threads]!],
              labels: ["kernels": String(cString: openblas_get_corename())])
    if let dnnl = oneDNNSgemm(size: gemmSize, threads: threads, repeats: repeats, a: a, b: b, c: &c) {
        print(String(format: "oneDNN sgemm %d^3, %d thread(s): %.1f GFLOP/s wall, %.1f per CPU-second", gemmSize,
                     threads, dnnl.gflops, dnnl.gflopsPerCPUSecond))
        benchLine(figure: "sgemm_\(gemmSize)", impl: "dnnl", threads: threads,
                  ["gflops": dnnl.gflops, "gflops_per_cpu_second": dnnl.gflopsPerCPUSecond],
                  labels: ["kernels": dnnl.isa])
    }
}
// --sgemm-only: `make bench` runs this once per OpenBLAS kernel set (OPENBLAS_CORETYPE is read when the library
// loads) to find the machine's best sgemm, the peak the conv rows are measured against.
if arguments.contains("--sgemm-only") { exit(0) }

// Convolutions
struct ConvCase { let inC: Int; let outC: Int; let size: Int }
var convCases = [ConvCase(inC: 32, outC: 32, size: 64), ConvCase(inC: 32, outC: 32, size: 32),
                 ConvCase(inC: 1, outC: 32, size: 64)]
if arguments.contains("--deep") {
    convCases += [ConvCase(inC: 64, outC: 64, size: 32), ConvCase(inC: 128, outC: 128, size: 16), ConvCase(inC: 256, outC: 256, size: 8),
                  ConvCase(inC: 512, outC: 512, size: 4)]
}
if let only = option("--conv-in-channels").flatMap({ Int($0) }) { convCases = convCases.filter { $0.inC == only } }
// Training reuses activation memory (a network applies IENet's allocator settings when it is built), so conv
// layers are timed the same way: without it every 67 MB output of the 1->32 layer is fresh mmap()ed memory and
// its page faults cost about as much as the convolution (measured 45 ms of ~57 ms). --first-touch keeps them.
if !arguments.contains("--first-touch") && !skipConv {
    _ = UNet3D(imageChannels: 1, classes: 2, featureChannels: 1, seed: 0, downsamplingPaths: 1)
}
print("conv3d k=3 pad 1 stride 1, batch 2 (GFLOP/s; forward = 2*N*Cout*Cin*27*voxels, forward+backward = 3x that "
      + "with input and weight gradients; " + (arguments.contains("--first-touch") ? "fresh output memory)" : "output memory reused as in training)"))
for backend in backends where !skipConv {
  for threads in threadCounts {
    let engine = Engine(benchOptions(backend, threads: threads))
    for cc in convCases {
        var rng = SeededGenerator(seed: 2)
        let conv = Conv3d(name: "bench", inChannels: cc.inC, outChannels: cc.outC, kernel: 3, stride: 1, padding: 1,
                          bias: false, rng: &rng, engine: engine)
        let x = randomTensor([2, cc.inC, cc.size, cc.size, cc.size])
        let flops = 2.0 * 2 * Double(cc.outC * cc.inC * 27) * pow(Double(cc.size), 3)
        var y = conv.forward(x, saveForBackward: false)
        let forward = best(repeats) { y = conv.forward(x, saveForBackward: false) }
        let forwardCPU = lastBestCPU
        let both = best(repeats) {
            let out = conv.forward(x, saveForBackward: true)
            _ = conv.backward(out, inputGradient: true)
        }
        let bothCPU = lastBestCPU
        let fwd = flops / forward / 1e9, fb = 3 * flops / both / 1e9
        let peak = sgemmPeak[threads] ?? .nan
        let fwdCPU = flops / forwardCPU / 1e9, fbCPU = 3 * flops / bothCPU / 1e9
        let peakCPU = sgemmPeakCPU[threads] ?? .nan
        let ran = engine.backendName(inChannels: cc.inC, outChannels: cc.outC, kernel: 3, stride: 1, padding: 1,
                                     size: (cc.size, cc.size, cc.size), batch: 2)
        let viaDirect = ran == "direct", viaGEMM = backend == .dnnl && ran == "gemm"  // oneDNN hands these to GEMM
        print("  \(backend.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))"
              + String(format: " %2d->%2d at %d^3, %d thread(s)", cc.inC, cc.outC, cc.size, threads)
              + (viaDirect ? " (direct kernel: few input channels)" : viaGEMM ? " (runs on gemm: few input channels)" : "")
              + String(format: ": forward %.1f GFLOP/s wall (%.0f%% of sgemm), "
                     + "%.1f per CPU-second (%.0f%%); forward+backward %.1f wall (%.0f%%), %.1f per CPU-second (%.0f%%)",
                     fwd, 100 * fwd / peak, fwdCPU, 100 * fwdCPU / peakCPU,
                     fb, 100 * fb / peak, fbCPU, 100 * fbCPU / peakCPU))
        _ = y
    }
  }
}

// The UNet's other conv shapes at level 0/1: stride-2 downsampling and the k=4 s=2 transposed upsampling.
for backend in backends where !skipConv {
  for threads in threadCounts {
    let engine = Engine(benchOptions(backend, threads: threads))
    var rng = SeededGenerator(seed: 3)
    let down = Conv3d(name: "down", inChannels: 32, outChannels: 64, kernel: 3, stride: 2, padding: 1, bias: false, rng: &rng,
                      engine: engine)
    let x = randomTensor([2, 32, 64, 64, 64])
    let downFlops = 2.0 * 2 * 64 * 32 * 27 * pow(32.0, 3)
    _ = best(repeats) { _ = down.forward(x, saveForBackward: false) }
    let df = lastBestCPU
    _ = best(repeats) { let y = down.forward(x, saveForBackward: true); _ = down.backward(y, inputGradient: true) }
    let db = lastBestCPU
    let up = ConvTranspose3d(name: "up", inChannels: 64, outChannels: 32, kernel: 4, stride: 2, padding: 1, rng: &rng,
                             engine: engine)
    let u = randomTensor([2, 64, 32, 32, 32])
    let upFlops = 2.0 * 2 * 64 * 32 * 64 * pow(32.0, 3)
    _ = best(repeats) { _ = up.forward(u, saveForBackward: false) }
    let uf = lastBestCPU
    _ = best(repeats) { let y = up.forward(u, saveForBackward: true); _ = up.backward(y, inputGradient: true) }
    let ub = lastBestCPU
    print("  \(backend.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))" + String(format: " conv 32->64 stride 2, 64^3->32^3, %d thread(s): forward %.1f GFLOP/s per CPU-second, forward+backward %.1f",
                 threads, downFlops / df / 1e9, 3 * downFlops / db / 1e9))
    print("  \(backend.rawValue.padding(toLength: 4, withPad: " ", startingAt: 0))" + String(format: " convT 64->32 k4 s2, 32^3->64^3, %d thread(s): forward %.1f GFLOP/s per CPU-second, forward+backward %.1f",
                 threads, upFlops / uf / 1e9, 3 * upFlops / ub / 1e9))
  }
}

// UNet3D training step
if !skipUNet {
  for backend in backends {
    for threads in threadCounts {
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: features, seed: 42,
                         options: benchOptions(backend, threads: threads))
        let optimizer = Optimizer(kind: .adam, parameters: net.parameters)
        let x = randomTensor([unetBatch, 1, unetSize, unetSize, unetSize])
        var target = Tensor(zeros: [unetBatch, 2, unetSize, unetSize, unetSize])
        let voxels = unetSize * unetSize * unetSize
        for n in 0..<unetBatch { for i in 0..<voxels { target.data[(n * 2 + (i % 7 == 0 ? 1 : 0)) * voxels + i] = 1 } }
        let loss = SegmentationLoss.softDice()
        var parts = (forward: 0.0, loss: 0.0, backward: 0.0, step: 0.0)
        func trainingStep() {
            var t0 = now()
            net.zeroGrad()
            let logits = net.forward(x, training: true)
            var t1 = now(); parts.forward = t1 - t0; t0 = t1
            let result = loss.evaluate(logits: logits, target: target, threads: threads)
            t1 = now(); parts.loss = t1 - t0; t0 = t1
            net.backward(result.gradLogits)
            t1 = now(); parts.backward = t1 - t0; t0 = t1
            optimizer.step(lr: 1e-4)
            parts.step = now() - t0
        }
        trainingStep()  // warm-up: first-touch of buffers
        var fastestCPU = Double.infinity
        let seconds = best(max(1, repeats - 1)) {
            let c0 = cpuSeconds()
            trainingStep()
            fastestCPU = min(fastestCPU, cpuSeconds() - c0)
        }
        print("\(backend.rawValue) " + String(format: "UNet3D f=%d, batch %d, %d^3 crops, 2 classes, %d thread(s): %.2f s per training step "
                     + "wall, %.2f s CPU (last: forward %.2f, loss %.2f, backward %.2f, Adam %.2f); parameters %d",
                     features, unetBatch, unetSize, threads, seconds, fastestCPU, parts.forward, parts.loss,
                     parts.backward, parts.step, net.parameterCount))
    }
  }
}
// Checkpoint cost for the benchmark network (weights + Adam state).
if !skipUNet {
    let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: features, seed: 42)
    let optimizer = Optimizer(kind: .adam, parameters: net.parameters)
    var bytes = Data()
    let write = best(1) { bytes = Checkpoint.serialize(model: net, optimizer: optimizer, epoch: 1) }
    let read = best(1) {
        let copy = try! Checkpoint.load(bytes)
        try! copy.restore(model: net, optimizer: optimizer)
    }
    print(String(format: "checkpoint f=%d with Adam state: %.0f MiB, serialize %.2f s, load+verify+restore %.2f s",
                 features, Double(bytes.count) / 1048576, write, read))
}
// ie-metrics core on two 256x256x64 masks, spacing 0.8x0.8x3 mm (issue: "well under a second").
if !arguments.contains("--skip-metrics") {
    let plain = MetricsBenchmark.time(repeats: repeats)
    let extra = MetricsBenchmark.time(repeats: repeats, extras: try! ExtraMetric.parseList("hd95,assd,nsd@2"))
    print(String(format: "metrics 64x256x256 masks (0.8x0.8x3 mm): Dice/HD/MSD %.3f s, with hd95,assd,nsd@2 %.3f s "
                 + "(Dice %.3f, HD %.3f mm, MSD %.3f mm)", plain.seconds, extra.seconds, plain.metrics.dice,
                 plain.metrics.hausdorffDistanceMM, plain.metrics.meanDistanceMM))
}
if !arguments.contains("--skip-inference") { _ = runInferenceBenchmark(arguments: arguments) }
print(String(format: "peak RSS: %.0f MiB", peakRSSMiB()))

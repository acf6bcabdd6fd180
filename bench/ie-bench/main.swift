// ie-bench: conv and UNet3D training-step throughput of the IENet engine on this machine.
// Run by `make bench` (release build). Not a test: numbers depend on the machine and its load.
//   ie-bench [--threads 1,2] [--repeats N] [--deep] [--skip-conv] [--skip-unet] [--unet-size 64] [--unet-batch 2]
//            [--features 32] [--parity-export FILE] [--precision fp32,bf16 [--profile]]
//            [--loader (training data wait, LoaderBench.swift)]
// Rates are given per wall second and per CPU second: on a machine shared with other jobs the CPU-second figure
// is the steadier measure of our own code (with 1 thread it equals the wall figure on an idle machine).
// Tuning knobs (environment, read by EngineOptions.fromEnvironment; table in docs/SPEC.md section 12):
// IENET_SLAB_FLOATS, IENET_COLUMNS_PER_CHANNEL, IENET_IMPLICIT_GEMM=0, IENET_DNNL_LAYOUT=blocked|plain,
// IENET_DIRECT_CONV=0 (the 1..4-input-channel layers, e.g. 1->32, back on the GEMM path); --backends picks rows.
// --backends gemm,dnnl runs the conv shapes and the training step with each backend in turn (default: all built),
// --precision fp32,bf16 in each precision (bf16 rows only where bf16 really runs), --profile: oneDNN per layer.
// --aal-metrics: only the AAL metrics figure against SimpleITK (MetricsBench.swift).
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
if arguments.contains("--help") || arguments.contains("-h") {
    // Without this, `ie-bench --help` started a ten-minute benchmark.
    print("""
        ie-bench: throughput of the IENet engine on this machine (run by `make bench`, which pairs every figure with
        its peer: bench/run_bench.py). Not a test: the numbers depend on the machine and its load.
          ie-bench [--threads 1,2] [--repeats N] [--backends gemm,dnnl] [--precision fp32,bf16 [--profile]]
                   [--deep] [--skip-conv] [--skip-unet] [--skip-inference] [--unet-size 64] [--unet-batch 2]
                   [--features 32]
          ie-bench --inference [--inference-size 64,160,160] [--inference-overlap 0.25] [--inference-modes constant,gaussian]
          ie-bench --aal-metrics [--threads 1,2]     the 116 AAL regions (needs mricron-data)
          ie-bench --loader [--threads 1]            training data wait, prefetch on and off
        Examples:
          ie-bench --threads 1 --skip-unet --backends dnnl      conv layers only, oneDNN, 1 thread
          make bench                                             everything, with PyTorch, MONAI and SimpleITK
        Engine knobs are environment variables (docs/SPEC.md section 12), e.g. IENET_WINOGRAD=0.
        """)
    exit(0)
}
if arguments.contains("--allreduce") {
    runAllreduceBenchmark(arguments: arguments)
    exit(0)
}
if arguments.contains("--aal-metrics") {
    runAALMetricsBenchmark(arguments: arguments)
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
if arguments.contains("--loader") {  // training data wait, prefetch on/off (LoaderBench.swift)
    runLoaderBenchmark(arguments: arguments, threadCounts: threadCounts, repeats: repeats)
    exit(0)
}
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
                  labels: ["kernels": "oneDNN JIT"])
    }
}
// bf16 GEMM peak: where the CPU has AVX512_BF16, the rate bf16 convolutions are measured against (make bench).
if ((try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? "").contains("avx512_bf16") {
    for threads in threadCounts {
        guard let bf16 = oneDNNBF16GEMM(size: gemmSize, threads: threads, repeats: repeats, a: a, b: b) else {
            print("oneDNN bf16 matmul: not available in this build or on this CPU")
            break
        }
        print(String(format: "oneDNN bf16 matmul %d^3, %d thread(s): %.1f GFLOP/s wall, %.1f per CPU-second; largest "
                     + "difference from fp32 on the same bf16 operands %.1e of the largest entry", gemmSize, threads,
                     bf16.gflops, bf16.gflopsPerCPUSecond, bf16.relativeError))
        benchLine(figure: "bf16_gemm_\(gemmSize)", impl: "dnnl", threads: threads, precision: "bf16",
                  ["gflops": bf16.gflops, "gflops_per_cpu_second": bf16.gflopsPerCPUSecond,
                   "relative_error_vs_fp32": bf16.relativeError], labels: ["kernels": "oneDNN JIT"])
    }
}
// --sgemm-only: `make bench` runs this once per OpenBLAS kernel set (OPENBLAS_CORETYPE is read when the library
// loads) to find the machine's best sgemm, the peak the conv rows are measured against.
if arguments.contains("--sgemm-only") { exit(0) }

// Conv layers and the UNet3D training step per backend, precision and thread count (EngineBench.swift).
runEngineBenchmark(EngineBenchSettings(
    backends: backends,
    precisions: (option("--precision") ?? "fp32,bf16").split(separator: ",").compactMap { Precision(rawValue: String($0)) },
    threadCounts: threadCounts, repeats: repeats, deep: arguments.contains("--deep"), skipConv: skipConv,
    skipUNet: skipUNet, profile: arguments.contains("--profile"), unet: (unetSize, unetBatch, features)))
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

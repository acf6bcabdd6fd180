import Foundation
import IECore
import IEImage
import IENet
import IETrain

/// The sliding-window inference section of ie-bench: a UNet3D (f=32, 1 channel, 2 classes) over a CT-like volume with
/// MONAI's tiling (SPEC §5, MONAI and MONAIGaussian), the figures `sliding_window_constant` / `_gaussian` that
/// bench/reference/bench_monai.py measures with MONAI's sliding_window_inference on the same weights and volume.
///   ie-bench [--threads 1,2] [--repeats R] [--skip-inference] [--inference-size 64,160,160] [--inference-batch 1]
///            [--inference-overlap 0.25] [--inference-modes constant,gaussian] [--inference-precisions fp32,bf16]
///            [--inference-dir .build/bench-inference]
///   ie-bench --inference ...          this section only
///   ie-bench --inference-export DIR   only write DIR (bench_monai.py does when ie-bench has not run)
///   ie-bench --inference-run DIR --mode constant|gaussian --threads N --repeats R [--precision bf16]   one
///                                     measured configuration (bf16 only where it runs: otherwise no figure)
/// DIR holds weights.safetensors (our seed-42 network, BatchNorm statistics moved off (0, 1) by three training-mode
/// forwards so that the posteriors are not saturated), volume.f32 (already normalised) and setup.json; it is
/// rewritten only when the setup changes. Every (mode, threads) runs in a fresh child process, so its peak RSS is
/// that run's alone; it writes its posteriors to DIR/ie_<mode>_<threads>.f32, against which bench_monai.py reports
/// max_abs_diff (bf16: DIR/ie_<mode>_<threads>_bf16.f32, with max_abs_diff_vs_fp32 against our fp32 posteriors).
/// seconds (cpu_seconds) = best wall (CPU) time of min(R, 2) calls of the whole sliding-window
/// inference (patches, network, softmax, blending), model and volume loading excluded.
func runInferenceBenchmark(arguments: [String]) -> Int32 {
    func option(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    func ints(_ text: String?, _ fallback: [Int]) -> [Int] {
        text.map { $0.split(separator: ",").compactMap { Int($0) } } ?? fallback
    }
    let repeats = min(Int(option("--repeats") ?? "2") ?? 2, 2)
    do {
        if let dir = option("--inference-run") {
            try InferenceBench.child(dir: dir, mode: option("--mode") ?? "constant", threads: ints(option("--threads"), [1]).first ?? 1,
                                     repeats: repeats, precision: option("--precision") ?? "fp32")
            return 0
        }
        let size = ints(option("--inference-size"), [64, 160, 160])
        guard size.count == 3, size.allSatisfy({ $0 > 0 }) else { throw IEError.usage("--inference-size \(size), expected Z,Y,X") }
        let setup = InferenceBench.Setup(size: size, patch: 64,
                                         overlap: Double(option("--inference-overlap") ?? "0.25") ?? 0.25,
                                         batch: Int(option("--inference-batch") ?? "1") ?? 1)
        if let dir = option("--inference-export") {
            try InferenceBench.export(setup, dir: dir)
            return 0
        }
        let dir = option("--inference-dir") ?? ".build/bench-inference"
        try InferenceBench.export(setup, dir: dir)
        let modes = (option("--inference-modes") ?? "constant,gaussian").split(separator: ",").map(String.init)
        print("sliding-window inference, MONAI tiling: UNet3D f=\(InferenceBench.features), volume \(size), patch 64^3, "
              + "overlap \(setup.overlap), sw_batch_size \(setup.batch), one child process per configuration")
        let precisions = (option("--inference-precisions") ?? "fp32,bf16").split(separator: ",").map(String.init)
        for mode in modes {
            for precision in precisions {
                for threads in ints(option("--threads"), [1, 2]) {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
                    process.arguments = ["--inference-run", dir, "--mode", mode, "--threads", String(threads), "--repeats",
                                         String(repeats), "--precision", precision]
                    fflush(stdout)
                    try process.run()   // its BENCH line goes straight to our standard output
                    process.waitUntilExit()
                    guard process.terminationStatus == 0 else { throw IEError.failure("inference child (\(mode), \(precision), \(threads) threads) exited with status \(process.terminationStatus)") }
                }
            }
        }
        return 0
    } catch {
        print("inference benchmark: \(error)")
        return 1
    }
}

enum InferenceBench {
    /// DIR/setup.json, read by both children: shape [Z, Y, X], cubic patch, MONAI overlap, sw_batch_size.
    struct Setup: Codable {
        var size: [Int]
        var patch: Int
        var overlap: Double
        var batch: Int
        var shape: Shape3D { Shape3D(size) }
    }

    static let features = 32

    /// A CT-like normalised volume: air (-1) around an elliptic body (soft tissue near 0) with two denser
    /// ellipsoids (organs, 0.3 and 0.6), a bright "spine" cylinder (0.9), and uniform noise of +-0.05.
    static func volume(_ s: Shape3D) -> [Float] {
        var rng = SeededGenerator(seed: 11)
        var out = [Float](repeating: 0, count: s.count)
        let cz = Double(s.z) / 2, cy = Double(s.y) / 2, cx = Double(s.x) / 2
        var i = 0
        for z in 0..<s.z { for y in 0..<s.y { for x in 0..<s.x {
            let dz = (Double(z) - cz) / cz, dy = (Double(y) - cy) / cy, dx = (Double(x) - cx) / cx
            var v = -1.0
            if dy * dy / 0.6 + dx * dx / 0.85 < 1 { v = 0 }
            if dz * dz / 0.5 + (dy + 0.1) * (dy + 0.1) / 0.08 + (dx - 0.3) * (dx - 0.3) / 0.06 < 1 { v = 0.3 }
            if dz * dz / 0.3 + (dy - 0.2) * (dy - 0.2) / 0.05 + (dx + 0.35) * (dx + 0.35) / 0.04 < 1 { v = 0.6 }
            if (dy - 0.45) * (dy - 0.45) + dx * dx < 0.006 { v = 0.9 }
            out[i] = Float(v + rng.nextUniform(-0.05, 0.05)); i += 1
        } } }
        return out
    }

    static func export(_ setup: Setup, dir: String) throws {
        let setupData = try JSONEncoder().encode(setup)
        if (try? Data(contentsOf: URL(fileURLWithPath: dir + "/setup.json"))) == setupData,
           FileManager.default.fileExists(atPath: dir + "/weights.safetensors") { return }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: features, seed: 42)
        let image = volume(setup.shape)
        // Three training-mode forwards on a 32^3 crop move the BatchNorm statistics (momentum 0.1) off (0, 1).
        let crop = Shape3D(32, 32, 32)
        let start = Shape3D((setup.shape.z - 32) / 2, (setup.shape.y - 32) / 2, (setup.shape.x - 32) / 2)
        let cropped = extractBox(image, channels: 1, shape: setup.shape, start: start, size: crop, mode: .edge, fill: [0])
        for scale: Float in [1, 2, 0.5] {
            _ = net.forward(Tensor(shape: [1, 1, 32, 32, 32], data: cropped.map { $0 * scale }), training: true)
        }
        try AtomicFile.write(Checkpoint.serialize(tensors: net.stateDict(), metadata: ["purpose": "inference benchmark"]),
                             to: dir + "/weights.safetensors")
        try AtomicFile.write(image.withUnsafeBufferPointer { Data(buffer: $0) }, to: dir + "/volume.f32")
        try AtomicFile.write(setupData, to: dir + "/setup.json")   // last: it marks a complete DIR
    }

    /// One measured configuration (a fresh process): prints its BENCH line, writes DIR/ie_<mode>.f32.
    static func child(dir: String, mode: String, threads: Int, repeats: Int, precision: String) throws {
        let setup = try JSONDecoder().decode(Setup.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/setup.json")))
        let options = EngineOptions.fromCommandLine(threads: threads, precision: precision)
        guard options.precision.rawValue == precision else {
            print("  sliding_window_\(mode), \(threads) thread(s): \(precision) does not run here (\(options.bf16Obstacle ?? "?"))")
            return
        }
        debugMemory("start")
        // As ie-infer loads a model (the file records no architecture: the configured one, as for a PyTorch file).
        let net = try ModelLoading.load(checkpointPath: dir + "/weights.safetensors",
                                        architecture: UNet3DArchitecture(imageChannels: 1, classes: 2, featureChannels: features),
                                        options: options)
        debugMemory("restored")
        let raw = try Data(contentsOf: URL(fileURLWithPath: dir + "/volume.f32"))
        guard raw.count == setup.shape.count * 4 else { throw IEError.badInput("volume.f32 size \(raw.count), expected \(setup.shape.count * 4) bytes") }
        let image = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let patch = Shape3D(setup.patch, setup.patch, setup.patch)
        let window = try SlidingWindow(patch: patch, classCount: 2, batchSize: setup.batch, paddingMode: .zero,
                                       weighting: mode == "gaussian" ? .monaiGaussian(sigmaScale: 0.125) : .uniform,
                                       placement: .monai(overlap: setup.overlap))
        var posteriors = [Float]()
        var best = Double.infinity, bestCPU = Double.infinity
        for _ in 0..<max(1, repeats) {
            let start = now(), startCPU = cpuSeconds()
            posteriors = try window.run(image: image, channels: 1, shape: setup.shape) { batch, count, p in
                let r = net.predictProbabilities(Tensor(shape: [count, 1, p.z, p.y, p.x], data: batch)).data
                debugMemory("window")
                return r
            }
            best = min(best, now() - start)
            bestCPU = min(bestCPU, cpuSeconds() - startCPU)
        }
        let suffix = options.precision == .fp32 ? "" : "_" + precision
        try AtomicFile.write(posteriors.withUnsafeBufferPointer { Data(buffer: $0) }, to: dir + "/ie_\(mode)_\(threads)\(suffix).f32")
        var values: [String: Any] = [:]
        if options.precision != .fp32, let fp32 = try? Data(contentsOf: URL(fileURLWithPath: dir + "/ie_\(mode)_\(threads).f32")),
           fp32.count == posteriors.count * 4 {
            let reference = fp32.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            values["max_abs_diff_vs_fp32"] = zip(posteriors, reference).map { Double(abs($0 - $1)) }.max() ?? 0
        }
        if mode == "constant" && options.precision == .fp32 {
            // What ie-infer writes after the posteriors (SPEC §5): 2K + 2 gzipped NIfTI files, in parallel.
            let labels = PostProcessing.argmax(posteriors, classCount: 2)
            let start = now()
            try SubjectOutputs.write(directory: dir + "/outputs", posteriors: posteriors, labels: labels,
                                     classNames: ["background", "foreground"],
                                     reference: Volume(shape: setup.shape, data: image), threads: threads)
            print(String(format: "  ie-infer's 6 output files (NIfTI, gzip level 1) of this volume, %d thread(s): %.2f s",
                         threads, now() - start))
        }
        benchLine(figure: "sliding_window_\(mode)", threads: threads, precision: precision, values.merging([
                    "seconds": best, "cpu_seconds": bestCPU, "peak_rss_mib": peakRSSMiB(), "shape": setup.shape.array, "patch": setup.patch,
                    "overlap": setup.overlap, "sw_batch_size": setup.batch,
                    "windows": window.geometry(for: setup.shape).origins.count]) { $1 })
    }

    static func debugMemory(_ label: String) {
        guard ProcessInfo.processInfo.environment["IE_BENCH_DEBUG"] != nil,
              let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return }
        print("DEBUG", label, status.split(separator: "\n").filter { $0.hasPrefix("VmRSS") || $0.hasPrefix("VmHWM") }.joined(separator: " "))
    }
}

import Foundation
import IECore
import IENet
import IETrain

/// `ie-bench --inference`: sliding-window inference of a UNet3D (f=32, 1 channel, 2 classes) against MONAI's
/// sliding_window_inference on the same weights and volume (SPEC §5, tilings MONAI and MONAIGaussian).
///   ie-bench --inference [--threads 1,2] [--repeats 2] [--inference-size 64,192,192] [--inference-batch 1]
///            [--inference-overlap 0.25] [--inference-modes constant,gaussian] [--inference-dir DIR]
///            [--monai-python PATH]
/// The driver writes DIR/weights.safetensors (our seed-42 network, BatchNorm statistics moved off (0, 1) by three
/// training-mode forwards so the posteriors are not saturated) and DIR/volume.f32 (a CT-like synthetic volume,
/// already normalised), then times every (mode, threads) in a fresh child process per implementation, so each
/// peak RSS is that run's: `ie-bench --inference-run DIR ...` (ours) and `python bench/reference/bench_monai.py run
/// DIR ...` (MONAI, when a python with torch and monai is found: --monai-python, $IE_MONAI_PYTHON,
/// /work/venv-torch/bin/python, .venv-torch/bin/python3). Each child writes its posteriors; the driver prints the
/// children's BENCH lines with max_abs_diff (ours against MONAI's) added. seconds = best of --repeats calls of the
/// whole sliding-window inference (patching, network, softmax, blending), model and volume loading excluded.
func runInferenceBenchmark(arguments: [String]) -> Int32 {
    func option(_ name: String) -> String? {
        guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
        return arguments[i + 1]
    }
    func ints(_ text: String?, _ fallback: [Int]) -> [Int] {
        text.map { $0.split(separator: ",").compactMap { Int($0) } } ?? fallback
    }
    do {
        if let dir = option("--inference-run") {
            try InferenceBench.child(dir: dir, mode: option("--mode") ?? "constant", threads: ints(option("--threads"), [1])[0],
                                     repeats: Int(option("--repeats") ?? "2") ?? 2)
            return 0
        }
        let dir = option("--inference-dir") ?? NSTemporaryDirectory() + "ie-bench-inference"
        let size = ints(option("--inference-size"), [64, 192, 192])
        guard size.count == 3, size.allSatisfy({ $0 > 0 }) else { throw IEError.usage("--inference-size \(size), expected Z,Y,X") }
        let setup = InferenceBench.Setup(size: size, patch: 64,
                                         overlap: Double(option("--inference-overlap") ?? "0.25") ?? 0.25,
                                         batch: Int(option("--inference-batch") ?? "1") ?? 1)
        try InferenceBench.export(setup, dir: dir)
        let python = InferenceBench.monaiPython(option("--monai-python"))
        if python == nil { print("inference benchmark: no python with torch and monai found, MONAI side skipped") }
        let modes = (option("--inference-modes") ?? "constant,gaussian").split(separator: ",").map(String.init)
        for mode in modes {
            for threads in ints(option("--threads"), [1, 2]) {
                let repeats = option("--repeats") ?? "2"
                let common = ["--mode", mode, "--threads", String(threads), "--repeats", repeats]
                let ours = try InferenceBench.childLine([CommandLine.arguments[0], "--inference-run", dir] + common)
                var peer: [String: Any]?
                if let python {
                    // From the toolbox folder (as `make bench` runs), else next to this source file.
                    var script = "bench/reference/bench_monai.py"
                    if !FileManager.default.fileExists(atPath: script) {
                        script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                            .appendingPathComponent("../reference/bench_monai.py").standardized.path
                    }
                    peer = try InferenceBench.childLine([python, script, "run", dir] + common)
                }
                var diff: Double?
                if peer != nil {
                    diff = try InferenceBench.maxAbsDiff(dir + "/ie_\(mode).f32", dir + "/monai_\(mode).f32")
                }
                for var line in [ours] + (peer.map { [$0] } ?? []) {
                    if let diff { line["max_abs_diff"] = diff }
                    InferenceBench.printBench(line)
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
        try AtomicFile.write(JSONEncoder().encode(setup), to: dir + "/setup.json")
    }

    /// One measured configuration (a fresh process): prints its BENCH line, writes DIR/ie_<mode>.f32.
    static func child(dir: String, mode: String, threads: Int, repeats: Int) throws {
        let setup = try JSONDecoder().decode(Setup.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/setup.json")))
        let options = EngineOptions.fromCommandLine(threads: threads)
        let net = UNet3D(imageChannels: 1, classes: 2, featureChannels: features, seed: 0, options: options)
        try Checkpoint.load(Data(contentsOf: URL(fileURLWithPath: dir + "/weights.safetensors"))).restore(model: net)
        let raw = try Data(contentsOf: URL(fileURLWithPath: dir + "/volume.f32"))
        guard raw.count == setup.shape.count * 4 else { throw IEError.badInput("volume.f32 size \(raw.count), expected \(setup.shape.count * 4) bytes") }
        let image = raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let patch = Shape3D(setup.patch, setup.patch, setup.patch)
        let window = try SlidingWindow(patch: patch, classCount: 2, batchSize: setup.batch, paddingMode: .zero,
                                       weighting: mode == "gaussian" ? .monaiGaussian(sigmaScale: 0.125) : .uniform,
                                       placement: .monai(overlap: setup.overlap))
        var posteriors = [Float]()
        var best = Double.infinity
        for _ in 0..<max(1, repeats) {
            let start = now()
            posteriors = try window.run(image: image, channels: 1, shape: setup.shape) { batch, count, p in
                net.predictProbabilities(Tensor(shape: [count, 1, p.z, p.y, p.x], data: batch)).data
            }
            best = min(best, now() - start)
        }
        try AtomicFile.write(posteriors.withUnsafeBufferPointer { Data(buffer: $0) }, to: dir + "/ie_\(mode).f32")
        printBench(["figure": "sliding_window_\(mode)", "impl": "ie", "threads": threads, "precision": "fp32",
                    "seconds": best, "peak_rss_mib": peakRSSMiB(), "shape": setup.shape.array, "patch": setup.patch,
                    "overlap": setup.overlap, "sw_batch_size": setup.batch,
                    "windows": window.geometry(for: setup.shape).origins.count])
    }

    static func printBench(_ line: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]) else { return }
        print("BENCH " + String(decoding: data, as: UTF8.self))
        fflush(stdout)
    }

    /// Runs a child, echoes its other output, and returns the JSON of its BENCH line.
    static func childLine(_ command: [String]) throws -> [String: Any] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        var result: [String: Any]?
        for line in output.split(separator: "\n") {
            if line.hasPrefix("BENCH "), let json = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) {
                result = json as? [String: Any]
            } else {
                print(line)
            }
        }
        guard process.terminationStatus == 0, let result else {
            throw IEError.failure("\(command.joined(separator: " ")) exited with status \(process.terminationStatus) and no BENCH line")
        }
        return result
    }

    static func maxAbsDiff(_ a: String, _ b: String) throws -> Double {
        let x = try Data(contentsOf: URL(fileURLWithPath: a)), y = try Data(contentsOf: URL(fileURLWithPath: b))
        guard x.count == y.count else { throw IEError.failure("\(a) and \(b) differ in size (\(x.count), \(y.count) bytes)") }
        return x.withUnsafeBytes { xb in
            y.withUnsafeBytes { yb in
                zip(xb.bindMemory(to: Float.self), yb.bindMemory(to: Float.self)).reduce(0.0) { max($0, Double(abs($1.0 - $1.1))) }
            }
        }
    }

    static func monaiPython(_ given: String?) -> String? {
        let candidates = [given, ProcessInfo.processInfo.environment["IE_MONAI_PYTHON"], "/work/venv-torch/bin/python",
                          FileManager.default.currentDirectoryPath + "/.venv-torch/bin/python3"].compactMap { $0 }
        for python in candidates where FileManager.default.isExecutableFile(atPath: python) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = ["-c", "import torch, monai, safetensors"]
            process.standardError = FileHandle.nullDevice
            if (try? process.run()) != nil {
                process.waitUntilExit()
                if process.terminationStatus == 0 { return python }
            }
        }
        return nil
    }
}

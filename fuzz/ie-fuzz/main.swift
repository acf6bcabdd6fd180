// ie-fuzz: a seeded mutation fuzzer over the parsers a user's files reach (NIfTI header + voxels, safetensors
// checkpoint, dataset.csv, YAML model config, metrics.csv). Each input either parses or throws an IEError; a trap,
// a crash or an allocation past the memory limit kills the process, which `make fuzz` reports as a finding with
// the input left in fuzz/findings/. Deterministic: the same seed and iteration count give the same inputs.
//
//   ie-fuzz [--seconds=S per target] [--seed=N] [--target=nifti|safetensors|dataset|config|metrics]
import Foundation
import IECore
import IEConfig
import IEData
import IEEval
import IEImage
import IENet

struct Target {
    let name: String
    /// Parses one input given as a file path (the file holds the mutated bytes).
    let parse: (String) throws -> Void
    let fileName: String
}

func arguments() -> (seconds: Double, seed: UInt64, only: String?) {
    var seconds = 10.0, seed: UInt64 = 1, only: String?
    for argument in CommandLine.arguments.dropFirst() {
        let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { continue }
        switch parts[0] {
        case "--seconds": seconds = Double(parts[1]) ?? seconds
        case "--seed": seed = UInt64(parts[1]) ?? seed
        case "--target": only = parts[1]
        default: break
        }
    }
    return (seconds, seed, only)
}

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path
let scratch = NSTemporaryDirectory() + "ie-fuzz-\(getpid())"
try? FileManager.default.createDirectory(atPath: scratch + "/configs/segmentation", withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: scratch) }

var settings = Settings.defaults(relativeTo: scratch)
settings.modelConfigsDirs = [scratch + "/configs"]

let targets: [Target] = [
    Target(name: "nifti", parse: { path in _ = try NIfTI.read(path) }, fileName: "input.nii"),
    Target(name: "safetensors", parse: { path in
        _ = try Checkpoint.load(try Data(contentsOf: URL(fileURLWithPath: path)), source: path)
    }, fileName: "input.safetensors"),
    Target(name: "dataset", parse: { path in
        let dataset = try Dataset.load(path: path)
        _ = try? dataset.checkChannels(imageChannels: ["ct"], groundTruthIds: ["region"], maskId: nil,
                                       allowIncompleteLabels: true)
    }, fileName: "dataset.csv"),
    Target(name: "config", parse: { _ in
        _ = try ModelConfig.load(name: "Fuzz", settings: settings, requireRunnable: false)
    }, fileName: "configs/segmentation/Fuzz.yml"),
    Target(name: "metrics", parse: { path in
        let file = try MetricsFile.read(path: path)
        _ = MetricsAggregates.csv(file.records)
    }, fileName: "metrics.csv"),
]

/// Byte-level mutations: flips, interesting values, insertions, deletions, truncation, chunk duplication.
func mutate(_ input: [UInt8], using rng: inout SplitMix64) -> [UInt8] {
    var bytes = input.isEmpty ? [0] : input
    let interesting: [[UInt8]] = [[0], [0xff], [0x7f], [0x80], [0xff, 0x7f], [0x00, 0x80], [0xff, 0xff, 0xff, 0x7f],
                                  Array("-1".utf8), Array("1e309".utf8), Array("nan".utf8), Array("../".utf8),
                                  Array("\"".utf8), Array(",".utf8), Array("\n".utf8), Array("{".utf8), Array("[".utf8),
                                  Array("99999999999999999999".utf8), [0xc3], [0xe9]]
    for _ in 0...Int(rng.next() % 4) {
        if bytes.isEmpty { bytes = [0] }
        let at = Int(rng.next() % UInt64(bytes.count))
        switch rng.next() % 6 {
        case 0: bytes[at] ^= UInt8(1 << (rng.next() % 8))
        case 1:
            let value = interesting[Int(rng.next() % UInt64(interesting.count))]
            for (k, b) in value.enumerated() where at + k < bytes.count { bytes[at + k] = b }
        case 2: bytes.insert(contentsOf: interesting[Int(rng.next() % UInt64(interesting.count))], at: at)
        case 3: if bytes.count > 1 { bytes.removeSubrange(at..<min(bytes.count, at + 1 + Int(rng.next() % 16))) }
        case 4: bytes = Array(bytes.prefix(max(1, at)))
        default:
            let end = min(bytes.count, at + 1 + Int(rng.next() % 64))
            bytes.insert(contentsOf: bytes[at..<end], at: Int(rng.next() % UInt64(bytes.count)))
        }
    }
    return bytes
}

// An unbounded allocation is a finding too: cap the address space so it fails (and the process dies) at 4 GiB.
var limit = rlimit(rlim_cur: 4 << 30, rlim_max: 4 << 30)
setrlimit(Int32(RLIMIT_AS.rawValue), &limit)

let options = arguments()
let findings = root + "/findings"
var total = 0
for target in targets where options.only == nil || options.only == target.name {
    let corpusFolder = root + "/corpus/" + target.name
    let corpus = ((try? FileManager.default.contentsOfDirectory(atPath: corpusFolder)) ?? []).sorted()
        .compactMap { FileManager.default.contents(atPath: corpusFolder + "/" + $0) }.map { [UInt8]($0) }
    guard !corpus.isEmpty else {
        StandardStream.writeBestEffort("ie-fuzz: no corpus in \(corpusFolder)\n"); exit(2)
    }
    var rng = SplitMix64(seed: SplitMix64.mix(options.seed) ^ UInt64(target.name.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
    let inputPath = scratch + "/" + target.fileName
    let start = Date()
    var runs = 0, rejected = 0
    while Date().timeIntervalSince(start) < options.seconds {
        let seedInput = corpus[Int(rng.next() % UInt64(corpus.count))]
        let input = runs % 8 == 0 && runs < corpus.count * 8 ? seedInput : mutate(seedInput, using: &rng)
        _ = FileManager.default.createFile(atPath: inputPath, contents: Data(input))
        // Kept where `make fuzz` finds it if this input kills the process.
        _ = FileManager.default.createFile(atPath: findings + "/current-\(target.name)", contents: Data(input))
        do { try target.parse(inputPath) } catch is IEError { rejected += 1 } catch {
            StandardStream.writeBestEffort("ie-fuzz: \(target.name): a non-IEError was thrown: \(error)\n")
            exit(1)
        }
        runs += 1
    }
    try? FileManager.default.removeItem(atPath: findings + "/current-\(target.name)")
    total += runs
    StandardStream.writeBestEffort("ie-fuzz: \(target.name): \(runs) inputs in \(Int(options.seconds)) s, \(rejected) rejected with an error, no crash\n")
}
StandardStream.writeBestEffort("ie-fuzz: \(total) inputs, no finding\n")

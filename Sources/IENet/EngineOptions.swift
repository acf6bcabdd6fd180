import Foundation
import IECore

/// Which convolution backend a model prefers (SPEC 12, `IENET_CONV_BACKEND`). Each layer takes the first backend
/// in the choice's order that computes its shapes (ConvPlan); the GEMM path computes everything and comes last.
public enum ConvBackendChoice: String, CaseIterable, Sendable {
    /// direct kernel (few input channels, AVX2 + FMA), then oneDNN (when built in), then GEMM: the default.
    case auto
    /// im2col / implicit GEMM on OpenBLAS for every layer: the portable path and the test oracle.
    case gemm
    /// oneDNN where it takes the layer, else GEMM (without oneDNN in the build: GEMM, with a warning).
    case dnnl
    /// the direct kernel where it takes the layer, else GEMM.
    case direct
}

/// The arithmetic of the convolutions (SPEC 12, `--precision` / `IENET_PRECISION`).
public enum Precision: String, CaseIterable, Sendable {
    /// fp32 everywhere: the default, and what checkpoints always store.
    case fp32
    /// Mixed precision: oneDNN's convolutions read bf16 activations, weights and output gradients (rounded from
    /// IENet's fp32 tensors by the reorders into oneDNN's layout) and accumulate and write fp32; master weights,
    /// BatchNorm, the loss, the optimizer and every layer oneDNN does not take stay fp32. Needs oneDNN and a CPU
    /// with AVX512_BF16, else fp32 with one warning.
    case bf16
}

/// Everything that decides how IENet computes (and, through summation order, its last bits): threads, the
/// convolution backend and its tuning. A value: read once from the environment and the command line by
/// `fromEnvironment` and passed down to the model (UNet3D, layers, Engine). Nothing in IENet reads the
/// environment elsewhere or keeps global settings.
public struct EngineOptions: Sendable, Equatable {
    /// Threads of the GEMMs (OpenBLAS), oneDNN and IENet's own loops (they never run at the same time).
    public var threads: Int
    public var convBackend: ConvBackendChoice
    /// Floats per im2col column buffer (IENET_SLAB_FLOATS): slabs stay in cache between im2col and the GEMM.
    public var slabFloats = 1 << 18
    /// Slabs keep at least this many columns per output channel (IENET_COLUMNS_PER_CHANNEL), see rowsPerSlab.
    public var columnsPerOutputChannel = 8
    /// Hard cap on one column buffer (16 Mi floats = 64 MiB).
    public var columnCeilingFloats = 1 << 24
    /// Large stride-1 "same" convolutions skip im2col (IENET_IMPLICIT_GEMM=0 turns that off).
    public var implicitGEMM = true
    /// Convolutions with >= 8 input channels and long output rows, any stride, compute their weight gradient
    /// without im2col (ConvGeometry.usesImplicitWeightGradient; IENET_IMPLICIT_WGRAD=0 turns that off; last bits
    /// differ).
    public var implicitWeightGradient = true
    /// Strided convolutions' input gradient and transposed convolutions' forward split by output residue
    /// (SubPixelAdjoint) instead of GEMM + col2im (IENET_SUB_PIXEL=0 turns that off; last bits differ).
    public var subPixelAdjoint = true
    /// Under oneDNN, where its strided backward-data is gemm-based (AVX2), the sub-pixel split runs as stride-1
    /// convolutions on oneDNN's direct kernels (DNNLSubPixelPlan); IENET_DNNL_SUB_PIXEL=0 keeps it on IENet's GEMM.
    public var dnnlSubPixel = true
    /// The eval-mode forward (inference, validation) of 3x3x3 stride-1 convolutions with at least
    /// winogradMinimumChannels channels in and out and winogradMinimumVoxels output voxels runs as Winograd
    /// F(2x2x2, 3x3x3) (WinogradConv; IENET_WINOGRAD=0 keeps it on the layer's backend; last bits differ). fp32
    /// only: with bf16 the layer's oneDNN bf16 kernel is faster.
    public var winograd = true
    public var winogradMinimumChannels = 16
    public var winogradMinimumVoxels = 16 * 16 * 16
    /// The direct kernel's backward pass prefetches the next gradOutput slice (IENET_DIRECT_PREFETCH=0: off, same bits).
    public var directPrefetch = true
    /// Direct forward outputs above this many floats use non-temporal stores (IENET_DIRECT_STREAM_FLOATS).
    public var directStreamFloats = 4 << 20
    /// oneDNN reads/writes activations in its blocked layout with reorders around it (IENET_DNNL_LAYOUT=blocked|plain).
    public var dnnlBlockedActivations = true
    /// Layers with fewer input channels stay on GEMM under oneDNN (IENET_DNNL_MIN_CHANNELS).
    public var dnnlMinimumInputChannels = 8
    /// Activations above this many bytes stay on GEMM when oneDNN copies them to its layout (IENET_DNNL_MAX_COPY_MB).
    public var dnnlMaximumCopyBytes = 512 << 20
    /// Training prepares the next batch (crops, augmentations, transforms) on a worker thread while the current
    /// step runs (IENET_DATA_PREFETCH=0: each batch just before its step; the same bits either way).
    public var prefetchBatches = true

    /// Directions where oneDNN has only gemm-based or reference convolutions run on oneDNN anyway
    /// (IENET_DNNL_GEMM=1) instead of IENet's GEMM path (the default; see DNNLConv.gemmPath).
    public var dnnlGEMMImplementations = false
    /// oneDNN times its reorders and primitives per layer for `Engine.convProfile` (IENET_DNNL_PROFILE=1; a stream
    /// wait per stage, same bits).
    public var dnnlProfile = false
    /// The engine sums the wall time and arithmetic of every convolution call by direction in `Engine.convLedger`
    /// (ie-bench's figure for the UNet's conv layers; a clock read per call, same bits).
    public var convTiming = false
    /// The precision the convolutions use. `fromEnvironment` and `Engine` resolve a requested bf16 that this
    /// machine or build cannot run to fp32 (one warning per process), so a model's `engine.options.precision`
    /// is the precision actually used.
    public var precision = Precision.fp32
    /// Behave as if the CPU lacked AVX512_BF16 (IENET_BF16_UNAVAILABLE=1: tests of the fallback).
    public var bf16Unavailable = false

    /// The built-in defaults with `threads` threads (what tests and library callers get without an environment).
    public init(threads: Int = 1, convBackend: ConvBackendChoice = .auto) {
        self.threads = max(1, threads)
        self.convBackend = convBackend
    }

    /// THE reader of the engine's environment (SPEC 12): `threads` from the command line, else OMP_NUM_THREADS,
    /// else all cores; IENET_CONV_BACKEND and the IENET_* tuning values. Values it cannot use are warned about
    /// and left at their defaults.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment,
                                       threads: Int? = nil) -> EngineOptions {
        func integer(_ name: String, minimum: Int) -> Int? {
            guard let text = environment[name] else { return nil }
            guard let value = Int(text), value >= minimum else {
                Log.warning("\(name)=\(text) not understood, expected an integer >= \(minimum); using the default")
                return nil
            }
            return value
        }
        var options = EngineOptions(threads: ThreadCount.resolve(requested: threads, environment: environment),
                                    convBackend: chosen(byEnvironment: environment["IENET_CONV_BACKEND"],
                                                        dnnlBuilt: ConvBackend.isDNNLAvailable))
        if environment["IENET_DIRECT_CONV"] == "0" {
            // Kept from before the backend choice: the few-channel layers on the general path too.
            switch options.convBackend {
            case .auto: options.convBackend = ConvBackend.isDNNLAvailable ? .dnnl : .gemm
            case .direct: options.convBackend = .gemm
            case .gemm, .dnnl: break
            }
        }
        if let n = integer("IENET_SLAB_FLOATS", minimum: 1) { options.slabFloats = n }
        if let n = integer("IENET_COLUMNS_PER_CHANNEL", minimum: 0) { options.columnsPerOutputChannel = n }
        if environment["IENET_IMPLICIT_GEMM"] == "0" { options.implicitGEMM = false }
        if environment["IENET_IMPLICIT_WGRAD"] == "0" { options.implicitWeightGradient = false }
        if environment["IENET_SUB_PIXEL"] == "0" { options.subPixelAdjoint = false }
        if environment["IENET_DNNL_SUB_PIXEL"] == "0" { options.dnnlSubPixel = false }
        if environment["IENET_WINOGRAD"] == "0" { options.winograd = false }
        if let n = integer("IENET_WINOGRAD_MIN_VOXELS", minimum: 0) { options.winogradMinimumVoxels = n }
        if environment["IENET_DIRECT_PREFETCH"] == "0" { options.directPrefetch = false }
        if let n = integer("IENET_DIRECT_STREAM_FLOATS", minimum: 0) { options.directStreamFloats = n }
        if environment["IENET_DNNL_LAYOUT"]?.lowercased() == "plain" { options.dnnlBlockedActivations = false }
        if let n = integer("IENET_DNNL_MIN_CHANNELS", minimum: 0) { options.dnnlMinimumInputChannels = n }
        if let n = integer("IENET_DNNL_MAX_COPY_MB", minimum: 0) { options.dnnlMaximumCopyBytes = n << 20 }
        if environment["IENET_DATA_PREFETCH"] == "0" { options.prefetchBatches = false }
        if environment["IENET_BF16_UNAVAILABLE"] == "1" { options.bf16Unavailable = true }
        if environment["IENET_DNNL_PROFILE"] == "1" { options.dnnlProfile = true }
        if environment["IENET_DNNL_GEMM"] == "1" { options.dnnlGEMMImplementations = true }
        if let text = environment["IENET_PRECISION"], !text.isEmpty {
            if let precision = Precision(rawValue: text.lowercased()) {
                options.precision = precision
            } else {
                Log.warningOnce("IENET_PRECISION=\(text) not understood, expected fp32 or bf16; using fp32")
            }
        }
        return options.resolvingPrecision()
    }

    /// Why bf16 cannot run with these options on this machine and build (nil: it can).
    public var bf16Obstacle: String? {
        if !ConvBackend.isDNNLAvailable { return "this build has no oneDNN (install libdnnl-dev and rebuild)" }
        if !usesDNNL { return "the convolution backend is \(convBackend.rawValue), bf16 needs oneDNN" }
        if bf16Unavailable { return "IENET_BF16_UNAVAILABLE=1 (treated as a CPU without AVX512_BF16)" }
        return ConvBackend.dnnlBF16Obstacle()
    }

    /// These options with a requested bf16 that cannot run replaced by fp32, warned about once per process.
    /// A bf16 that runs but is slower than fp32 on this CPU stays bf16 (the user asked for its arithmetic) with
    /// one warning that says so.
    public func resolvingPrecision() -> EngineOptions {
        guard precision == .bf16 else { return self }
        guard let obstacle = bf16Obstacle else {
            if let ratio = ConvBackend.dnnlBF16TimeOverFP32(), let warning = Self.bf16SpeedWarning(timeOverFP32: ratio) {
                Log.warningOnce(warning)
            }
            return self
        }
        Log.warningOnce("--precision=bf16 requested but \(obstacle): using fp32")
        var resolved = self
        resolved.precision = .fp32
        return resolved
    }

    /// The warning for a bf16 convolution that took `timeOverFP32` times fp32's in the start-up check; nil up to
    /// 1.25x (bf16's smaller memory traffic can still pay off near 1, and the check's timing varies by a few %).
    static func bf16SpeedWarning(timeOverFP32 ratio: Double) -> String? {
        guard ratio > 1.25 else { return nil }
        return "--precision=bf16: on this CPU oneDNN's bf16 convolutions take " + String(format: "%.1f", ratio)
            + "x the time of fp32 ones in a start-up check (as where bf16 dot products run slower than fp32 FMAs, "
            + "e.g. Intel CPUs without AMX): bf16 runs as asked, --precision fp32 would be faster here"
    }

    /// For a tool's `--threads`: a given count becomes the process's OMP_NUM_THREADS (what `fromEnvironment`,
    /// oneDNN's OpenMP runtime and child processes read), then the options are read as `fromEnvironment` does.
    /// A given `precision` (`--precision`) likewise becomes IENET_PRECISION.
    @discardableResult
    public static func fromCommandLine(threads: Int?, precision: String? = nil) -> EngineOptions {
        if let threads, threads > 0 { setenv("OMP_NUM_THREADS", String(threads), 1) }
        if let precision { setenv("IENET_PRECISION", precision, 1) }
        return fromEnvironment(threads: threads)
    }

    /// The backend for a value of IENET_CONV_BACKEND (nil: unset) in a build with or without oneDNN.
    static func chosen(byEnvironment value: String?, dnnlBuilt: Bool) -> ConvBackendChoice {
        switch value?.lowercased() {
        case nil, "", "auto": return .auto
        case "gemm": return .gemm
        case "direct": return .direct
        case "dnnl", "onednn":
            if dnnlBuilt { return .dnnl }
            Log.warning("IENET_CONV_BACKEND=\(value!) but this build has no oneDNN (install libdnnl-dev and rebuild); using gemm")
            return .gemm
        default:
            Log.warning("IENET_CONV_BACKEND=\(value!) not understood, expected auto, gemm, dnnl or direct; using auto")
            return .auto
        }
    }

    /// Whether the direct few-channel kernel is among the backends (and this CPU can run it).
    public var usesDirectKernel: Bool {
        (convBackend == .auto || convBackend == .direct) && DirectConv.cpuSupported
    }

    /// Whether oneDNN is among the backends (and built in).
    public var usesDNNL: Bool { (convBackend == .auto || convBackend == .dnnl) && ConvBackend.isDNNLAvailable }

    /// The library of the general layers as recorded in checkpoints ("dnnl" or "gemm").
    public var library: ConvBackend { usesDNNL ? .dnnl : .gemm }

    /// One line for logs, the run's build information and the bench.
    public var summary: String {
        let general = usesDNNL ? "dnnl (\(ConvBackend.dnnlDescription(self)))" : "gemm (im2col + OpenBLAS sgemm)"
        let direct: String
        if usesDirectKernel {
            direct = "direct 3x3x3 kernel for 1..\(DirectConv.maximumInputChannels) input channels: on (AVX2 + FMA)"
        } else {
            direct = DirectConv.cpuSupported ? "direct 3x3x3 kernel: off (backend \(convBackend.rawValue))"
                : "direct 3x3x3 kernel: off (this CPU lacks AVX2/FMA)"
        }
        let arithmetic = precision == .bf16
            ? "precision bf16 (oneDNN convolutions: bf16 operands, fp32 accumulation; other layers fp32)"
            : "precision fp32"
        return "\(general); \(direct); \(arithmetic)"
    }
}

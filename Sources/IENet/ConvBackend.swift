import Foundation
import IECore

/// The library that computes the general convolutions: `gemm` (im2col + OpenBLAS sgemm) is the portable reference
/// and the test oracle; `dnnl` (oneDNN primitives) exists only when the package was built with `libdnnl-dev`.
/// Measured with bench/ie-bench on this 2-core AVX-512 machine, per CPU-second, batch 2, 1 thread: conv 32->32
/// at 64^3 forward+backward 95.8 GFLOP/s (dnnl) vs 74.5 (gemm); UNet3D f=32 64^3 training step 7.9 s vs 10.0 s.
/// Results differ in the last bits, so resume with the same backend (checkpoints record it).
public enum ConvBackend: String, CaseIterable, Sendable {
    case gemm
    case dnnl

    /// True when this build contains the oneDNN backend.
    public static var isDNNLAvailable: Bool { dnnlRegistration != nil }

    /// oneDNN's version, ISA and runtime for the summary line.
    static func dnnlDescription(_ options: EngineOptions) -> String {
        dnnlRegistration?.describe(options) ?? "not built"
    }

    /// Why oneDNN cannot run bf16 convolutions here (nil: it can): not built, or the CPU lacks AVX512_BF16.
    static func dnnlBF16Obstacle() -> String? {
        guard let registration = dnnlRegistration else { return "this build has no oneDNN" }
        return registration.bf16Obstacle()
    }

    /// A oneDNN bf16 convolution's time over the same one in fp32 on this CPU, measured once per process
    /// (nil: bf16 cannot run here).
    static func dnnlBF16TimeOverFP32() -> Double? {
        dnnlRegistration?.bf16TimeOverFP32()
    }
}

/// One convolution library: the three products of a `ConvGeometry` g over NCDHW tensors and [out, in, k, k, k]
/// weights. A transposed convolution (ConvTranspose3d) is g's adjoint: its forward is g's backward-data.
/// Backends: DirectConv (few input channels), DNNLConv (oneDNN), GEMMConv (everything; last in every order).
protocol ConvAlgorithm: AnyObject {
    /// "direct", "dnnl" or "gemm".
    var name: String { get }
    /// Whether this backend computes g for this batch, as a convolution or (adjoint) as its transpose.
    func handles(_ g: ConvGeometry, batch: Int, adjoint: Bool) -> Bool
    /// output = conv(input, weight), fully overwritten.
    func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                 output: UnsafeMutablePointer<Float>)
    /// gradInput = the input gradient for gradOutput, fully overwritten.
    func backwardData(_ g: ConvGeometry, batch: Int, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      gradInput: UnsafeMutablePointer<Float>)
    /// gradWeight += the weight gradient of conv(input) for gradOutput.
    func accumulateWeightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>)
    /// Both gradients (a backend may fuse them); default: weights, then data.
    func backward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?)
    /// The transposed convolution's forward: target = adjoint of forward applied to source; default backwardData.
    func adjointForward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        target: UnsafeMutablePointer<Float>)
    /// The transposed convolution's backward: gradWeight += weight gradient, gradSource = forward(gradTarget).
    func adjointBackward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradTarget: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                         gradSource: UnsafeMutablePointer<Float>?)
    /// The library's own names for what runs (oneDNN: its kernels per direction); default: the backend's name.
    func implementations(_ g: ConvGeometry, batch: Int) -> [String]
    /// Lines of timings per layer and direction where the backend keeps them (oneDNN with dnnlProfile); default none.
    func profile() -> [String]
}

extension ConvAlgorithm {
    func implementations(_ g: ConvGeometry, batch: Int) -> [String] { [name] }
    func profile() -> [String] { [] }

    func backward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?) {
        accumulateWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
        if let gradInput { backwardData(g, batch: batch, gradOutput: gradOutput, weight: weight, gradInput: gradInput) }
    }

    func adjointForward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                        target: UnsafeMutablePointer<Float>) {
        backwardData(g, batch: batch, gradOutput: source, weight: weight, gradInput: target)
    }

    func adjointBackward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradTarget: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                         gradSource: UnsafeMutablePointer<Float>?) {
        accumulateWeightGradient(g, batch: batch, input: gradTarget, gradOutput: source, gradWeight: gradWeight)
        if let gradSource { forward(g, batch: batch, input: gradTarget, weight: weight, output: gradSource) }
    }
}

/// How an optional backend joins the build: its factory and its description. The one place that knows whether
/// oneDNN is compiled in is `dnnlRegistration` (DNNLConv.swift).
struct ConvBackendRegistration: Sendable {
    let make: @Sendable (EngineOptions) -> ConvAlgorithm
    let describe: @Sendable (EngineOptions) -> String
    /// Why the library cannot run bf16 convolutions on this CPU (nil: it can).
    let bf16Obstacle: @Sendable () -> String?
    /// A bf16 convolution's time over fp32's on this CPU, measured once (nil: bf16 cannot run).
    let bf16TimeOverFP32: @Sendable () -> Double?
}

/// The backend chosen for one layer's geometry and batch: made when the layer first sees an input of that shape.
struct ConvPlan {
    let geometry: ConvGeometry
    let batch: Int
    let algorithm: ConvAlgorithm
    /// The eval-mode forward where Winograd applies (nil: `algorithm` does it too).
    var evalForward: WinogradConv? = nil
    /// Where the calls' times go (options.convTiming), else nil.
    var ledger: ConvLedger? = nil

    /// Multiply-adds of one forward pass of `geometry` over the batch (padding taps included, as benchmarks count).
    var multiplyAdds: Double {
        Double(batch) * Double(geometry.outChannels * geometry.inChannels) * pow(Double(geometry.kernel), 3)
            * Double(geometry.outSpatial)
    }

    /// Runs `body`, and with a ledger adds its wall time and `passes` x 2 x multiplyAdds FLOPs to `direction`.
    @inline(__always)
    private func timed(_ direction: ConvLedger.Direction, passes: Int, _ body: () -> Void) {
        guard let ledger else { return body() }
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        let g = geometry
        ledger.add(direction, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9,
                   flops: Double(2 * passes) * multiplyAdds,
                   layer: "\(algorithm.name) \(g.inChannels)->\(g.outChannels) k\(g.kernel) s\(g.stride) "
                       + "\(g.inD)x\(g.inH)x\(g.inW)" + (passes == 2 ? " with input gradient" : ""))
    }
}

/// Wall time and FLOPs of an engine's convolution calls by direction and layer (options.convTiming), for the
/// benchmark's rate of the conv layers inside a whole training step. Layers run one after another; the lock only
/// makes reading it from another thread safe.
public final class ConvLedger: @unchecked Sendable {
    public enum Direction: Int, CaseIterable, Sendable { case forward, backward }
    public struct Totals: Sendable {
        public var calls = 0
        public var seconds = 0.0
        public var flops = 0.0
        public var gflops: Double { seconds > 0 ? flops / seconds / 1e9 : 0 }
        public init() {}
        mutating func add(_ other: Totals) { calls += other.calls; seconds += other.seconds; flops += other.flops }
    }
    private struct Key: Hashable { let direction: Direction; let layer: String }
    private let lock = NSLock()
    private var entries: [Key: Totals] = [:]

    func add(_ direction: Direction, seconds: Double, flops: Double, layer: String) {
        var call = Totals()
        call.calls = 1; call.seconds = seconds; call.flops = flops
        lock.lock(); defer { lock.unlock() }
        entries[Key(direction: direction, layer: layer), default: Totals()].add(call)
    }

    /// Totals per direction, backend and geometry ("backward dnnl 32->32 k3 s1 64x64x64 with input gradient"),
    /// the slowest first.
    public var byLayer: [(layer: String, totals: Totals)] {
        lock.lock(); defer { lock.unlock() }
        return entries.map { ("\($0.key.direction) " + $0.key.layer, $0.value) }.sorted { $0.1.seconds > $1.1.seconds }
    }

    /// The totals of one direction, or of all calls (nil).
    public func totals(_ direction: Direction? = nil) -> Totals {
        lock.lock(); defer { lock.unlock() }
        return entries.reduce(into: Totals()) { sum, entry in
            if direction == nil || entry.key.direction == direction { sum.add(entry.value) }
        }
    }

    public func reset() {
        lock.lock(); defer { lock.unlock() }
        entries = [:]
    }
}

/// The plan's operations on a layer's tensors: where storage is reached, once per call.
extension ConvPlan {
    /// y = conv(x) (Conv3d forward). `eval`: nothing is kept for a backward pass, so the eval-mode algorithm
    /// (Winograd) may compute it.
    func forward(_ x: Tensor, weight: Parameter, into y: inout Tensor, eval: Bool = false) {
        x.withPointer { xp in
            weight.withValuePointer { wp in
                y.withMutablePointer { yp in
                    timed(.forward, passes: 1) {
                        if eval, let evalForward {
                            evalForward.forward(geometry, batch: batch, input: xp, weight: wp, output: yp)
                        } else {
                            algorithm.forward(geometry, batch: batch, input: xp, weight: wp, output: yp)
                        }
                    }
                }
            }
        }
    }

    /// weight.grad += dW; gradInput (when given) = dX (Conv3d backward).
    func backward(_ x: Tensor, weight: Parameter, gradOutput: Tensor, gradInput: inout Tensor?) {
        withGradients(x, weight: weight, gradOutput: gradOutput, gradInput: &gradInput) { xp, wp, gp, gwp, gip in
            timed(.backward, passes: gip == nil ? 1 : 2) {
                algorithm.backward(geometry, batch: batch, input: xp, weight: wp, gradOutput: gp, gradWeight: gwp,
                                   gradInput: gip)
            }
        }
    }

    /// y = the transposed convolution of x (ConvTranspose3d forward: the adjoint of `geometry`).
    func adjointForward(_ x: Tensor, weight: Parameter, into y: inout Tensor) {
        x.withPointer { xp in
            weight.withValuePointer { wp in
                y.withMutablePointer { yp in
                    timed(.forward, passes: 1) {
                        algorithm.adjointForward(geometry, batch: batch, source: xp, weight: wp, target: yp)
                    }
                }
            }
        }
    }

    /// ConvTranspose3d backward: weight.grad += dW; gradInput (when given) = dX.
    func adjointBackward(_ x: Tensor, weight: Parameter, gradOutput: Tensor, gradInput: inout Tensor?) {
        withGradients(x, weight: weight, gradOutput: gradOutput, gradInput: &gradInput) { xp, wp, gp, gwp, gip in
            timed(.backward, passes: gip == nil ? 1 : 2) {
                algorithm.adjointBackward(geometry, batch: batch, source: xp, weight: wp, gradTarget: gp,
                                          gradWeight: gwp, gradSource: gip)
            }
        }
    }

    private func withGradients(_ x: Tensor, weight: Parameter, gradOutput: Tensor, gradInput: inout Tensor?,
                               _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafePointer<Float>,
                                        UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>?) -> Void) {
        x.withPointer { xp in
            gradOutput.withPointer { gp in
                weight.withPointers { wp, gwp in
                    if gradInput == nil { body(xp, wp, gp, gwp, nil); return }
                    gradInput!.withMutablePointer { body(xp, wp, gp, gwp, $0) }
                }
            }
        }
    }
}

/// The runtime of one model's EngineOptions: its backends in preference order (GEMM last) and their scratch
/// memory and cached oneDNN primitives. Layers of a model run one after another on it; nothing is global.
public final class Engine {
    public let options: EngineOptions
    /// Preference order; the last (GEMM) computes everything.
    let algorithms: [ConvAlgorithm]

    public init(_ options: EngineOptions = EngineOptions()) {
        _ = largeTensorAllocatorConfigured
        let options = options.resolvingPrecision()
        self.options = options
        var preferred: [ConvAlgorithm] = []
        if options.usesDirectKernel { preferred.append(DirectConv(options)) }
        if options.usesDNNL, let dnnl = dnnlRegistration { preferred.append(dnnl.make(options)) }
        algorithms = preferred + [GEMMConv(options, preferred: preferred)]
        convLedger = options.convTiming ? ConvLedger() : nil
    }

    public var threads: Int { options.threads }

    /// Time and FLOPs of this engine's convolution calls (options.convTiming), else nil.
    public let convLedger: ConvLedger?

    /// The precision this engine's convolutions use (a requested bf16 that cannot run is fp32 here).
    public var precision: Precision { options.precision }

    /// The first backend that computes g (as a convolution, or as its transpose when `adjoint`).
    func plan(_ g: ConvGeometry, batch: Int, adjoint: Bool) -> ConvPlan {
        let chosen = algorithms.first { $0.handles(g, batch: batch, adjoint: adjoint) } ?? algorithms[algorithms.count - 1]
        var plan = ConvPlan(geometry: g, batch: batch, algorithm: chosen, ledger: convLedger)
        if !adjoint && winograd.handles(g) { plan.evalForward = winograd }
        return plan
    }

    /// The eval-mode forward of 3x3x3 stride-1 layers (options.winograd; its own scratch).
    private(set) lazy var winograd = WinogradConv(options)

    /// The backends' timings per layer and direction (oneDNN, when options.dnnlProfile is on: IENET_DNNL_PROFILE=1).
    public var convProfile: [String] { algorithms.flatMap { $0.profile() } }

    /// The backend name a convolution with these settings would use (for the bench and tests).
    public func backendName(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int,
                            size: (Int, Int, Int), batch: Int) -> String {
        plan(ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
                          padding: padding, inD: size.0, inH: size.1, inW: size.2), batch: batch, adjoint: false)
            .algorithm.name
    }
}

#if IE_DNNL
import Foundation
import CDNNL
import IECore

/// The oneDNN convolution backend. Every IENet convolution is expressed as one of three oneDNN convolution
/// primitives of a `ConvGeometry` g: forward (Conv3d forward, ConvTranspose3d input gradient), backward-data
/// (Conv3d input gradient, ConvTranspose3d forward: the transposed conv is g's adjoint) and backward-weights.
/// Activations stay plain NCDHW in IENet's tensors; weights are handed over in IENet's [out, in, k, k, k]
/// (oneDNN `oidhw`) and reordered to whatever blocked layout the chosen kernel wants. Primitives, reorders and
/// their internal buffers are built once per (geometry, batch, direction) and cached by the model's instance.
final class DNNLConv: ConvAlgorithm {
    let name = "dnnl"
    let options: EngineOptions
    private var threads: Int { options.threads }
    private var blockedActivations: Bool { options.dnnlBlockedActivations }

    enum Direction: Int { case forward, backwardData, backwardWeights }

    struct Key: Hashable {
        let geometry: [Int]
        let batch: Int
        let direction: Direction

        init(_ g: ConvGeometry, batch: Int, _ direction: Direction) {
            geometry = [g.inChannels, g.outChannels, g.kernel, g.stride, g.padding, g.inD, g.inH, g.inW]
            self.batch = batch
            self.direction = direction
        }
    }

    /// Plans by geometry, batch and direction (nil: oneDNN cannot do it). The thread count and the activation
    /// layout (options.dnnlBlockedActivations: oneDNN's blocked layout with reorders, or ncdhw in place) are fixed.
    private var cache: [Key: Plan?] = [:]
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Five 64-byte aligned buffers for the blocked copies of a primitive's arguments. Convolutions run one after
    /// another and each uses a slot per argument, so the layers of a model share them.
    /// Slot 3: the plain weights of a sub-pixel class (DNNLSubPixelPlan); slot 4 (sharedSlot): an operand that two
    /// primitives of one backward read in the same layout, converted once (Plan.Sharing).
    private var slots: [(pointer: UnsafeMutableRawPointer, bytes: Int)?] = [nil, nil, nil, nil, nil]
    static let sharedSlot = 4

    init(_ options: EngineOptions) {
        self.options = options
        var engine: dnnl_engine_t?
        let status = dnnl_engine_create(&engine, dnnl_cpu, 0)
        guard status == dnnl_success, let engine else {
            preconditionFailure("oneDNN: cannot create the CPU engine (status \(status.rawValue))")
        }
        var stream: dnnl_stream_t?
        let streamStatus = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue)
        guard streamStatus == dnnl_success, let stream else {
            preconditionFailure("oneDNN: cannot create a stream (status \(streamStatus.rawValue))")
        }
        self.engine = engine
        self.stream = stream
    }

    deinit {
        cache.removeAll()
        subPixelCache.removeAll()
        for slot in slots { slot?.pointer.deallocate() }
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// Why this CPU cannot run oneDNN's bf16 convolutions (nil: it can): the effective ISA must include
    /// avx512_core_bf16 (AVX512_BF16), and oneDNN must build a small bf16 convolution. Decided once per process.
    static let bf16Obstacle: String? = {
        let bf16Bits = dnnl_cpu_isa_avx512_core_bf16.rawValue
        guard dnnl_get_effective_cpu_isa().rawValue & bf16Bits == bf16Bits else {
            return "this CPU lacks AVX512_BF16 (oneDNN's ISA: \(isaName))"
        }
        let engine = DNNLConv(EngineOptions(threads: 1))
        let g = ConvGeometry(inChannels: 16, outChannels: 16, kernel: 3, stride: 1, padding: 1, inD: 4, inH: 4, inW: 4)
        let made = [Direction.forward, .backwardData, .backwardWeights].allSatisfy {
            Plan(g, batch: 1, $0, blockedActivations: true, bf16: true, engine: engine.engine) != nil
        }
        return made ? nil : "oneDNN cannot make a bf16 convolution on this CPU (\(isaName))"
    }()

    /// The time of one bf16 convolution over the same convolution in fp32, measured once per process (a 32->32
    /// 3x3x3 forward at 16^3 on 1 thread, best of 3 each after a warm-up: ~20 ms). Where it is well above 1 the
    /// CPU's bf16 dot products are slower than its fp32 FMAs: 1.6-1.9 measured on an Intel Xeon with AVX512_BF16
    /// but no AMX (oneDNN's bf16 matmul at 0.52x its fp32 sgemm there); on the AMD EPYC with AVX512_BF16 of an
    /// earlier session the bf16 conv primitives ran at about twice fp32's rate (this check was not run there).
    /// nil where bf16 cannot run here.
    static let bf16TimeOverFP32: Double? = {
        guard bf16Obstacle == nil else { return nil }
        let g = ConvGeometry(inChannels: 32, outChannels: 32, kernel: 3, stride: 1, padding: 1, inD: 16, inH: 16, inW: 16)
        var rng = SeededGenerator(seed: 5)
        let input = (0..<g.inChannels * g.inSpatial).map { _ in Float(rng.nextUniform(-1, 1)) }
        let weight = (0..<g.outChannels * g.inChannels * 27).map { _ in Float(rng.nextUniform(-0.1, 0.1)) }
        var output = [Float](repeating: 0, count: g.outChannels * g.outSpatial)
        func seconds(_ precision: Precision) -> Double {
            var options = EngineOptions(threads: 1)
            options.precision = precision
            let conv = DNNLConv(options)
            guard conv.handles(g, batch: 1, adjoint: false) else { return .infinity }  // no primitive: no timing
            var best = Double.infinity
            for attempt in 0..<4 {
                let start = DispatchTime.now().uptimeNanoseconds
                conv.forward(g, batch: 1, input: input, weight: weight, output: &output)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if attempt > 0 { best = min(best, elapsed) }  // the first call builds the primitive
            }
            return best
        }
        let fp32 = seconds(.fp32), bf16 = seconds(.bf16)
        return fp32 > 0 && fp32.isFinite && bf16.isFinite ? bf16 / fp32 : nil
    }()

    /// oneDNN's name of the instruction set it uses on this CPU.
    static var isaName: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx"
        case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16"
        case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni"
        case dnnl_cpu_isa_avx512_core: return "avx512_core"
        case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni"
        case dnnl_cpu_isa_avx2: return "avx2"
        case let other: return "isa 0x\(String(other.rawValue, radix: 16))"
        }
    }

    static func libraryDescription(_ options: EngineOptions) -> String {
        let version = dnnl_version()!.pointee
        let runtime = version.cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP"
            : version.cpu_runtime == DNNL_RUNTIME_TBB ? "TBB" : "runtime \(version.cpu_runtime)"
        return "oneDNN \(version.major).\(version.minor).\(version.patch), \(isaName), \(runtime), "
            + (options.dnnlBlockedActivations ? "blocked activations" : "plain ncdhw activations")
            + (options.precision == .bf16 ? ", bf16 operands" : "")
    }

    // MARK: Entry points used by ConvKernels (only after `supports` said yes)

    /// Convolutions with fewer input channels than options.dnnlMinimumInputChannels (8) stay on the GEMM path:
    /// oneDNN 2.6 is slower on the UNet's first layer (measured 1->32 at 64^3, batch 2, 1 thread, per CPU-second:
    /// forward 17.4 vs GEMM 19.4 GFLOP/s, forward+backward 11.0 vs 30.7; 2 threads 13.0 vs 17.8 forward).
    /// Activations above options.dnnlMaximumCopyBytes (512 MiB) stay on GEMM when copied to the blocked layout:
    /// those copies are whole tensors, unlike the GEMM path's bounded slabs (whole-volume inference).
    /// Whether oneDNN takes this geometry and built all three primitives for it (else the GEMM path runs).
    func handles(_ g: ConvGeometry, batch: Int, adjoint: Bool) -> Bool {
        let largestActivation = batch * max(g.inChannels * g.inSpatial, g.outChannels * g.outSpatial) * MemoryLayout<Float>.size
        if blockedActivations && largestActivation > options.dnnlMaximumCopyBytes { return false }
        // A 1x1x1 layer with few output channels (the UNet's output layer, 32->2) is memory-bound: oneDNN's
        // reorders of its activations cost more than the GEMM path's plain sgemm (measured at 64^3, batch 2,
        // 1 thread: 5.0 / 1.9 / 4.6 GFLOP/s forward / input / weight gradient with reorders, ~63 ms a step).
        if g.isPointwise && g.outChannels < options.dnnlMinimumInputChannels { return false }
        return g.inChannels >= options.dnnlMinimumInputChannels && plan(g, batch: batch, .forward) != nil && plan(g, batch: batch, .backwardData) != nil
            && plan(g, batch: batch, .backwardWeights) != nil
    }

    /// IENet's GEMM path, for the directions where oneDNN has only its gemm-based or reference convolution
    /// ("x64:gemm:jit", "ref:any"; unless options.dnnlGEMMImplementations). On AVX2 CPUs oneDNN 2.6 has no direct
    /// 3D backward-weights kernel: measured (1 thread, batch 2, 32->32 at 64^3) its gemm:jit weight gradient ran at
    /// 25.6 GFLOP/s, IENet's im2col path at about 60, its implicit weight gradient (GEMMConv.implicitWeightGradient,
    /// on oneDNN's sgemm through transposedWeightGEMM) at about 77. Where oneDNN has direct kernels for every
    /// direction (AVX-512 CPUs) nothing changes.
    private lazy var gemmPath: GEMMConv = {
        let path = GEMMConv(options, preferred: [])
        path.transposedWeightGEMM = { m, n, k, a, lda, b, ldb, c, ldc, threads in
            omp_set_num_threads(Int32(threads))
            let status = dnnl_sgemm(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "T")), Int64(m), Int64(n), Int64(k), 1,
                                    a, Int64(lda), b, Int64(ldb), 1, c, Int64(ldc))
            precondition(status == dnnl_success, "oneDNN sgemm failed (status \(status.rawValue))")
        }
        return path
    }()

    /// Whether `plan` is one of oneDNN's gemm-based or reference implementations that the GEMM path replaces.
    private func replacedByGEMMPath(_ plan: Plan) -> Bool {
        !options.dnnlGEMMImplementations && !Self.isDirect(plan.implementation)
    }

    /// Whether oneDNN's implementation name (`implementationName`) is a direct JIT kernel, not its gemm-based
    /// ("x64:gemm:jit") or reference ("ref:any") convolution.
    static func isDirect(_ implementation: String) -> Bool {
        !implementation.contains("gemm") && !implementation.hasPrefix("ref")
    }

    /// The implementation oneDNN chose for a primitive descriptor (e.g. "jit:avx2", "x64:gemm:jit").
    static func implementationName(_ pd: dnnl_primitive_desc_t) -> String {
        var info: UnsafePointer<CChar>?
        _ = withUnsafeMutablePointer(to: &info) { dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, $0) }
        return info.map { String(cString: $0) } ?? "?"
    }

    /// output = conv(input, weight), fully overwritten.
    func forward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                 output: UnsafeMutablePointer<Float>) {
        guard let plan = plan(g, batch: batch, .forward) else { preconditionFailure("oneDNN: no forward plan") }
        if replacedByGEMMPath(plan) {
            return gemmPath.forward(g, batch: batch, input: input, weight: weight, output: output)
        }
        plan.run(on: self, [DNNL_ARG_SRC: UnsafeMutableRawPointer(mutating: input),
                  DNNL_ARG_WEIGHTS: UnsafeMutableRawPointer(mutating: weight),
                  DNNL_ARG_DST: UnsafeMutableRawPointer(output)])
    }

    /// gradInput = conv's input gradient for gradOutput (the adjoint in the input), fully overwritten.
    func backwardData(_ g: ConvGeometry, batch: Int, gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      gradInput: UnsafeMutablePointer<Float>) {
        guard let plan = plan(g, batch: batch, .backwardData) else { preconditionFailure("oneDNN: no backward-data plan") }
        if replacedByGEMMPath(plan) {
            if let subPixel = subPixelPlan(g, batch: batch) {
                return subPixel.run(on: self, source: gradOutput, weight: weight, target: gradInput)
            }
            return gemmPath.backwardData(g, batch: batch, gradOutput: gradOutput, weight: weight, gradInput: gradInput)
        }
        plan.run(on: self, [DNNL_ARG_DIFF_DST: UnsafeMutableRawPointer(mutating: gradOutput),
                  DNNL_ARG_WEIGHTS: UnsafeMutableRawPointer(mutating: weight),
                  DNNL_ARG_DIFF_SRC: UnsafeMutableRawPointer(gradInput)])
    }

    /// gradWeight += the weight gradient of conv(input) for gradOutput.
    func accumulateWeightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>) {
        guard let plan = plan(g, batch: batch, .backwardWeights) else { preconditionFailure("oneDNN: no backward-weights plan") }
        if replacedByGEMMPath(plan) {
            return gemmPath.accumulateWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput,
                                                     gradWeight: gradWeight)
        }
        runWeightGradient(plan, g, input: input, gradOutput: gradOutput, gradWeight: gradWeight, sharing: nil)
    }

    private func runWeightGradient(_ plan: Plan, _ g: ConvGeometry, input: UnsafePointer<Float>,
                                   gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                                   sharing: Plan.Sharing?) {
        guard let scratch = plan.weightScratch else { preconditionFailure("oneDNN: no backward-weights plan") }
        // oneDNN overwrites diff_weights; IENet accumulates, so the fresh gradient lands in scratch first.
        plan.run(on: self, [DNNL_ARG_SRC: UnsafeMutableRawPointer(mutating: input),
                  DNNL_ARG_DIFF_DST: UnsafeMutableRawPointer(mutating: gradOutput),
                  DNNL_ARG_DIFF_WEIGHTS: UnsafeMutableRawPointer(scratch)], sharing: sharing)
        let count = g.outChannels * g.colRows
        for i in 0..<count { gradWeight[i] += scratch[i] }
    }

    /// Both gradients of conv(input): the weight gradient, then the input gradient. Both read gradOutput as
    /// diff_dst, which is converted to oneDNN's layout (and to bf16) once for the two (a 32->32 layer at 64^3,
    /// batch 2: one 64 MiB conversion, ~10 ms on 1 thread, of ~45 ms of reorders around its backward).
    func backward(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                  gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                  gradInput: UnsafeMutablePointer<Float>?) {
        if let gradInput, weightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: gradWeight,
                                         thenSharing: DNNL_ARG_DIFF_DST, with: .backwardData,
                                         [DNNL_ARG_DIFF_DST: UnsafeMutableRawPointer(mutating: gradOutput),
                                          DNNL_ARG_WEIGHTS: UnsafeMutableRawPointer(mutating: weight),
                                          DNNL_ARG_DIFF_SRC: UnsafeMutableRawPointer(gradInput)]) { return }
        accumulateWeightGradient(g, batch: batch, input: input, gradOutput: gradOutput, gradWeight: gradWeight)
        if let gradInput { backwardData(g, batch: batch, gradOutput: gradOutput, weight: weight, gradInput: gradInput) }
    }

    /// The transposed convolution's backward: gradWeight += the weight gradient, gradSource = forward(gradTarget).
    /// gradTarget is src of both, converted once.
    func adjointBackward(_ g: ConvGeometry, batch: Int, source: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                         gradTarget: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                         gradSource: UnsafeMutablePointer<Float>?) {
        if let gradSource, weightGradient(g, batch: batch, input: gradTarget, gradOutput: source, gradWeight: gradWeight,
                                          thenSharing: DNNL_ARG_SRC, with: .forward,
                                          [DNNL_ARG_SRC: UnsafeMutableRawPointer(mutating: gradTarget),
                                           DNNL_ARG_WEIGHTS: UnsafeMutableRawPointer(mutating: weight),
                                           DNNL_ARG_DST: UnsafeMutableRawPointer(gradSource)]) { return }
        accumulateWeightGradient(g, batch: batch, input: gradTarget, gradOutput: source, gradWeight: gradWeight)
        if let gradSource { forward(g, batch: batch, input: gradTarget, weight: weight, output: gradSource) }
    }

    /// The weight gradient, then the `direction` primitive on `buffers`, with `argument`'s conversion made once for
    /// both; false (nothing run) unless both are oneDNN's own kernels converting `argument` to one layout.
    private func weightGradient(_ g: ConvGeometry, batch: Int, input: UnsafePointer<Float>,
                                gradOutput: UnsafePointer<Float>, gradWeight: UnsafeMutablePointer<Float>,
                                thenSharing argument: Int32, with direction: Direction,
                                _ buffers: [Int32: UnsafeMutableRawPointer]) -> Bool {
        guard let weights = plan(g, batch: batch, .backwardWeights), let second = plan(g, batch: batch, direction),
              !replacedByGEMMPath(weights), !replacedByGEMMPath(second), Plan.convertSame(argument, weights, second)
        else { return false }
        runWeightGradient(weights, g, input: input, gradOutput: gradOutput, gradWeight: gradWeight,
                          sharing: .convert(argument))
        second.run(on: self, buffers, sharing: .reuse(argument))
        return true
    }

    // MARK: Plans

    /// Sub-pixel plans of strided adjoints by geometry and batch (nil: the split or oneDNN does not apply).
    private var subPixelCache: [Key: DNNLSubPixelPlan?] = [:]

    /// The sub-pixel split on oneDNN's direct kernels for a strided adjoint whose backward-data oneDNN would run
    /// gemm-based (options.subPixelAdjoint, fp32 only: in bf16 the split would need its own bf16 plans; blocked
    /// activations only, whose copies `handles` bounds).
    private func subPixelPlan(_ g: ConvGeometry, batch: Int) -> DNNLSubPixelPlan? {
        guard options.subPixelAdjoint, options.dnnlSubPixel, blockedActivations, options.precision == .fp32, g.stride > 1 else { return nil }
        let key = Key(g, batch: batch, .backwardData)
        if let cached = subPixelCache[key] { return cached }
        omp_set_num_threads(Int32(threads))
        let made = DNNLSubPixelPlan(g, batch: batch, engine: engine)
        subPixelCache[key] = .some(made)
        return made
    }

    private func plan(_ g: ConvGeometry, batch: Int, _ direction: Direction) -> Plan? {
        // OpenMP's thread count is a per-thread setting: set it on the calling thread before building or running.
        omp_set_num_threads(Int32(threads))
        let key = Key(g, batch: batch, direction)
        if let cached = cache[key] { return cached }
        var made: Plan?
        if options.precision == .bf16 && Self.bf16Trusted(g, direction) {
            made = Plan(g, batch: batch, direction, blockedActivations: blockedActivations, bf16: true, engine: engine)
            if made == nil {
                Log.warningOnce("oneDNN cannot make a bf16 convolution for some layers (first: \(g.inChannels)->"
                    + "\(g.outChannels), kernel \(g.kernel), stride \(g.stride)): those layers run in fp32")
            }
        }
        if made == nil {
            made = Plan(g, batch: batch, direction, blockedActivations: blockedActivations, bf16: false, engine: engine)
        }
        cache[key] = .some(made)
        return made
    }

    /// Whether oneDNN 2.6's bf16 kernel may run this direction of g. Its bf16 weight gradient
    /// (jit_bf16:avx512_core_bf16, backward_weights) of a strided convolution with an output extent under 3 is wrong
    /// or writes out of bounds: measured on an AVX512_BF16 CPU, k3 s2 p1 with input depth 3 (output 2) and k4 s2 p1
    /// with input depth 4 gave relative errors of 0.4 to 1e36, and input height 1 or 2 (output 1) corrupted the
    /// heap ("double free or corruption"); with every output extent >= 3, or stride 1, all swept shapes agreed with
    /// fp32 (BF16ConvTests.testStridedWeightGradientsOfSmallExtents). Those layers are small: fp32 costs nothing.
    static func bf16Trusted(_ g: ConvGeometry, _ direction: Direction) -> Bool {
        direction != .backwardWeights || g.stride == 1 || min(g.outD, g.outH, g.outW) >= 3
    }

    /// Slot `slot`'s buffer, grown to `bytes`.
    func slotBuffer(_ slot: Int, bytes: Int) -> UnsafeMutableRawPointer {
        if let current = slots[slot], current.bytes >= bytes { return current.pointer }
        slots[slot]?.pointer.deallocate()
        let pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes, 64), alignment: 64)
        slots[slot] = (pointer, bytes)
        return pointer
    }

    static func seconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    /// With options.dnnlProfile: per plan (geometry, batch, direction) oneDNN's implementation, the calls, and the
    /// GFLOP/s of the primitive alone and with its reorders (2 N Cout Cin k^3 outVoxels per call, any direction).
    func profile() -> [String] {
        cache.compactMap { key, plan -> (Key, String)? in
            guard let plan, plan.profile.calls > 0 else { return nil }
            let p = plan.profile
            let (ci, co, k, s) = (key.geometry[0], key.geometry[1], key.geometry[2], key.geometry[3])
            let g = ConvGeometry(inChannels: ci, outChannels: co, kernel: k, stride: s, padding: key.geometry[4],
                                 inD: key.geometry[5], inH: key.geometry[6], inW: key.geometry[7])
            let flops = 2.0 * Double(key.batch * co * ci * k * k * k * g.outSpatial) * Double(p.calls)
            let all = p.reorderIn + p.primitive + p.reorderOut
            let direction = ["fwd", "bwd_data", "bwd_weights"][key.direction.rawValue]
            return (key, String(format: "dnnl %@ %d->%d k%d s%d %dx%dx%d batch %d [%@]: %d calls, primitive %.1f GFLOP/s, "
                                + "with reorders %.1f (reorders in %.1f ms, out %.1f ms per call)",
                                direction, ci, co, k, s, g.inD, g.inH, g.inW, key.batch, plan.implementation, p.calls,
                                flops / max(p.primitive, 1e-12) / 1e9, flops / max(all, 1e-12) / 1e9,
                                1e3 * p.reorderIn / Double(p.calls), 1e3 * p.reorderOut / Double(p.calls)))
        }.sorted { ($0.0.geometry[0], $0.0.geometry[1], $0.0.direction.rawValue) < ($1.0.geometry[0], $1.0.geometry[1], $1.0.direction.rawValue) }
            .map(\.1)
    }

    /// oneDNN's implementations for forward, backward-data and backward-weights (e.g. "jit:avx512_core").
    func implementations(_ g: ConvGeometry, batch: Int) -> [String] {
        [Direction.forward, .backwardData, .backwardWeights].map {
            guard let plan = plan(g, batch: batch, $0) else { return "unsupported" }
            guard replacedByGEMMPath(plan) else { return plan.implementation }
            if $0 == .backwardData, let subPixel = subPixelPlan(g, batch: batch) { return subPixel.implementation }
            return "gemm (instead of oneDNN's \(plan.implementation))"
        }
    }

    /// One argument of a primitive: the caller's plain buffer, and when the primitive wants another layout, an
    /// internal buffer in that layout plus the reorder between them.
    final class Binding {
        let argument: Int32
        let isOutput: Bool
        let user: dnnl_memory_t
        let inner: dnnl_memory_t?
        let reorder: dnnl_primitive_t?
        /// Size of the primitive-layout buffer (0 when the caller's buffer is used directly).
        let innerBytes: Int
        /// The primitive's layout of this argument where it differs from the caller's (nil: none).
        let innerDescriptor: dnnl_memory_desc_t?

        init?(argument: Int32, isOutput: Bool, userDescriptor: dnnl_memory_desc_t,
              primitiveDescriptor: dnnl_primitive_desc_t, engine: dnnl_engine_t) {
            self.argument = argument; self.isOutput = isOutput
            var userMD = userDescriptor
            var userMemory: dnnl_memory_t?
            guard dnnl_memory_create(&userMemory, &userMD, engine, nil) == dnnl_success,
                  let userMemory else { return nil }
            user = userMemory
            guard let wanted = dnnl_primitive_desc_query_md(primitiveDescriptor, dnnl_query_exec_arg_md, argument)
            else { dnnl_memory_destroy(userMemory); return nil }
            var wantedMD = wanted.pointee
            if dnnl_memory_desc_equal(&userMD, &wantedMD) != 0 {
                inner = nil; reorder = nil; innerBytes = 0; innerDescriptor = nil
                return
            }
            innerDescriptor = wantedMD
            var innerMemory: dnnl_memory_t?
            var reorderPD: dnnl_primitive_desc_t?
            var reorderPrimitive: dnnl_primitive_t?
            innerBytes = dnnl_memory_desc_get_size(&wantedMD)
            // No buffer of its own: run() lends it one of the shared slots (cached plans would otherwise hold
            // gigabytes of blocked copies of activations; measured peak RSS 4.1 GiB vs 1.8 GiB for the UNet bench).
            let ok = dnnl_memory_create(&innerMemory, &wantedMD, engine, nil) == dnnl_success
                && (isOutput
                    ? dnnl_reorder_primitive_desc_create(&reorderPD, &wantedMD, engine, &userMD, engine, nil)
                    : dnnl_reorder_primitive_desc_create(&reorderPD, &userMD, engine, &wantedMD, engine, nil))
                    == dnnl_success
                && dnnl_primitive_create(&reorderPrimitive, reorderPD) == dnnl_success
            if let reorderPD { dnnl_primitive_desc_destroy(reorderPD) }
            guard ok, let innerMemory, let reorderPrimitive else {
                dnnl_memory_destroy(userMemory)
                if let innerMemory { dnnl_memory_destroy(innerMemory) }
                return nil
            }
            inner = innerMemory; reorder = reorderPrimitive
        }

        var primitiveMemory: dnnl_memory_t { inner ?? user }

        /// Points the plain memory at the caller's `buffer` and the primitive-layout memory (if any) at the owner's
        /// shared slot `slot`.
        func attach(_ buffer: UnsafeMutableRawPointer, slot: Int, of owner: DNNLConv) {
            func point(_ memory: dnnl_memory_t, _ pointer: UnsafeMutableRawPointer) {
                let status = dnnl_memory_set_data_handle_v2(memory, pointer, owner.stream)
                precondition(status == dnnl_success, "oneDNN: cannot set a buffer (status \(status.rawValue))")
            }
            point(user, buffer)
            if let inner { point(inner, owner.slotBuffer(slot, bytes: innerBytes)) }
        }

        func runReorder(_ stream: dnnl_stream_t) {
            guard let reorder, let inner else { return }
            var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: isOutput ? inner : user),
                             dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: isOutput ? user : inner)]
            let status = dnnl_primitive_execute(reorder, stream, 2, &arguments)
            precondition(status == dnnl_success, "oneDNN reorder failed (status \(status.rawValue))")
        }

        deinit {
            dnnl_memory_destroy(user)
            if let inner { dnnl_memory_destroy(inner) }
            if let reorder { dnnl_primitive_destroy(reorder) }
        }
    }

    final class Plan {
        let primitive: dnnl_primitive_t
        let bindings: [Binding]
        let implementation: String
        /// Plain [out, in, k, k, k] buffer that receives the weight gradient (backward-weights plans only).
        let weightScratch: UnsafeMutablePointer<Float>?

        /// `bf16`: the primitive reads its operands (src, weights, diff_dst) in bf16 and writes its result (dst,
        /// diff_src, diff_weights) in f32; the bindings' reorders convert IENet's plain f32 buffers.
        init?(_ g: ConvGeometry, batch: Int, _ direction: Direction, blockedActivations: Bool, bf16: Bool,
              engine: dnnl_engine_t) {
            let k = Int64(g.kernel)
            let inputs: [Int64] = [Int64(g.inD), Int64(g.inH), Int64(g.inW)]
            let outputs: [Int64] = [Int64(g.outD), Int64(g.outH), Int64(g.outW)]
            let activationTag = blockedActivations ? dnnl_format_tag_any : dnnl_ncdhw
            let n = Int64(batch), ci = Int64(g.inChannels), co = Int64(g.outChannels)
            let low = bf16 ? dnnl_bf16 : dnnl_f32
            /// src, weights and dst descriptors of the given data types in the primitive's layouts (any / tag).
            func descriptors(_ types: (dnnl_data_type_t, dnnl_data_type_t, dnnl_data_type_t))
                -> (dnnl_memory_desc_t, dnnl_memory_desc_t, dnnl_memory_desc_t)? {
                var src = dnnl_memory_desc_t(), weights = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
                guard ie_dnnl_md5(&src, n, ci, inputs[0], inputs[1], inputs[2], types.0, activationTag) == dnnl_success,
                      ie_dnnl_md5(&weights, co, ci, k, k, k, types.1, dnnl_format_tag_any) == dnnl_success,
                      ie_dnnl_md5(&dst, n, co, outputs[0], outputs[1], outputs[2], types.2, activationTag) == dnnl_success
                else { return nil }
                return (src, weights, dst)
            }
            var plainSrc = dnnl_memory_desc_t(), plainDst = dnnl_memory_desc_t(), plainWeights = dnnl_memory_desc_t()
            guard ie_dnnl_md5(&plainSrc, n, ci, inputs[0], inputs[1], inputs[2], dnnl_f32, dnnl_ncdhw) == dnnl_success,
                  ie_dnnl_md5(&plainDst, n, co, outputs[0], outputs[1], outputs[2], dnnl_f32, dnnl_ncdhw) == dnnl_success,
                  ie_dnnl_md5(&plainWeights, co, ci, k, k, k, dnnl_f32, dnnl_oidhw) == dnnl_success,
                  // Forward reads src and weights, writes dst; the backward primitives read what forward reads
                  // plus diff_dst and write f32 gradients.
                  let forwardTriple = descriptors((low, low, dnnl_f32)),
                  let dataTriple = descriptors((dnnl_f32, low, low)),
                  let weightsTriple = descriptors((low, dnnl_f32, low))
            else { return nil }
            var (forwardSrc, forwardWeights, forwardDst) = forwardTriple
            var (dataSrc, dataWeights, dataDst) = dataTriple
            var (weightsSrc, weightsWeights, weightsDst) = weightsTriple
            let stride = Int64(g.stride), padding = Int64(g.padding)

            // The forward primitive descriptor: the primitive itself, or the hint the backward ones require.
            var forwardDesc = dnnl_convolution_desc_t()
            var forwardPD: dnnl_primitive_desc_t?
            guard ie_dnnl_conv_forward_desc(&forwardDesc, &forwardSrc, &forwardWeights, &forwardDst, stride, padding, k,
                                            inputs, outputs) == dnnl_success,
                  dnnl_primitive_desc_create(&forwardPD, &forwardDesc, nil, engine, nil) == dnnl_success,
                  let forwardPD
            else { return nil }
            defer { dnnl_primitive_desc_destroy(forwardPD) }

            var pd: dnnl_primitive_desc_t?
            var wiring: [(Int32, Bool, dnnl_memory_desc_t)] = []
            switch direction {
            case .forward:
                guard dnnl_primitive_desc_clone(&pd, forwardPD) == dnnl_success else { return nil }
                wiring = [(DNNL_ARG_SRC, false, plainSrc), (DNNL_ARG_WEIGHTS, false, plainWeights),
                          (DNNL_ARG_DST, true, plainDst)]
            case .backwardData:
                var desc = dnnl_convolution_desc_t()
                guard ie_dnnl_conv_backward_data_desc(&desc, &dataSrc, &dataWeights, &dataDst, stride, padding, k,
                                                      inputs, outputs) == dnnl_success,
                      dnnl_primitive_desc_create(&pd, &desc, nil, engine, forwardPD) == dnnl_success
                else { return nil }
                wiring = [(DNNL_ARG_DIFF_DST, false, plainDst), (DNNL_ARG_WEIGHTS, false, plainWeights),
                          (DNNL_ARG_DIFF_SRC, true, plainSrc)]
            case .backwardWeights:
                var desc = dnnl_convolution_desc_t()
                guard ie_dnnl_conv_backward_weights_desc(&desc, &weightsSrc, &weightsWeights, &weightsDst, stride,
                                                         padding, k, inputs, outputs) == dnnl_success,
                      dnnl_primitive_desc_create(&pd, &desc, nil, engine, forwardPD) == dnnl_success
                else { return nil }
                wiring = [(DNNL_ARG_SRC, false, plainSrc), (DNNL_ARG_DIFF_DST, false, plainDst),
                          (DNNL_ARG_DIFF_WEIGHTS, true, plainWeights)]
            }
            guard let pd else { return nil }
            defer { dnnl_primitive_desc_destroy(pd) }
            implementation = DNNLConv.implementationName(pd)
            var made: [Binding] = []
            for (argument, isOutput, descriptor) in wiring {
                guard let binding = Binding(argument: argument, isOutput: isOutput, userDescriptor: descriptor,
                                            primitiveDescriptor: pd, engine: engine) else { return nil }
                made.append(binding)
            }
            var primitive: dnnl_primitive_t?
            guard dnnl_primitive_create(&primitive, pd) == dnnl_success, let primitive else { return nil }
            self.primitive = primitive
            bindings = made
            if direction == .backwardWeights {
                let count = g.outChannels * g.colRows
                weightScratch = UnsafeMutablePointer<Float>.allocate(capacity: count)
                weightScratch!.initialize(repeating: 0, count: count)
            } else {
                weightScratch = nil
            }
        }

        deinit {
            dnnl_primitive_destroy(primitive)
            weightScratch?.deallocate()
        }

        /// An input that two primitives run back to back read in the same layout: the first converts it into the
        /// shared slot, the second reads it there without converting again. Only within one call that runs both on
        /// one unchanged buffer: the slot's content is not tied to the buffer beyond that.
        enum Sharing {
            case convert(Int32), reuse(Int32)
            var argument: Int32 { switch self { case .convert(let argument), .reuse(let argument): argument } }
        }

        /// Whether both plans convert `argument` into the same layout (so that one conversion serves both).
        static func convertSame(_ argument: Int32, _ a: Plan, _ b: Plan) -> Bool {
            guard var x = a.bindings.first(where: { $0.argument == argument })?.innerDescriptor,
                  var y = b.bindings.first(where: { $0.argument == argument })?.innerDescriptor else { return false }
            return dnnl_memory_desc_equal(&x, &y) != 0
        }

        /// Points the plain memories at the caller's buffers, reorders inputs, runs, reorders outputs, waits.
        func run(on owner: DNNLConv, _ buffers: [Int32: UnsafeMutableRawPointer], sharing: Sharing? = nil) {
            let stream = owner.stream
            omp_set_num_threads(Int32(owner.threads))
            for (slot, binding) in bindings.enumerated() {
                guard let buffer = buffers[binding.argument] else { preconditionFailure("oneDNN: missing argument \(binding.argument)") }
                binding.attach(buffer, slot: sharing?.argument == binding.argument ? DNNLConv.sharedSlot : slot, of: owner)
            }
            let profiling = owner.options.dnnlProfile
            var clock = profiling ? DNNLConv.seconds() : 0
            /// With profiling: waits for the stream and adds the time since the last stage to `total`.
            func stage(_ total: inout Double) {
                guard profiling else { return }
                let waited = dnnl_stream_wait(stream)
                precondition(waited == dnnl_success, "oneDNN: stream wait failed (status \(waited.rawValue))")
                let time = DNNLConv.seconds()
                total += time - clock
                clock = time
            }
            for binding in bindings where !binding.isOutput {
                if case .reuse(let argument) = sharing, argument == binding.argument { continue }
                binding.runReorder(stream)
            }
            stage(&profile.reorderIn)
            var arguments = bindings.map { dnnl_exec_arg_t(arg: $0.argument, memory: $0.primitiveMemory) }
            let status = dnnl_primitive_execute(primitive, stream, Int32(arguments.count), &arguments)
            precondition(status == dnnl_success, "oneDNN convolution failed (status \(status.rawValue))")
            stage(&profile.primitive)
            for binding in bindings where binding.isOutput { binding.runReorder(stream) }
            let waited = dnnl_stream_wait(stream)
            precondition(waited == dnnl_success, "oneDNN: stream wait failed (status \(waited.rawValue))")
            stage(&profile.reorderOut)
            profile.calls += 1
        }

        /// Time spent per stage (options.dnnlProfile only): reorders into oneDNN's layouts, the primitive, the
        /// reorders of its result back to IENet's.
        var profile = (calls: 0, reorderIn: 0.0, primitive: 0.0, reorderOut: 0.0)
    }
}

/// oneDNN's registration as a convolution backend (the only other place that knows whether it is built).
let dnnlRegistration: ConvBackendRegistration? = ConvBackendRegistration(
    make: { DNNLConv($0) }, describe: { DNNLConv.libraryDescription($0) }, bf16Obstacle: { DNNLConv.bf16Obstacle },
    bf16TimeOverFP32: { DNNLConv.bf16TimeOverFP32 })

/// oneDNN's own sgemm (row-major C = A B, m x k times k x n) on `threads` threads, for the bench's peak figures;
/// false without oneDNN.
public func dnnlSGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                      c: UnsafeMutablePointer<Float>, threads: Int) -> Bool {
    dnnlSGEMM(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: c, ldc: n, threads: threads)
}

/// Row-major C = A B (m x k times k x n, leading dimensions given, C overwritten) on oneDNN's sgemm; false without
/// oneDNN. Its kernels write C directly where OpenBLAS first runs a separate beta pass over C (measured: that pass
/// was 6.7 % of a Winograd inference).
func dnnlSGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) -> Bool {
    omp_set_num_threads(Int32(threads))
    return dnnl_sgemm(CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")), Int64(m), Int64(n), Int64(k), 1, a, Int64(lda),
                      b, Int64(ldb), 0, c, Int64(ldc)) == dnnl_success
}
#else
let dnnlRegistration: ConvBackendRegistration? = nil

func dnnlSGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
               c: UnsafeMutablePointer<Float>, ldc: Int, threads: Int) -> Bool { false }

public func dnnlSGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                      c: UnsafeMutablePointer<Float>, threads: Int) -> Bool { false }
#endif

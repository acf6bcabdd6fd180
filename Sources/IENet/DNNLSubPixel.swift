#if IE_DNNL
import Foundation
import CDNNL

/// The sub-pixel split of a strided convolution's adjoint (SubPixelAdjoint: the transposed convolution's forward, the
/// strided convolution's input gradient) on oneDNN's direct stride-1 kernels. On AVX2 CPUs oneDNN 2.6 has only
/// gemm-based strided backward-data, so IENet ran those on its GEMM path (~60 GFLOP/s, plus the interleaving); each
/// of the s^3 residue classes is a stride-1 convolution source -> target class with (taps per axis) kernels and
/// per-axis padding, which oneDNN's JIT kernels run at conv speed. The source is reordered into oneDNN's blocked
/// layout once and shared by the s^3 convolutions; each result is reordered straight into its strided view of the
/// plain target (every target voxel written once, no scatter-add).
final class DNNLSubPixelPlan {
    /// One residue class: its convolution, its weight and target bindings, the kernel indices of its taps per axis
    /// (in source-offset order) and where its first target voxel lies.
    struct ResidueClass {
        let primitive: dnnl_primitive_t
        let weights: DNNLConv.Binding
        let target: DNNLConv.Binding
        let kernels: [[Int]]
        let targetOffset: Int
    }

    let source: DNNLConv.Binding
    let classes: [ResidueClass]
    let implementation: String
    let g: ConvGeometry

    /// nil when the split does not apply (SubPixelAdjoint(g) is nil, a residue class no tap reaches, padding that
    /// would be negative) or oneDNN does not give every class the same direct kernel and source layout.
    init?(_ g: ConvGeometry, batch: Int, engine: dnnl_engine_t) {
        guard let split = SubPixelAdjoint(g) else { return nil }
        let s = g.stride
        let n = Int64(batch), cin = Int64(g.inChannels), cout = Int64(g.outChannels)
        let sourceSize = [g.outD, g.outH, g.outW], targetSize = [g.inD, g.inH, g.inW]
        let classSize = targetSize.map { $0 / s }
        // Per axis and residue: taps sorted by source offset (consecutive), padding (left, right).
        var axes: [[(kernels: [Int], left: Int, right: Int)]] = []
        for axis in 0..<3 {
            var perResidue: [(kernels: [Int], left: Int, right: Int)] = []
            for r in 0..<s {
                let taps = split.taps[axis][r].sorted { $0.offset < $1.offset }
                guard let first = taps.first else { return nil }
                for (j, tap) in taps.enumerated() where tap.offset != first.offset + j { return nil }
                let left = -first.offset
                let right = classSize[axis] - 1 + taps.count - sourceSize[axis] - left
                guard left >= 0, right >= 0 else { return nil }
                perResidue.append((taps.map(\.kernel), left, right))
            }
            axes.append(perResidue)
        }
        var sourceMD = dnnl_memory_desc_t(), plainSource = dnnl_memory_desc_t()
        guard ie_dnnl_md5(&sourceMD, n, cout, Int64(g.outD), Int64(g.outH), Int64(g.outW), dnnl_f32,
                          dnnl_format_tag_any) == dnnl_success,
              ie_dnnl_md5(&plainSource, n, cout, Int64(g.outD), Int64(g.outH), Int64(g.outW), dnnl_f32,
                          dnnl_ncdhw) == dnnl_success
        else { return nil }
        let targetStrides: [Int64] = [cin * Int64(g.inSpatial), Int64(g.inSpatial), Int64(s * g.inH * g.inW),
                                      Int64(s * g.inW), Int64(s)]
        var made: [ResidueClass] = []
        var sourceBinding: DNNLConv.Binding?
        var chosenSource: dnnl_memory_desc_t?
        var implementations = Set<String>()
        var failed = false
        for residue in 0..<(s * s * s) {
            let r = [residue / (s * s), (residue / s) % s, residue % s]
            let (z, y, x) = (axes[0][r[0]], axes[1][r[1]], axes[2][r[2]])
            let kernelDims = [z.kernels.count, y.kernels.count, x.kernels.count]
            var weightsMD = dnnl_memory_desc_t(), plainWeights = dnnl_memory_desc_t()
            var dstMD = dnnl_memory_desc_t(), stridedTarget = dnnl_memory_desc_t()
            var sourceDescriptor = sourceMD
            let targetDims: [Int64] = [n, cin, Int64(classSize[0]), Int64(classSize[1]), Int64(classSize[2])]
            guard ie_dnnl_md5(&weightsMD, cin, cout, Int64(kernelDims[0]), Int64(kernelDims[1]), Int64(kernelDims[2]),
                              dnnl_f32, dnnl_format_tag_any) == dnnl_success,
                  ie_dnnl_md5(&plainWeights, cin, cout, Int64(kernelDims[0]), Int64(kernelDims[1]),
                              Int64(kernelDims[2]), dnnl_f32, dnnl_oidhw) == dnnl_success,
                  ie_dnnl_md5(&dstMD, targetDims[0], targetDims[1], targetDims[2], targetDims[3], targetDims[4],
                              dnnl_f32, dnnl_format_tag_any) == dnnl_success,
                  ie_dnnl_md5_strided(&stridedTarget, targetDims, targetStrides) == dnnl_success
            else { failed = true; break }
            let left: [Int64] = [Int64(z.left), Int64(y.left), Int64(x.left)]
            let right: [Int64] = [Int64(z.right), Int64(y.right), Int64(x.right)]
            var desc = dnnl_convolution_desc_t()
            var pd: dnnl_primitive_desc_t?
            guard ie_dnnl_conv_inference_desc(&desc, &sourceDescriptor, &weightsMD, &dstMD, left, right) == dnnl_success,
                  dnnl_primitive_desc_create(&pd, &desc, nil, engine, nil) == dnnl_success, let pd
            else { failed = true; break }
            defer { dnnl_primitive_desc_destroy(pd) }
            let implementation = DNNLConv.implementationName(pd)
            implementations.insert(implementation)
            // Every class must read the source in the same layout (it is reordered once) on a direct kernel.
            guard DNNLConv.isDirect(implementation),
                  var wanted = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, DNNL_ARG_SRC)?.pointee
            else { failed = true; break }
            if var chosen = chosenSource {
                guard dnnl_memory_desc_equal(&chosen, &wanted) != 0 else { failed = true; break }
            } else {
                chosenSource = wanted
                sourceBinding = DNNLConv.Binding(argument: DNNL_ARG_SRC, isOutput: false, userDescriptor: plainSource,
                                                 primitiveDescriptor: pd, engine: engine)
                if sourceBinding == nil { failed = true; break }
            }
            guard let weights = DNNLConv.Binding(argument: DNNL_ARG_WEIGHTS, isOutput: false,
                                                 userDescriptor: plainWeights, primitiveDescriptor: pd, engine: engine),
                  let target = DNNLConv.Binding(argument: DNNL_ARG_DST, isOutput: true, userDescriptor: stridedTarget,
                                                primitiveDescriptor: pd, engine: engine)
            else { failed = true; break }
            var primitive: dnnl_primitive_t?
            guard dnnl_primitive_create(&primitive, pd) == dnnl_success, let primitive else { failed = true; break }
            made.append(ResidueClass(primitive: primitive, weights: weights, target: target,
                                     kernels: [z.kernels, y.kernels, x.kernels],
                                     targetOffset: (r[0] * g.inH + r[1]) * g.inW + r[2]))
        }
        guard !failed, let sourceBinding else {
            for residueClass in made { dnnl_primitive_destroy(residueClass.primitive) }
            return nil
        }
        source = sourceBinding
        classes = made
        implementation = "sub-pixel " + implementations.sorted().joined(separator: "/")
        self.g = g
    }

    deinit {
        for residueClass in classes { dnnl_primitive_destroy(residueClass.primitive) }
    }

    /// The plain weights [Cin, Cout, kz, ky, kx] of classes `range` (g's weight [Cout, Cin, k, k, k] at each class's
    /// taps), class after class from `destination`, in one pass over the filters threaded over Cin. Classes are
    /// gathered s at a time (same z and y residue, so they read the same filter lines): a pass per class re-read
    /// the weights 4 times (measured 3.8 % of an inference, memory-bound), all classes at once held a transient
    /// copy as large as the weights (33 MB at 512->256) that raised the run's peak memory.
    private func gatherWeights(_ range: Range<Int>, from weight: UnsafePointer<Float>,
                               into destination: UnsafeMutablePointer<Float>, threads: Int) {
        let k = g.kernel, k3 = k * k * k, cin = g.inChannels, cout = g.outChannels
        // Flat tables (no arrays of arrays in the threaded loop: their reference counting made the copy slow on two
        // threads): per class its first element in `destination` and its taps' range in `taps` (indices in a k^3 filter).
        var starts: [Int] = [], tapStarts: [Int] = [0], taps: [Int] = []
        var start = 0
        for residueClass in classes[range] {
            for kz in residueClass.kernels[0] { for ky in residueClass.kernels[1] { for kx in residueClass.kernels[2] {
                taps.append((kz * k + ky) * k + kx)
            }}}
            starts.append(start)
            start += cin * cout * (taps.count - tapStarts[tapStarts.count - 1])
            tapStarts.append(taps.count)
        }
        starts.withUnsafeBufferPointer { starts in
            tapStarts.withUnsafeBufferPointer { tapStarts in
                taps.withUnsafeBufferPointer { taps in
                    // Blocks of 16 ci: the filters of one co and 16 ci are contiguous, and the destinations of 16 ci
                    // for one co stay in cache until the next co fills their neighbours (one ci at a time, one side
                    // strode by a whole weight row per element).
                    let block = 16
                    parallelFor((cin + block - 1) / block, threads: threads) { ciBlock in
                        let ciRange = (ciBlock * block)..<min(cin, ciBlock * block + block)
                        for co in 0..<cout {
                            for ci in ciRange {
                                let filter = weight + (co * cin + ci) * k3
                                for index in 0..<starts.count {
                                    let first = tapStarts[index], count = tapStarts[index + 1] - first
                                    let to = destination + starts[index] + (ci * cout + co) * count
                                    for t in 0..<count { to[t] = filter[taps[first + t]] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Floats of the plain weights of one class.
    private func weightCount(_ residueClass: ResidueClass) -> Int {
        g.inChannels * g.outChannels * residueClass.kernels.map(\.count).reduce(1, *)
    }

    /// target = adjoint(source) for g's weight [Cout, Cin, k, k, k], fully overwritten.
    func run(on owner: DNNLConv, source plain: UnsafePointer<Float>, weight: UnsafePointer<Float>,
             target: UnsafeMutablePointer<Float>) {
        let stream = owner.stream
        omp_set_num_threads(Int32(owner.options.threads))
        source.attach(UnsafeMutableRawPointer(mutating: plain), slot: 0, of: owner)
        source.runReorder(stream)
        // The plain weights of s classes at a time go to slot 3 (slots 0-2 hold the blocked source, weights and
        // target).
        let s = g.stride
        var gathered = 0..<0
        var next: UnsafeMutablePointer<Float>?
        for (index, residueClass) in classes.enumerated() {
            if !gathered.contains(index) {
                gathered = index..<min(classes.count, index + s)
                let count = classes[gathered].reduce(0) { $0 + weightCount($1) }
                let buffer = owner.slotBuffer(3, bytes: count * MemoryLayout<Float>.size)
                    .bindMemory(to: Float.self, capacity: count)
                gatherWeights(gathered, from: weight, into: buffer, threads: owner.options.threads)
                next = buffer
            }
            guard let classWeights = next else { preconditionFailure("sub-pixel: class weights not gathered") }
            next = classWeights + weightCount(residueClass)
            residueClass.weights.attach(UnsafeMutableRawPointer(classWeights), slot: 1, of: owner)
            residueClass.target.attach(UnsafeMutableRawPointer(target + residueClass.targetOffset), slot: 2, of: owner)
            residueClass.weights.runReorder(stream)
            var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: source.primitiveMemory),
                             dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: residueClass.weights.primitiveMemory),
                             dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: residueClass.target.primitiveMemory)]
            let status = dnnl_primitive_execute(residueClass.primitive, stream, 3, &arguments)
            precondition(status == dnnl_success, "oneDNN convolution failed (status \(status.rawValue))")
            residueClass.target.runReorder(stream)
        }
        let waited = dnnl_stream_wait(stream)
        precondition(waited == dnnl_success, "oneDNN: stream wait failed (status \(waited.rawValue))")
    }
}
#endif

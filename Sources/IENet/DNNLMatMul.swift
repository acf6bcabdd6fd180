#if IE_DNNL
import CDNNL

/// oneDNN's matmul in bf16 (row-major C = A B, m x k times k x n; A and B rounded to bf16 once, when made; fp32
/// accumulation and C), for the bench's bf16 peak: the rate bf16 convolutions can reach on this CPU, measured with
/// the kernels oneDNN picks for it (make bench asks for it only where the CPU has AVX512_BF16). nil where oneDNN
/// cannot make it.
public final class DNNLBF16MatMul {
    private let engine: dnnl_engine_t
    private let stream: dnnl_stream_t
    private var primitive: dnnl_primitive_t?
    private var memories: [dnnl_memory_t] = []  // bf16 A, bf16 B, fp32 C (oneDNN's buffers)
    public let m: Int, n: Int, k: Int
    private let threads: Int

    public init?(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, threads: Int) {
        self.m = m; self.n = n; self.k = k; self.threads = threads
        var engine: dnnl_engine_t?, stream: dnnl_stream_t?
        guard dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success, let engine else { return nil }
        guard dnnl_stream_create(&stream, engine, dnnl_stream_default_flags.rawValue) == dnnl_success, let stream
        else { dnnl_engine_destroy(engine); return nil }
        self.engine = engine; self.stream = stream
        omp_set_num_threads(Int32(threads))
        func descriptor(_ rows: Int, _ columns: Int, _ type: dnnl_data_type_t) -> dnnl_memory_desc_t {
            var md = dnnl_memory_desc_t()
            var dims: [dnnl_dim_t] = [dnnl_dim_t(rows), dnnl_dim_t(columns)]
            _ = dnnl_memory_desc_init_by_tag(&md, 2, &dims, type, dnnl_ab)
            return md
        }
        var aMD = descriptor(m, k, dnnl_bf16), bMD = descriptor(k, n, dnnl_bf16), cMD = descriptor(m, n, dnnl_f32)
        var desc = dnnl_matmul_desc_t()
        var pd: dnnl_primitive_desc_t?
        guard dnnl_matmul_desc_init(&desc, &aMD, &bMD, nil, &cMD) == dnnl_success,
              dnnl_primitive_desc_create(&pd, &desc, nil, engine, nil) == dnnl_success, let pd else { return nil }
        defer { dnnl_primitive_desc_destroy(pd) }
        guard dnnl_primitive_create(&primitive, pd) == dnnl_success, primitive != nil else { return nil }
        for var md in [aMD, bMD, cMD] {
            var memory: dnnl_memory_t?
            // DNNL_MEMORY_ALLOCATE, a C macro Swift does not import: oneDNN allocates and owns the buffer.
            let allocate = UnsafeMutableRawPointer(bitPattern: -1)
            guard dnnl_memory_create(&memory, &md, engine, allocate) == dnnl_success, let memory else { return nil }
            memories.append(memory)
        }
        // Round A and B to bf16 with oneDNN's reorder (round to nearest even).
        for (index, (source, rows, columns)) in [(a, m, k), (b, k, n)].enumerated() {
            var plainMD = descriptor(rows, columns, dnnl_f32)
            var targetMD = index == 0 ? aMD : bMD
            var plain: dnnl_memory_t?, reorderPD: dnnl_primitive_desc_t?, reorder: dnnl_primitive_t?
            guard dnnl_memory_create(&plain, &plainMD, engine, UnsafeMutableRawPointer(mutating: source)) == dnnl_success,
                  let plain else { return nil }
            defer { dnnl_memory_destroy(plain) }
            guard dnnl_reorder_primitive_desc_create(&reorderPD, &plainMD, engine, &targetMD, engine, nil) == dnnl_success,
                  let reorderPD else { return nil }
            defer { dnnl_primitive_desc_destroy(reorderPD) }
            guard dnnl_primitive_create(&reorder, reorderPD) == dnnl_success, let reorder else { return nil }
            defer { dnnl_primitive_destroy(reorder) }
            var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_FROM, memory: plain),
                             dnnl_exec_arg_t(arg: DNNL_ARG_TO, memory: memories[index])]
            guard dnnl_primitive_execute(reorder, stream, 2, &arguments) == dnnl_success,
                  dnnl_stream_wait(stream) == dnnl_success else { return nil }
        }
    }

    deinit {
        if let primitive { dnnl_primitive_destroy(primitive) }
        for memory in memories { dnnl_memory_destroy(memory) }
        dnnl_stream_destroy(stream)
        dnnl_engine_destroy(engine)
    }

    /// One product; false if oneDNN failed.
    public func run() -> Bool {
        guard let primitive, memories.count == 3 else { return false }
        omp_set_num_threads(Int32(threads))
        var arguments = [dnnl_exec_arg_t(arg: DNNL_ARG_SRC, memory: memories[0]),
                         dnnl_exec_arg_t(arg: DNNL_ARG_WEIGHTS, memory: memories[1]),
                         dnnl_exec_arg_t(arg: DNNL_ARG_DST, memory: memories[2])]
        return dnnl_primitive_execute(primitive, stream, 3, &arguments) == dnnl_success
            && dnnl_stream_wait(stream) == dnnl_success
    }

    /// C of the last run, row-major m x n.
    public func result() -> [Float] {
        var handle: UnsafeMutableRawPointer?
        guard memories.count == 3, dnnl_memory_get_data_handle(memories[2], &handle) == dnnl_success, let handle
        else { return [] }
        return Array(UnsafeBufferPointer(start: handle.assumingMemoryBound(to: Float.self), count: m * n))
    }
}
#else
/// Without oneDNN there is no bf16 matmul: the initializer always fails.
public final class DNNLBF16MatMul {
    public init?(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>, threads: Int) { nil }
    public func run() -> Bool { false }
    public func result() -> [Float] { [] }
}
#endif

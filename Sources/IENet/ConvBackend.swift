import Foundation
import IECore
#if IE_DNNL
import CDNNL
#endif

/// Which library computes Conv3d / ConvTranspose3d. `gemm` (im2col + OpenBLAS sgemm) is the portable reference and
/// the test oracle; `dnnl` (oneDNN primitives) exists only when the package was built with `libdnnl-dev` installed.
/// Both read and write the same NCDHW tensors and [out, in, k, k, k] weights, so the layers do not know which ran.
public enum ConvBackend: String, CaseIterable, Sendable {
    case gemm
    case dnnl

    /// True when this build contains the oneDNN backend.
    public static var isDNNLAvailable: Bool {
        #if IE_DNNL
        return true
        #else
        return false
        #endif
    }

    /// The backend in use. Default: oneDNN when built in, else GEMM. Measured with bench/ie-bench on this 2-core
    /// AVX-512 machine (OpenBLAS pinned to Haswell kernels), per CPU-second, batch 2, 1 thread: conv 32->32 at 64^3
    /// forward+backward 95.8 GFLOP/s vs 74.5, at 32^3 104.5 vs 71.3, 64..512 channels 93-127 vs 61-82, stride-2
    /// 76 vs 57, transposed 91 vs 70; UNet3D f=32 64^3 training step 7.9 s vs 10.0 s (2 threads: 5.3 s wall /
    /// 9.0 s CPU vs 5.6 s / 10.7 s). Results differ from GEMM's in the last bits, so resume with the same backend.
    /// `IENET_CONV_BACKEND=gemm|dnnl` forces one; asking for dnnl in a build without it falls back to gemm.
    nonisolated(unsafe) public static var current: ConvBackend =
        chosen(byEnvironment: ProcessInfo.processInfo.environment["IENET_CONV_BACKEND"], dnnlBuilt: isDNNLAvailable)

    /// The backend for a value of IENET_CONV_BACKEND (nil: unset) in a build with or without oneDNN.
    static func chosen(byEnvironment value: String?, dnnlBuilt: Bool) -> ConvBackend {
        let preferred: ConvBackend = dnnlBuilt ? .dnnl : .gemm
        switch value?.lowercased() {
        case "gemm": return .gemm
        case "dnnl", "onednn":
            if dnnlBuilt { return .dnnl }
            Log.warning("IENET_CONV_BACKEND=\(value!) but this build has no oneDNN (install libdnnl-dev and rebuild); using gemm")
            return .gemm
        case nil, "": return preferred
        default:
            Log.warning("IENET_CONV_BACKEND=\(value!) not understood, expected gemm or dnnl; using \(preferred.rawValue)")
            return preferred
        }
    }

    /// One line for logs and the bench: the backend and, for oneDNN, its version, CPU ISA and threading runtime.
    public static var summary: String {
        switch current {
        case .gemm: return "gemm (im2col + OpenBLAS sgemm)"
        case .dnnl:
            #if IE_DNNL
            return "dnnl (\(DNNLConv.libraryDescription))"
            #else
            return "dnnl (not built)"
            #endif
        }
    }
}

/// oneDNN hooks that compile in every build, so tests and tools need no `#if` (without oneDNN they say "no").
extension ConvBackend {
    /// Convolutions with fewer input channels than this run on the GEMM path even when oneDNN is selected.
    public static var dnnlMinimumInputChannels: Int {
        get {
            #if IE_DNNL
            return DNNLConv.minimumInputChannels
            #else
            return 0
            #endif
        }
        set {
            #if IE_DNNL
            DNNLConv.minimumInputChannels = newValue
            #endif
        }
    }

    /// Activations larger than this (bytes) are left to the GEMM path (bounded scratch memory) under oneDNN.
    static var dnnlMaximumCopyBytes: Int {
        get {
            #if IE_DNNL
            return DNNLConv.maximumCopyBytes
            #else
            return 0
            #endif
        }
        set {
            #if IE_DNNL
            DNNLConv.maximumCopyBytes = newValue
            #endif
        }
    }

    /// Whether the oneDNN backend would run this convolution (it built all three primitives for it).
    static func dnnlHandles(_ g: ConvGeometry, batch: Int) -> Bool {
        #if IE_DNNL
        return DNNLConv.supports(g, batch: batch)
        #else
        return false
        #endif
    }

    /// oneDNN's implementation names for forward, backward-data and backward-weights (e.g. "jit:avx512_core").
    static func dnnlImplementations(_ g: ConvGeometry, batch: Int) -> [String] {
        #if IE_DNNL
        return [DNNLConv.Direction.forward, .backwardData, .backwardWeights]
            .map { DNNLConv.implementation(g, batch: batch, $0) }
        #else
        return []
        #endif
    }

    /// Forgets oneDNN's cached primitives (they are rebuilt on next use).
    static func clearDNNLCache() {
        #if IE_DNNL
        DNNLConv.clearCache()
        #endif
    }
}

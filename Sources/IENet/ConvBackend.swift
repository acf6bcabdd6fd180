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

    /// The backend in use. Default: oneDNN when built in (measured faster, see bench/ie-bench), else GEMM.
    /// `IENET_CONV_BACKEND=gemm|dnnl` forces one; asking for dnnl in a build without it falls back to gemm.
    nonisolated(unsafe) public static var current: ConvBackend = {
        let environment = ProcessInfo.processInfo.environment["IENET_CONV_BACKEND"]?.lowercased()
        switch environment {
        case "gemm": return .gemm
        case "dnnl", "onednn":
            if isDNNLAvailable { return .dnnl }
            Log.warning("IENET_CONV_BACKEND=dnnl but this build has no oneDNN (install libdnnl-dev and rebuild); using gemm")
            return .gemm
        case nil, "": return isDNNLAvailable ? .dnnl : .gemm
        default:
            Log.warning("IENET_CONV_BACKEND=\(environment!) not understood, expected gemm or dnnl; using the default")
            return isDNNLAvailable ? .dnnl : .gemm
        }
    }()

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

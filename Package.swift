// swift-tools-version:5.9
import PackageDescription
import Foundation

// IE_BUILD_WITHOUT=mpi,dnnl builds as if those optional libraries were missing (to check such builds here).
let buildWithout = Set((ProcessInfo.processInfo.environment["IE_BUILD_WITHOUT"] ?? "").split(separator: ",").map(String.init))

// Open MPI (libopenmpi-dev) is optional: CMPI and the MPI gradient reducer are built only when its header is here.
let openMPIHeader = "/usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h"
let hasOpenMPI = FileManager.default.fileExists(atPath: openMPIHeader) && !buildWithout.contains("mpi")
let mpiTargets: [Target] = hasOpenMPI ? [.systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c")] : []
let distributedDependencies: [Target.Dependency] = ["IECore", "IENet", "CBLAS"] + (hasOpenMPI ? ["CMPI"] : [])

/// oneDNN (Debian libdnnl-dev) is an optional second convolution backend for IENet, built in when its header exists.
let hasDNNL = FileManager.default.fileExists(atPath: "/usr/include/dnnl.h") && !buildWithout.contains("dnnl")
/// ie-bench measures oneDNN's own sgemm beside OpenBLAS's for the machine's sgemm peak.
let benchDependencies: [Target.Dependency] = ["IENet", "IEEval", "IEDistributed", "IEImage", "IETrain", "CBLAS"] + (hasDNNL ? ["CDNNL"] : [])

/// IENet's direct-convolution kernels are compiled for Haswell-class x86-64 (AVX2 + FMA); IENet calls them only
/// after checking the CPU at run time. Elsewhere they are built for the host's baseline and left unused.
#if arch(x86_64)
let directConvKernelFlags = ["-Ounchecked", "-target-cpu", "haswell"]
#else
let directConvKernelFlags = ["-Ounchecked"]
#endif

let package = Package(
    name: "ie-toolbox",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "ie-split", targets: ["ie-split"]),
        .executable(name: "ie-train", targets: ["ie-train"]),
        .executable(name: "ie-infer", targets: ["ie-infer"]),
        .executable(name: "ie-ensemble", targets: ["ie-ensemble"]),
        .executable(name: "ie-metrics", targets: ["ie-metrics"]),
        .executable(name: "ie-evaluate", targets: ["ie-evaluate"]),
        .executable(name: "ie-crossval", targets: ["ie-crossval"]),
        .executable(name: "ie-submit", targets: ["ie-submit"]),
        .executable(name: "ie-status", targets: ["ie-status"]),
        .executable(name: "ie-stats", targets: ["ie-stats"]),
        .executable(name: "ie-report", targets: ["ie-report"]),
        .executable(name: "ie-synth", targets: ["ie-synth"]),
        .executable(name: "ie-models", targets: ["ie-models"]),
        .executable(name: "ie-bench", targets: ["ie-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CNIfTI", path: "Sources/CNIfTI"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CCSV", path: "Sources/CCSV"),
    ] + (hasDNNL ? [.systemLibrary(name: "CDNNL", path: "Sources/CDNNL")] : []) + [

        .target(name: "IECore", dependencies: ["CCSV"]),
        .target(name: "IEImage", dependencies: ["IECore", "CNIfTI", "CPNG"]),
        .target(name: "IEConfig", dependencies: ["IECore", "Yams"]),
        .target(name: "IEData", dependencies: ["IECore", "IEImage", "IEConfig"]),
        .target(name: "IERun", dependencies: ["IECore", "IEConfig"]),
        .target(name: "CPrefetch"),
        .target(name: "IENetKernels", dependencies: ["CPrefetch"], swiftSettings: [.unsafeFlags(directConvKernelFlags)]),
        .target(name: "IENet", dependencies: ["IECore", "CBLAS", "IENetKernels"] + (hasDNNL ? ["CDNNL"] : []),
                swiftSettings: [.unsafeFlags(["-Ounchecked"])] + (hasDNNL ? [.define("IE_DNNL")] : [])),
        .target(name: "IEEval", dependencies: ["IECore", "IEImage"]),
        .target(name: "IETrain", dependencies: ["IECore", "IEImage", "IEData", "IEConfig", "IERun", "IENet", "IEDistributed", "IEEval"]),
        .target(name: "IECommand", dependencies: ["IECore", "IEConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .target(name: "IEReport", dependencies: ["IECore", "IEEval", "IERun", "IEData", "IEConfig", "IEImage"]),
        .target(name: "IEDistributed", dependencies: distributedDependencies),
        .target(name: "IECrossValidation", dependencies: ["IECore", "IEConfig", "IEEval", "IENet", "IEPipeline", "IEReport", "IERun", "IETrain"]),
        .target(name: "IESlurm", dependencies: ["IECore", "IEConfig", "IERun", "IETrain"]),
        .target(name: "IEInferCommand", dependencies: ["IECommand", "IECore", "IEConfig", "IENet", "IERun", "IETrain",
                .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .target(name: "IEPipeline", dependencies: ["IECore", "IEConfig", "IENet", "IEReport", "IERun", "IETrain"]),

        .executableTarget(name: "ie-split", dependencies: ["IECommand", "IECore", "IEData", "IEConfig", "IERun",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-train", dependencies: ["IECommand", "IECore", "IEConfig", "IEDistributed", "IENet", "IERun", "IETrain",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-infer", dependencies: ["IECommand", "IEInferCommand",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-ensemble", dependencies: ["IECommand", "IEInferCommand",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-metrics", dependencies: ["IECommand", "IECore", "IEData", "IEConfig", "IEEval", "IEReport", "IERun",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-evaluate", dependencies: ["IECommand", "IECore", "IEConfig", "IENet", "IEPipeline", "IERun",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-crossval", dependencies: ["IECommand", "IECore", "IEConfig", "IECrossValidation", "IENet", "IERun", "IETrain",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-submit", dependencies: ["IECommand", "IECore", "IEConfig", "IERun", "IESlurm",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-status", dependencies: ["IECommand", "IECore", "IERun", "IESlurm",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-stats", dependencies: ["IECommand", "IECore", "IEEval",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-report", dependencies: ["IECommand", "IECore", "IEReport",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-synth", dependencies: ["IECommand", "IECore", "IEData",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-models", dependencies: ["IECommand", "IECore", "IEConfig", "IERun",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(name: "ie-bench", dependencies: benchDependencies, path: "bench/ie-bench"),
        .executableTarget(name: "ie-fuzz", dependencies: ["IECore", "IEConfig", "IEData", "IEEval", "IEImage", "IENet"],
                          path: "fuzz/ie-fuzz"),

        .target(name: "IETestSupport", path: "Tests/IETestSupport"),
        .testTarget(name: "IECoreTests", dependencies: ["IECore"]),
        .testTarget(name: "IEImageTests", dependencies: ["IETestSupport", "IECore", "IEImage", "IEData"], exclude: ["Fixtures"]),
        .testTarget(name: "IEDataTests", dependencies: ["IETestSupport", "IEData", "IEConfig", "IERun", "IECore", "IEImage"], exclude: ["Fixtures"]),
        .testTarget(name: "IEConfigTests", dependencies: ["IEConfig", "IECore"]),
        .testTarget(name: "IENetTests", dependencies: ["IETestSupport", "IENet", "IENetKernels", "IECore"], exclude: ["Fixtures"]),
        .testTarget(name: "IEEvalTests", dependencies: ["IETestSupport", "IEEval", "IEReport", "IECore", "IEImage"], exclude: ["Fixtures"]),
        .testTarget(name: "IETrainTests", dependencies: ["IETestSupport", "IETrain", "IENet", "IECore", "IEConfig", "IEImage"], exclude: ["Fixtures"]),
        .testTarget(name: "EndToEndTests", dependencies: ["IETestSupport", "IEConfig", "IENet", "IERun", "IEPipeline"]),
        .testTarget(name: "IEDistributedTests", dependencies: ["IEDistributed", "IENet"]),
        .testTarget(name: "IESlurmTests", dependencies: ["IESlurm", "IETrain", "IEConfig", "IECore"]),
        .testTarget(name: "IECommandTests", dependencies: ["IECommand", "IEConfig", "IECore",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
    ] + mpiTargets
)

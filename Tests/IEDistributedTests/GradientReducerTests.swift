import Foundation
import XCTest
import IEDistributed
import IENet

/// A reducer whose "average" is a known function of the packed buffer, to check the packing of gradients.
final class RecordingReducer: GradientReducer {
    var packed: [Float] = []
    var rank: Int { 0 }
    var size: Int { 2 }
    func average(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        packed = Array(buffer)
        for i in 0..<buffer.count { buffer[i] = buffer[i] * 0.5 + 10 }
    }
}

final class GradientReducerTests: XCTestCase {
    func parameters() -> [Parameter] {
        [Parameter(name: "a", shape: [2, 3], value: [Float](repeating: 0, count: 6)),
         Parameter(name: "b", shape: [1], value: [0]),
         Parameter(name: "c", shape: [4], value: [Float](repeating: 0, count: 4))]
    }

    func testLocalReducerLeavesGradientsAlone() throws {
        let ps = parameters()
        for (j, p) in ps.enumerated() { p.grad = (0..<p.count).map { Float(j * 100 + $0) } }
        let before = ps.map(\.grad)
        var scratch: [Float] = []
        try LocalReducer().averageGradients(ps, scratch: &scratch)
        XCTAssertEqual(ps.map(\.grad), before)
        XCTAssertEqual(LocalReducer().size, 1)
    }

    func testGradientsArePackedInParameterOrderReducedOnceAndUnpacked() throws {
        let ps = parameters()
        for (j, p) in ps.enumerated() { p.grad = (0..<p.count).map { Float(j * 100 + $0) } }
        let reducer = RecordingReducer()
        var scratch: [Float] = []
        try reducer.averageGradients(ps, scratch: &scratch)
        XCTAssertEqual(reducer.packed, [0, 1, 2, 3, 4, 5, 100, 200, 201, 202, 203])
        XCTAssertEqual(ps[0].grad, [10, 10.5, 11, 11.5, 12, 12.5])
        XCTAssertEqual(ps[1].grad, [60])
        XCTAssertEqual(ps[2].grad, [110, 110.5, 111, 111.5])
    }

    func testRanksAnnouncedByTheLauncher() {
        XCTAssertEqual(Distributed.launchedRanks(environment: [:]), 1)
        XCTAssertEqual(Distributed.launchedRanks(environment: ["OMPI_COMM_WORLD_SIZE": "4"]), 4)
        XCTAssertEqual(Distributed.launchedRanks(environment: ["SLURM_NTASKS": "3"]), 1, "an sbatch allocation alone is no MPI launch")
        XCTAssertEqual(Distributed.launchedRanks(environment: ["SLURM_NTASKS": "3", "PMIX_RANK": "0"]), 3)
    }

    func testRankAnnouncedByTheLauncher() {
        XCTAssertEqual(Distributed.launchedRank(environment: [:]), 0)
        XCTAssertEqual(Distributed.launchedRank(environment: ["OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_RANK": "3"]), 3)
        XCTAssertEqual(Distributed.launchedRank(environment: ["SLURM_NTASKS": "2", "PMIX_RANK": "1", "SLURM_PROCID": "1"]), 1)
        XCTAssertEqual(Distributed.launchedRank(environment: ["SLURM_NTASKS": "2", "SLURM_PROCID": "1"]), 0,
                       "a plain srun task without PMIx is not an MPI rank")
    }

    /// Runs this test binary's MPIRankBody under `mpirun -np 2`; both ranks must pass.
    func testTwoMPIRanksAverageWithAllreduce() throws {
        guard Distributed.mpiAvailable else { throw XCTSkip("built without Open MPI (libopenmpi-dev missing)") }
        if ProcessInfo.processInfo.environment["IE_MPI_RANK_BODY"] != nil { throw XCTSkip("inside an MPI rank") }
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let mpirun else { throw XCTSkip("mpirun not installed (openmpi-bin)") }
        let binary = Bundle.main.executablePath ?? CommandLine.arguments[0]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        process.arguments = ["--allow-run-as-root", "--oversubscribe", "-np", "2", "-x", "IE_MPI_RANK_BODY=1",
                             "-x", "OMP_NUM_THREADS=1", binary, "IEDistributedTests.MPIRankBody/testRankBody"]
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("mpi-\(UUID().uuidString).txt")
        FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        XCTAssertEqual(process.terminationStatus, 0, text.suffix(3000).description)
        XCTAssertEqual(text.components(separatedBy: "Test Case 'MPIRankBody.testRankBody' passed").count - 1, 2,
                       "both ranks passed:\n\(text.suffix(3000))")
    }
}

/// The body each MPI rank runs. XCTest discovers it, so outside mpirun it reports itself skipped; the allreduce
/// timing for the UNet3D gradient is in `make bench` (ie-bench --allreduce), not here.
final class MPIRankBody: XCTestCase {
    func testRankBody() throws {
        guard ProcessInfo.processInfo.environment["IE_MPI_RANK_BODY"] != nil else {
            throw XCTSkip("runs only under mpirun, started by GradientReducerTests")
        }
        let reducer = try Distributed.reducer()
        XCTAssertEqual(reducer.size, 2)
        // Rank r holds (r+1) * (i % 7): the mean is 1.5 * (i % 7), exact in Float.
        var buffer = (0..<1001).map { Float(reducer.rank + 1) * Float($0 % 7) }
        try buffer.withUnsafeMutableBufferPointer { try reducer.average($0) }
        XCTAssertEqual(buffer, (0..<1001).map { 1.5 * Float($0 % 7) })

        // A whole UNet3D's gradients in one collective.
        let model = UNet3D(imageChannels: 1, classes: 3, featureChannels: 4, seed: 1)
        for p in model.parameters { p.grad = [Float](repeating: Float(reducer.rank), count: p.count) }
        var scratch: [Float] = []
        try reducer.averageGradients(model.parameters, scratch: &scratch)
        XCTAssertTrue(model.parameters.allSatisfy { $0.grad.allSatisfy { $0 == 0.5 } }, "every gradient averaged to 0.5")
    }
}

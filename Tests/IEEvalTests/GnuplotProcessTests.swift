import Foundation
import XCTest
@testable import IEReport

/// gnuplot starts with no signal blocked wherever the plot is drawn from. Foundation's Process passed on the mask of
/// the starting thread, and libdispatch's workers (where the metrics step draws in parallel) block almost every
/// signal: such a gnuplot could be stopped by SIGKILL only.
final class GnuplotProcessTests: XCTestCase {
    func testGnuplotStartedFromADispatchWorkerHasNoSignalBlocked() throws {
        let folder = NSTemporaryDirectory() + "ie-gnuplot-mask-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The fake writes the PNG gnuplot would, then becomes grep (exec keeps the mask it started with).
        let fake = folder + "/gnuplot"
        try "#!/bin/sh\necho png > plot.png\nexec grep SigBlk /proc/self/status > \"$IE_TEST_MASK\"\n"
            .write(toFile: fake, atomically: true, encoding: .utf8)
        chmod(fake, 0o755)
        let saved = ProcessInfo.processInfo.environment["IE_GNUPLOT"]
        setenv("IE_GNUPLOT", fake, 1)
        setenv("IE_TEST_MASK", folder + "/mask", 1)
        defer {
            if let saved { setenv("IE_GNUPLOT", saved, 1) } else { unsetenv("IE_GNUPLOT") }
            unsetenv("IE_TEST_MASK")
        }
        final class Outcome: @unchecked Sendable { var result: Result<Data, Error>? }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            outcome.result = Result { try Gnuplot.png(body: "plot x", dataFiles: [:]) }
            done.signal()
        }
        done.wait()
        XCTAssertEqual(try outcome.result?.get(), Data("png\n".utf8))
        XCTAssertEqual(try String(contentsOfFile: folder + "/mask", encoding: .utf8), "SigBlk:\t0000000000000000\n")
    }
}

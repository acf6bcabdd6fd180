import Foundation
import XCTest

/// The README's set-up command installs the Makefile's APT_PACKAGES on a fresh Debian 12. A header or library of a
/// C module that comes from a package outside that list (and its dependencies) builds here, where the package is
/// left from an earlier install, but not on a fresh machine: tools/check-install-list.sh finds such files with dpkg.
final class InstallListTests: XCTestCase {
    private func runCheck(installList: String?) throws -> (status: Int32, output: String) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/dpkg-query") else {
            throw XCTSkip("not a Debian system: no dpkg to ask which package owns a header")
        }
        var environment = ProcessInfo.processInfo.environment
        if let installList { environment["IE_INSTALL_LIST"] = installList }
        let result = try HPCTest.run("/bin/bash", [ToolRunner.repoRoot + "/tools/check-install-list.sh"],
                                     environment: environment)
        return (result.status, result.stdout + result.stderr)
    }

    func testEveryHeaderAndLibraryComesFromTheInstallList() throws {
        let result = try runCheck(installList: nil)
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("all come from the install list"), result.output)
    }

    /// The check can fail: without libnifti2-dev (the package missing before, which owns nifti/nifti1.h) it names
    /// the header and the package.
    func testAListWithoutTheNIfTIHeaderPackageFails() throws {
        let makefile = try String(contentsOfFile: ToolRunner.repoRoot + "/Makefile", encoding: .utf8)
        XCTAssertTrue(makefile.contains("libnifti2-dev"), "the Makefile's install list should name libnifti2-dev")
        let reduced = "libniftiio-dev libznz-dev zlib1g-dev libopenblas-dev libpng-dev libcsv-dev gnuplot-nox " +
            "python3 python3-venv python3-pip openmpi-bin libopenmpi-dev libdnnl-dev"
        let result = try runCheck(installList: reduced)
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("/usr/include/nifti/nifti1.h comes from Debian package 'libnifti2-dev'"),
                      result.output)
    }
}

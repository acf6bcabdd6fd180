import Foundation
import XCTest
import IETestSupport

/// `ie-metrics labels` from the command line, on label maps written by nibabel: one row per label named by
/// --names, the same file on 1 and 2 threads, an empty row for a label in neither map, bad label maps as one-line
/// errors with exit 3. (The values themselves are checked against SimpleITK in MetricsLabelMapTests.)
final class MetricsLabelsCommandTests: XCTestCase {
    static let writer = """
    import sys
    import numpy as np, nibabel as nib
    z, y, x = np.meshgrid(np.arange(6), np.arange(9), np.arange(8), indexing="ij")
    truth = np.where((z < 3) & (y < 5), 1, np.where((z > 2) & (x > 3), 2, np.where(y == 8, 3, 0)))
    prediction = np.where((z < 3) & (y < 6), 1, np.where((z > 3) & (x > 2), 2, 0))
    fractional = prediction.astype(np.float32); fractional[1, 1, 1] = 0.5
    affine = np.diag([0.9, 1.2, 2.5, 1.0])  # x, y, z spacing
    for name, volume in [("truth", truth.astype(np.uint8)), ("prediction", prediction.astype(np.int16)), ("fractional", fractional)]:
        nib.save(nib.Nifti1Image(np.transpose(volume, (2, 1, 0)), affine), sys.argv[1] + "/" + name + ".nii.gz")
    """

    func testLabelsCommand() throws {
        let runner = try ToolRunner(name: "labels")
        defer { runner.remove() }
        let folder = runner.folder
        _ = try PythonOracle.run(Self.writer, arguments: [folder])
        try "1 left\n2 right\n3 stripe\n".write(toFile: folder + "/names.txt", atomically: true, encoding: .utf8)
        var outputs: [String] = []
        for threads in [1, 2] {
            let result = try runner.run("metrics", ["labels", "--prediction=prediction.nii.gz", "--ground_truth=truth.nii.gz",
                                                    "--names=names.txt", "--threads=\(threads)", "-o", "out\(threads).csv"])
            XCTAssertEqual(result.status, 0, result.stderr)
            outputs.append(try String(contentsOfFile: folder + "/out\(threads).csv", encoding: .utf8))
        }
        XCTAssertEqual(outputs[0], outputs[1])
        let lines = outputs[0].split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm")
        XCTAssertEqual(lines.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false)[1] }, ["left", "right", "stripe"])
        XCTAssertTrue(lines.last?.hasSuffix(",stripe,0.000,inf,inf") ?? false, outputs[0])

        let absent = try runner.run("metrics", ["labels", "--prediction=prediction.nii.gz", "--ground_truth=truth.nii.gz",
                                                "--labels=2,40", "-o", "-"])
        XCTAssertEqual(absent.status, 0, absent.stderr)
        XCTAssertTrue(absent.stdout.contains("\n1,40,,,\n"), absent.stdout)

        let bad = try runner.run("metrics", ["labels", "--prediction=fractional.nii.gz", "--ground_truth=truth.nii.gz"])
        XCTAssertEqual(bad.status, 3)
        XCTAssertTrue(bad.stderr.hasPrefix("ie-metrics: error: fractional.nii.gz: voxel "), bad.stderr)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }
}

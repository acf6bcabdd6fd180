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

    /// The same anatomy stored with the x axis reversed (nibabel's as_closest_canonical gives the original back)
    /// scored Dice 0 against the original, and a copy moved 30 mm scored Dice 1: both are refused (exit 3,
    /// naming what differs), in `labels` and in `pair`, as SimpleITK refuses images in another physical space.
    func testMapsOnAnotherGridAreRefused() throws {
        let runner = try ToolRunner(name: "grids")
        defer { runner.remove() }
        let folder = runner.folder
        _ = try PythonOracle.run(Self.writer + """

            truth_img = nib.load(sys.argv[1] + "/truth.nii.gz")
            flip = np.eye(4); flip[0, 0] = -1; flip[0, 3] = truth_img.shape[0] - 1
            las = nib.Nifti1Image(np.asanyarray(truth_img.dataobj)[::-1], truth_img.affine @ flip)
            assert np.array_equal(np.asanyarray(nib.as_closest_canonical(las).dataobj), np.asanyarray(truth_img.dataobj))
            nib.save(las, sys.argv[1] + "/truth_las.nii.gz")
            mirrored = truth_img.affine.copy(); mirrored[:, 0] *= -1  # the same origin, x pointing the other way
            nib.save(nib.Nifti1Image(np.asanyarray(truth_img.dataobj), mirrored), sys.argv[1] + "/truth_mirrored.nii.gz")
            shifted = truth_img.affine.copy(); shifted[0, 3] += 30
            nib.save(nib.Nifti1Image(np.asanyarray(truth_img.dataobj), shifted), sys.argv[1] + "/truth_shifted.nii.gz")
            binary = (np.asanyarray(truth_img.dataobj) == 1).astype(np.uint8)
            nib.save(nib.Nifti1Image(binary, truth_img.affine), sys.argv[1] + "/one.nii.gz")
            nib.save(nib.Nifti1Image(binary[::-1], truth_img.affine @ flip), sys.argv[1] + "/one_las.nii.gz")
            """, arguments: [folder])
        // The LAS copy's first voxel is the other corner: its origin differs first.
        for (other, what) in [("truth_las.nii.gz", "origin"), ("truth_mirrored.nii.gz", "direction"), ("truth_shifted.nii.gz", "origin")] {
            let labels = try runner.run("metrics", ["labels", "--prediction=truth.nii.gz", "--ground_truth=\(other)", "-o", "-"])
            XCTAssertEqual(labels.status, 3, labels.stdout + labels.stderr)
            XCTAssertTrue(labels.stderr.hasPrefix("ie-metrics: error: truth.nii.gz: \(what) ") && labels.stderr.contains(other), labels.stderr)
            XCTAssertEqual(labels.stderr.split(separator: "\n").count, 1, labels.stderr)
        }
        let pair = try runner.run("metrics", ["pair", "--prediction=one.nii.gz", "--ground_truth=one_las.nii.gz", "-o", "-"])
        XCTAssertEqual(pair.status, 3, pair.stdout + pair.stderr)
        XCTAssertTrue(pair.stderr.contains("origin") && pair.stderr.contains("one_las.nii.gz"), pair.stderr)
        let same = try runner.run("metrics", ["pair", "--prediction=one_las.nii.gz", "--ground_truth=one_las.nii.gz", "-o", "-"])
        XCTAssertEqual(same.status, 0, same.stderr)
    }
}

import Foundation
import IECore
import IEData
import IEImage
import XCTest

final class SyntheticDatasetTests: XCTestCase {
    static let options = SyntheticDataset.Options(subjects: 3, seed: 2024, shape: Shape3D(z: 16, y: 48, x: 48))

    override func setUp() {
        Log.level = .quiet     // no progress lines in the test log
    }

    func testDatasetIsConsistentAndStructuresHaveTheirDesignedIntensities() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let csvPath = try SyntheticDataset.generate(into: dir, options: Self.options)
        XCTAssertEqual(csvPath, dir + "/dataset.csv")
        let table = try CSVTable.read(path: csvPath)
        XCTAssertEqual(table.header, ["subject", "filePath", "channel", "seriesId", "institutionId"])
        XCTAssertEqual(table.rows.count, 3 * 4)
        XCTAssertEqual(Set(table.rows.map { $0[3] }).count, 3, "one seriesId per subject")
        for subject in ["1", "2", "3"] {
            XCTAssertEqual(Set(table.rows.filter { $0[0] == subject }.map { $0[3] }).count, 1, "subject \(subject): one seriesId")
        }
        XCTAssertEqual(Set(table.rows.map { $0[4] }).count, 3, "three institutions for three subjects")

        for subject in ["1", "2", "3"] {
            var images: [String: Volume<Float>] = [:]
            for row in table.rows where row[0] == subject {
                XCTAssertFalse(row[1].hasPrefix("/"), "filePath relative to the CSV folder")
                images[row[2]] = try NIfTI.read(dir + "/" + row[1])
            }
            XCTAssertEqual(Set(images.keys), ["ct", "region_a", "region_b", "mask"])
            let ct = try XCTUnwrap(images["ct"]), a = try XCTUnwrap(images["region_a"])
            let b = try XCTUnwrap(images["region_b"]), body = try XCTUnwrap(images["mask"])
            XCTAssertEqual(try NIfTI.readHeader(dir + "/\(String(format: "%03d", Int(subject)!))/ct.nii.gz").dataType, .int16)
            XCTAssertEqual([ct.shape.z, ct.shape.y, ct.shape.x], [16, 48, 48])
            XCTAssertEqual([ct.spacing.z, ct.spacing.y, ct.spacing.x], [3, 1, 1])
            XCTAssertNotEqual(ct.origin.x, 0)
            for image in [a, b, body] {
                XCTAssertTrue(image.data.allSatisfy { $0 == 0 || $0 == 1 }, "binary mask")
                XCTAssertEqual(image.origin.z, ct.origin.z)
            }
            var sums = (a: 0.0, b: 0.0, tissue: 0.0, air: 0.0), counts = (a: 0, b: 0, tissue: 0, air: 0)
            var airSquares = 0.0
            for i in 0..<ct.count {
                XCTAssertFalse(a.data[i] == 1 && b.data[i] == 1, "structures exclusive")
                if a.data[i] == 1 || b.data[i] == 1 { XCTAssertEqual(body.data[i], 1, "structures inside the body") }
                let v = Double(ct.data[i])
                if a.data[i] == 1 { sums.a += v; counts.a += 1 }
                else if b.data[i] == 1 { sums.b += v; counts.b += 1 }
                else if body.data[i] == 1 { sums.tissue += v; counts.tissue += 1 }
                else { sums.air += v; counts.air += 1; airSquares += (v + 1000) * (v + 1000) }
            }
            // Structures 1-3 cm across at 3x1x1 mm voxels: hundreds to thousands of voxels each.
            XCTAssertGreaterThan(counts.a, 150)
            XCTAssertGreaterThan(counts.b, 150)
            // Means within ~4 standard errors (noise sd 25 HU) of the design.
            XCTAssertEqual(sums.a / Double(counts.a), 150, accuracy: 8)
            XCTAssertEqual(sums.b / Double(counts.b), -80, accuracy: 8)
            XCTAssertEqual(sums.tissue / Double(counts.tissue), 40, accuracy: 2)
            XCTAssertEqual(sums.air / Double(counts.air), -1000, accuracy: 2)
            XCTAssertEqual((airSquares / Double(counts.air)).squareRoot(), 25, accuracy: 2, "noise sd")
            // The structures span at least 1 cm in y and x, and at least three 3 mm slices.
            for mask in [a, b] {
                var low = (z: Int.max, y: Int.max, x: Int.max), high = (z: Int.min, y: Int.min, x: Int.min)
                for z in 0..<mask.shape.z { for y in 0..<mask.shape.y { for x in 0..<mask.shape.x where mask[z, y, x] == 1 {
                    low = (min(low.z, z), min(low.y, y), min(low.x, x)); high = (max(high.z, z), max(high.y, y), max(high.x, x))
                } } }
                XCTAssertGreaterThanOrEqual(high.z - low.z + 1, 3)
                XCTAssertGreaterThanOrEqual(high.y - low.y + 1, 10)
                XCTAssertGreaterThanOrEqual(high.x - low.x + 1, 10)
            }
        }
    }

    func testSameSeedGivesIdenticalBytesAndOtherSeedsDiffer() throws {
        let dir = try TestFiles.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var small = Self.options
        small.subjects = 2
        try SyntheticDataset.generate(into: dir + "/first", options: small)
        try SyntheticDataset.generate(into: dir + "/second", options: small)
        small.seed += 1
        try SyntheticDataset.generate(into: dir + "/other", options: small)
        let files = ["dataset.csv"] + ["001", "002"].flatMap { s in SyntheticDataset.channels.map { "\(s)/\($0).nii.gz" } }
        for file in files {
            let first = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/first/" + file), file)
            XCTAssertEqual(first, FileManager.default.contents(atPath: dir + "/second/" + file), file)
            if file.hasSuffix("ct.nii.gz") {
                XCTAssertNotEqual(first, FileManager.default.contents(atPath: dir + "/other/" + file), file)
            }
        }
        // A subject does not depend on how many subjects are generated.
        var more = Self.options
        more.subjects = 1
        try SyntheticDataset.generate(into: dir + "/one", options: more)
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/one/001/ct.nii.gz"),
                       FileManager.default.contents(atPath: dir + "/first/001/ct.nii.gz"))
    }

    func testSplitMix64MatchesAnIndependentImplementation() throws {
        let script = #"""
import sys, json
M = (1 << 64) - 1
def splitmix(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        yield z ^ (z >> 31)
g = splitmix(int(sys.argv[1]))
print(json.dumps([str(next(g)) for _ in range(5)]))
"""#
        let expected = try XCTUnwrap(PythonReference.run(script, arguments: ["1234567"]) as? [String])
        var generator = SyntheticDataset.SplitMix64(seed: 1_234_567)
        XCTAssertEqual((0..<5).map { _ in String(generator.next()) }, expected)
    }

    func testRejectsTooSmallShapesAndNoSubjects() {
        XCTAssertThrowsError(try SyntheticDataset.validate(.init(subjects: 0))) { XCTAssertEqual(($0 as? IEError)?.code, .usage) }
        XCTAssertThrowsError(try SyntheticDataset.validate(.init(shape: Shape3D(4, 64, 64)))) { XCTAssertEqual(($0 as? IEError)?.code, .usage) }
        XCTAssertNoThrow(try SyntheticDataset.validate(.init()))
    }
}

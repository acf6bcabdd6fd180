import XCTest
@testable import IEEval

final class MetricsCasesTests: XCTestCase {
    func testCasesFromAnInferenceFolder() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-cases-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for path in ["001/a.nii.gz", "001/b.nii.gz", "010/a.nii.gz", "010/b.nii.gz", "x/a.nii.gz", "x/b.nii.gz"] {
            try FileManager.default.createDirectory(atPath: root + "/" + (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            XCTAssertTrue(FileManager.default.createFile(atPath: root + "/" + path, contents: Data()))
        }
        // Subject 2 has no folder (not in this split) and is skipped; 10 maps to 010/, "x" to x/.
        let cases = try MetricsEvaluation.cases(
            predictionFolder: root, subjects: ["1", "10", "2", "x"], structures: ["a", "b"],
            groundTruth: { subject, structure in subject == "x" && structure == "b" ? nil : "gt/\(subject)/\(structure)" },
            image: { "img/\($0)" })
        XCTAssertEqual(cases.map { "\($0.patient):\($0.structure)" }, ["1:a", "1:b", "10:a", "10:b", "x:a", "x:b"])
        XCTAssertEqual(cases[2].predictionPath, root + "/010/a.nii.gz")
        XCTAssertEqual(cases[2].groundTruthPath, "gt/10/a")
        XCTAssertNil(cases[5].groundTruthPath)
        XCTAssertEqual(cases[5].imagePath, "img/x")
        XCTAssertThrowsError(try MetricsEvaluation.cases(predictionFolder: root, subjects: ["1"], structures: ["c"],
                                                         groundTruth: { _, _ in nil })) { error in
            XCTAssertTrue("\(error)".contains("001/c.nii.gz"), "\(error)")
        }
        XCTAssertThrowsError(try MetricsEvaluation.cases(predictionFolder: root, subjects: ["7"], structures: ["a"],
                                                         groundTruth: { _, _ in nil }))
        XCTAssertEqual(MetricsEvaluation.structureName(fromPath: "/d/lung_l.nii.gz"), "lung_l")
        XCTAssertEqual(MetricsEvaluation.structureName(fromPath: "heart.nii"), "heart")
    }
}

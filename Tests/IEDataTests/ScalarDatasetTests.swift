import Foundation
import XCTest
import IECore
@testable import IEData

/// Scalar datasets (InnerEye's ScalarModelBase CSVs): labels as InnerEye's extract_label_classification reads
/// them, features per channel row, and one-line errors naming file and line for every bad row.
final class ScalarDatasetTests: XCTestCase {
    func table(_ text: String) throws -> CSVTable { try CSVTable.parse(text, source: "/data/scalar/dataset.csv") }

    func testBinaryLabelsChannelsAndFeatures() throws {
        let csv = """
        subject,channel,filePath,label,age,site
        s1,image,s1.png,,63,A
        s1,label,,yes,,
        s2,image,/abs/s2.png,,41,B
        s2,label,,0,,
        s3,image,sub/s3.png,,55.5,A
        s3,label,,TRUE,,
        """
        var options = ScalarDatasetOptions(imageChannels: ["image"])
        options.labelChannels = ["label"]
        options.numericalColumns = ["age"]
        options.categoricalColumns = ["site"]
        options.nonImageFeatureChannels = ["age": ["image"], "site": ["image"]]
        let dataset = try ScalarDataset(table: table(csv), path: "/data/scalar/dataset.csv", options: options)
        XCTAssertEqual(dataset.subjects.map(\.id), ["s1", "s2", "s3"])
        XCTAssertEqual(dataset.subjects.map(\.label), [[1], [0], [1]])
        XCTAssertEqual(dataset.subjects.map(\.labelLine), [3, 5, 7])
        XCTAssertEqual(dataset.subjects.map(\.imageFiles), [["/data/scalar/s1.png"], ["/abs/s2.png"], ["/data/scalar/sub/s3.png"]])
        XCTAssertEqual(dataset.subjects.map(\.numericalFeatures), [[63], [41], [55.5]])
        XCTAssertEqual(dataset.categories["site"], ["A", "B"])
        XCTAssertEqual(dataset.subjects.map { dataset.encodedCategoricalFeatures($0, columns: ["site"]) }, [[1, 0], [0, 1], [1, 0]])
    }

    func testMultiLabelAndRegression() throws {
        let csv = """
        subject,channel,filePath,label
        a,ct,a.nii.gz,0|2
        b,ct,b.nii.gz,
        c,ct,c.nii.gz,1
        """
        var options = ScalarDatasetOptions(imageChannels: ["ct"])
        options.classCount = 3
        let multi = try ScalarDataset(table: table(csv), path: "/d/dataset.csv", options: options)
        XCTAssertEqual(multi.subjects.map(\.label), [[1, 0, 1], [0, 0, 0], [0, 1, 0]])

        var regression = ScalarDatasetOptions(imageChannels: ["ct"])
        regression.isClassification = false
        let values = try ScalarDataset(table: table("subject,channel,filePath,label\na,ct,a.nii.gz,-1.5e2\nb,ct,b.nii.gz,3\n"),
                                       path: "/d/dataset.csv", options: regression)
        XCTAssertEqual(values.subjects.map(\.label), [[-150], [3]])
    }

    /// Each bad dataset: the error's code (exit 3), file and line, and a word of the reason.
    func testBadDatasetsNameFileAndLine() throws {
        var binary = ScalarDatasetOptions(imageChannels: ["image"])
        binary.numericalColumns = ["age"]
        var multi = ScalarDatasetOptions(imageChannels: ["image"])
        multi.classCount = 2
        var regression = ScalarDatasetOptions(imageChannels: ["image"])
        regression.isClassification = false
        var labelled = ScalarDatasetOptions(imageChannels: ["image"])
        labelled.labelChannels = ["label"]
        let header = "subject,channel,filePath,label,age\n"
        let cases: [(String, ScalarDatasetOptions, Int?, String)] = [
            ("s1,image,s1.png,1,50\ns2,image,s2.png,,51\n", binary, 3, "missing"),
            ("s1,image,s1.png,2,50\n", binary, 2, "binary label"),
            ("s1,image,s1.png,0|2,50\n", multi, 2, "out of range"),
            ("s1,image,s1.png,x|1,50\n", multi, 2, "class indices"),
            ("s1,image,s1.png,1,fifty\n", binary, 2, "not a finite number"),
            ("s1,image,s1.png,1,nan\n", binary, 2, "not a finite number"),
            ("s1,image,s1.png,abc,50\n", regression, 2, "regression target"),
            ("s1,image,,1,50\n", binary, 2, "empty filePath"),
            ("s1,image,s1.png,,50\ns1,label,,1,50\ns2,image,s2.png,,50\n", labelled, 4, "no row for channel 'label'"),
            ("s1,image,s1.png,1,50\ns1,image,s1b.png,1,50\n", binary, 3, "duplicate row"),
            ("s1,image,s1.png,1\n", binary, 2, "fields"),
            ("../x,image,s1.png,1,50\n", binary, 2, "subject"),
        ]
        for (rows, options, line, reason) in cases {
            XCTAssertThrowsError(try ScalarDataset(table: table(header + rows), path: "/d/dataset.csv", options: options), rows) { error in
                guard let e = error as? IEError else { return XCTFail("\(error)") }
                XCTAssertEqual(e.code, .badInput, rows)
                XCTAssertEqual(e.file, "/d/dataset.csv", rows)
                XCTAssertEqual(e.line, line, "\(rows): \(e)")
                XCTAssertTrue(e.message.contains(reason), "\(rows): \(e)")
                XCTAssertFalse(e.description.contains("\n"), "one line: \(e)")
            }
        }
        XCTAssertThrowsError(try ScalarDataset(table: table("subject,channel,filePath\n"), path: "/d/dataset.csv", options: binary)) { error in
            XCTAssertTrue("\(error)".contains("missing column 'label'"), "\(error)")
        }
    }
}

import Foundation
import XCTest
import IECore
import IETestSupport
@testable import IEData

/// The classification demo data: images read back by Pillow / nibabel equal the generator's pixels, the CSV
/// loads as a scalar dataset with the recorded labels, the same seed gives the same bytes, and the structure is
/// really there: bright pixels are more numerous where it is present.
final class SyntheticClassificationTests: XCTestCase {
    func testFilesReadBackAndLabelsMatch() throws {
        for dimensions in [2, 3] {
            let scratch = try Scratch()
            var options = SyntheticClassificationDataset.Options()
            (options.subjects, options.dimensions, options.size, options.labelNoise) = (24, dimensions, 16, 0.25)
            let csv = try SyntheticClassificationDataset.generate(into: scratch.root, options: options)
            var scalar = ScalarDatasetOptions(imageChannels: ["image"])
            scalar.labelChannels = ["image"]
            scalar.numericalColumns = ["age"]
            scalar.categoricalColumns = ["scanner"]
            let dataset = try ScalarDataset.load(path: csv, options: scalar)
            XCTAssertEqual(dataset.subjects.count, 24)
            let subjects = (1...24).map { SyntheticClassificationDataset.makeSubject(index: $0, options: options) }
            XCTAssertEqual(dataset.subjects.map { $0.label[0] == 1 }, subjects.map(\.recordedLabel))
            XCTAssertTrue(subjects.contains { $0.present } && subjects.contains { !$0.present })
            XCTAssertTrue(subjects.contains { $0.present != $0.recordedLabel }, "label noise 0.25 flips some of 24 labels")
            let script = """
            import sys, json, numpy as np
            out = []
            for path in sys.argv[1:]:
                if path.endswith('.png'):
                    from PIL import Image
                    a = np.asarray(Image.open(path))
                else:
                    import nibabel
                    a = np.asarray(nibabel.load(path).dataobj).transpose(2, 1, 0)   # (x,y,z) -> (z,y,x)
                out.append(dict(shape=list(a.shape), values=a.astype(int).ravel().tolist()))
            print(json.dumps(out))
            """
            let files = dataset.subjects.flatMap(\.imageFiles)
            let read = try XCTUnwrap(PythonOracle.json(script, arguments: files) as? [[String: Any]])
            for (subject, image) in zip(subjects, read) {
                XCTAssertEqual(image["shape"] as? [Int], dimensions == 2 ? [16, 16] : [8, 16, 16])
                XCTAssertEqual(image["values"] as? [Int], subject.pixels.map(Int.init))
            }
            let again = try Scratch()
            let csv2 = try SyntheticClassificationDataset.generate(into: again.root, options: options)
            XCTAssertEqual(FileManager.default.contents(atPath: csv2), FileManager.default.contents(atPath: csv))
            XCTAssertEqual(FileManager.default.contents(atPath: dataset.subjects[3].imageFiles[0]),
                           FileManager.default.contents(atPath: again.root + "/004" + (dimensions == 2 ? ".png" : ".nii.gz")))
        }
    }

    func testStructureMakesBrightPixels() {
        var options = SyntheticClassificationDataset.Options()
        options.subjects = 80
        let subjects = (1...80).map { SyntheticClassificationDataset.makeSubject(index: $0, options: options) }
        func bright(_ s: SyntheticClassificationDataset.Subject) -> Double { Double(s.pixels.filter { $0 > 140 }.count) }
        let present = subjects.filter(\.present).map(bright), absent = subjects.filter { !$0.present }.map(bright)
        XCTAssertGreaterThan(present.reduce(0, +) / Double(present.count), 2 * absent.reduce(0, +) / Double(absent.count))
    }

    func testOptionsAreChecked() {
        var options = SyntheticClassificationDataset.Options()
        options.dimensions = 4
        XCTAssertThrowsError(try SyntheticClassificationDataset.validate(options))
        options = .init(); options.size = 8
        XCTAssertThrowsError(try SyntheticClassificationDataset.validate(options))
        options = .init(); options.labelNoise = 0.9
        XCTAssertThrowsError(try SyntheticClassificationDataset.validate(options))
    }
}

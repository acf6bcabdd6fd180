import Foundation
import XCTest
import IETestSupport
@testable import IEReport

/// The ROC / PR figure: its data blocks hold scikit-learn's curves (checked against roc_curve and
/// precision_recall_curve), and gnuplot draws a PNG that Pillow opens at the requested size.
final class ScalarPlotsTests: XCTestCase {
    func testCurveDataAndFigure() throws {
        let labels = [true, false, true, true, false, false, true, false]
        let scores = [0.9, 0.8, 0.8, 0.6, 0.5, 0.3, 0.3, 0.1]
        let data = Plots.rocAndPRData([Plots.ScoredSet(name: "Val", labels: labels, scores: scores),
                                       Plots.ScoredSet(name: "Test", labels: [true, true], scores: [0.2, 0.4])])
        let script = """
        import json, sys
        from sklearn.metrics import roc_curve, precision_recall_curve
        y = [1, 0, 1, 1, 0, 0, 1, 0]; s = [0.9, 0.8, 0.8, 0.6, 0.5, 0.3, 0.3, 0.1]
        f, t, _ = roc_curve(y, s); p, r, _ = precision_recall_curve(y, s)
        print(json.dumps(dict(roc=[[a, b] for a, b in zip(f.tolist(), t.tolist())], pr=[[a, b] for a, b in zip(r.tolist(), p.tolist())])))
        """
        let reference = try XCTUnwrap(PythonOracle.json(script) as? [String: [[Double]]])
        func firstBlock(_ text: String) -> [[Double]] {
            text.components(separatedBy: "\n\n\n")[0].split(separator: "\n").map { $0.split(separator: " ").compactMap { Double($0) } }
        }
        for (ours, theirs) in [(firstBlock(data.roc), reference["roc"] ?? []), (firstBlock(data.pr), reference["pr"] ?? [])] {
            XCTAssertEqual(ours.count, theirs.count)
            for (a, b) in zip(ours, theirs) {
                XCTAssertEqual(a[0], b[0], accuracy: 1e-12); XCTAssertEqual(a[1], b[1], accuracy: 1e-12)
            }
        }
        XCTAssertTrue(data.rocTitles[1].contains("one class only"))
        let png = try Plots.rocAndPRCurves([Plots.ScoredSet(name: "Val", labels: labels, scores: scores)], title: "HelloClassification")
        let folder = NSTemporaryDirectory() + "scalar-plots-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try png.write(to: URL(fileURLWithPath: folder + "/roc.png"))
        let size = try PythonOracle.run("import sys; from PIL import Image; print(*Image.open(sys.argv[1]).size)", arguments: [folder + "/roc.png"])
        XCTAssertEqual(size.trimmingCharacters(in: .whitespacesAndNewlines), "1100 560")
    }
}

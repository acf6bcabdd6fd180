import Foundation
import IECore
import IEImage
import IETestSupport
import XCTest
@testable import IEReport

/// The classification report: executed by Jupyter, its cells recompute the metrics and best/worst tables with
/// scikit-learn from model_outputs.csv exactly as saved, and redraw the curves; the HTML holds the sections.
final class ScalarReportTests: ScratchFolderTestCase {
    /// model_outputs.csv rows with scores tied in places and both classes present.
    func outputsCSV(subjects: Int, seed: UInt64, mode: String) -> String {
        var random = SplitMix64(seed: seed)
        var text = "prediction_target,epoch,subject,model_output,label,cross_validation_split_index,data_split\n"
        for s in 0..<subjects {
            let label = s % 3 == 0 ? 0 : 1
            let score = (Double(random.next() % 20) / 20 * 0.7 + (label == 1 ? 0.3 : 0)).rounded(toPlaces: 2)
            text += "Default,2,\(mode)\(s),\(score),\(label),-1,\(mode)\n"
        }
        return text
    }

    func testNotebookRecomputesTablesAndHTMLHasTheSections() throws {
        let outputs = "\(root)/run/outputs"
        try write(outputsCSV(subjects: 23, seed: 3, mode: "v"), "\(outputs)/epoch_002/Val/model_outputs.csv")
        try write(outputsCSV(subjects: 31, seed: 4, mode: "t"), "\(outputs)/epoch_002/Test/model_outputs.csv")
        try write("prediction_target,AreaUnderRocCurve\nDefault,0.5\n", "\(outputs)/epoch_002/Test/metrics.csv")
        let epochs = "epoch,loss,learning_rate,AreaUnderRocCurve,seconds,cross_validation_split_index\n1,0.7,1e-3,0.6,1,-1\n2,0.5,1e-3,0.8,1,-1\n"
        try write(epochs, "\(outputs)/Train/epoch_metrics.csv")
        try write(epochs, "\(outputs)/Val/epoch_metrics.csv")
        var dataset = "subject,channel,filePath,label\n"
        for s in 0..<31 {
            let file = "\(root)/images/t\(s).png"
            try FileManager.default.createDirectory(atPath: "\(root)/images", withIntermediateDirectories: true)
            try PNG.write(pixels: (0..<64).map { UInt8(($0 * 4 + s) % 256) }, width: 8, height: 8, format: .grey, to: file)
            dataset += "t\(s),image,\(file),1\n"
        }
        try write(dataset, "\(outputs)/dataset.csv")
        try write("{\"id\": \"run\", \"model\": \"HelloClassification\", \"status\": \"completed\"}", "\(root)/run/run.json")
        XCTAssertTrue(ScalarReport.isScalarRun(outputs: outputs))
        let result = try RunReport.write(run: "\(root)/run")
        XCTAssertEqual(result.epoch, 2)
        let html = try String(contentsOfFile: result.htmlPath, encoding: .utf8)
        for section in ["Classification metrics", "ROC and precision-recall curves", "Best and worst Test subjects",
                        "Best true positives: t", "Area under ROC Curve"] {
            XCTAssertTrue(html.contains(section), "report.html lacks \(section)")
        }
        let comparison = try NotebookExecution.executeAndCompare(notebook: result.notebookPath)
        XCTAssertEqual(comparison.problems, [])
        // Tables: run.json, the metrics, best and worst. Plots: loss, learning rate, AUC per epoch, ROC/PR, thumbnails.
        XCTAssertEqual(comparison.tables, 3)
        XCTAssertGreaterThanOrEqual(comparison.plots, 4 + 4)
    }
}

private extension Double {
    func rounded(toPlaces places: Int) -> Double { (self * pow(10, Double(places))).rounded() / pow(10, Double(places)) }
}

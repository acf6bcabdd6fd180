import Foundation
import IECore
import IEEval
import XCTest
@testable import IEReport

final class StatsReportTests: ScratchFolderTestCase {

    static let structures = ["bladder", "prostate", "rectum"]

    /// metrics.csv for `subjects` subjects with Dice = base + 0.01 * subject.
    func metricsCSV(subjects: Int, base: Double) -> String {
        var s = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n"
        for structure in Self.structures {
            for p in 1...subjects {
                s += "\(p),\(structure),\(String(format: "%.3f", base + 0.01 * Double(p))),\(String(format: "%.3f", 2.0 + Double(p))),1.250\n"
            }
        }
        return s
    }

    func datasetCSV(subjects: Int) -> String {
        var s = "subject,filePath,channel,seriesId,institutionId\n"
        for p in 1...subjects {
            for channel in ["ct"] + Self.structures { s += "\(p),\(p)/\(channel).nii.gz,\(channel),series\(p),inst\(p % 2)\n" }
        }
        return s
    }

    /// A fake single run: epoch_metrics.csv for 3 epochs (best validation Dice at epoch 2), epoch_002 with
    /// Test and (optionally) Val metrics, and epoch_003 with Test only.
    func makeRun(_ name: String, withVal: Bool = true) throws -> String {
        let outputs = "\(root)/\(name)/outputs"
        let header = "epoch,loss,learning_rate,Dice/AverageAcrossStructures,Dice/bladder,seconds,cross_validation_split_index\n"
        try write(header + "1,0.9,0.001,0.2,0.2,10,-1\n2,0.7,0.0009,0.4,0.4,10,-1\n3,0.6,0.0008,0.5,0.5,10,-1\n",
                  "\(outputs)/Train/epoch_metrics.csv")
        if withVal {
            try write(header + "1,0.95,0.001,0.15,0.15,3,-1\n2,0.8,0.0009,0.45,0.45,3,-1\n3,0.85,0.0008,0.40,0.40,3,-1\n",
                      "\(outputs)/Val/epoch_metrics.csv")
            try write(metricsCSV(subjects: 4, base: 0.6), "\(outputs)/epoch_002/Val/metrics.csv")
        }
        try write(metricsCSV(subjects: 6, base: 0.7), "\(outputs)/epoch_002/Test/metrics.csv")
        try write(metricsCSV(subjects: 6, base: 0.72), "\(outputs)/epoch_003/Test/metrics.csv")
        try write(datasetCSV(subjects: 6), "\(outputs)/dataset.csv")
        try write("{\"id\": \"\(name)\", \"model\": \"Fake\", \"status\": \"completed\"}", "\(root)/\(name)/run.json")
        return "\(root)/\(name)"
    }

    func validateNotebook(_ path: String) throws {
        // Always: the JSON parses and has nbformat 4's top-level shape (nbformat's schema check follows).
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
        XCTAssertEqual(json?["nbformat"] as? Int, 4)
        let cells = json?["cells"] as? [[String: Any]] ?? []
        XCTAssertFalse(cells.isEmpty)
        XCTAssertTrue(cells.allSatisfy { ["markdown", "code"].contains($0["cell_type"] as? String ?? "") })
        let out = try pythonReference("""
            import nbformat
            nb = nbformat.read(\(jsonString(path)), as_version=4)
            nbformat.validate(nb)
            print(len(nb.cells), sum(1 for c in nb.cells for o in c.get('outputs', []) if 'image/png' in o.get('data', {})))
            """)
        let counts = numbers(out)
        XCTAssertGreaterThan(counts[0], 5)
        XCTAssertGreaterThanOrEqual(counts[1], 2, "pre-rendered PNG outputs")
    }

    func testBestValidationEpochIsChosen() throws {
        let run = try makeRun("runA")
        // Validation Dice peaks at epoch 2 (0.45), although epoch 3 also has a folder.
        XCTAssertEqual(EpochChoice.bestEpoch(RunLayout.locate(run).outputs), 2)
    }

    func testReportHasSectionsAndValidNotebook() throws {
        let run = try makeRun("runA")
        let result = try RunReport.write(run: run)
        XCTAssertEqual(result.epoch, 2)
        XCTAssertEqual(result.notebookPath, "\(run)/outputs/report.ipynb")
        let html = try String(contentsOfFile: result.htmlPath, encoding: .utf8)
        for section in ["Training curves", "Test results", "Val results", "Test: Dice per structure (sorted by mean)",
                        "Test: 20 worst by Dice", "is_outlier", "Test: HausdorffDistance_mm box plot",
                        "Learning rate per epoch", "epoch_002", "data:image/png;base64,"] {
            XCTAssertTrue(html.contains(section), "missing \(section)")
        }
        XCTAssertFalse(html.contains("No Val results"))
        try validateNotebook(result.notebookPath)
    }

    func testDescribeTableValues() throws {
        let run = try makeRun("runA")
        let (doc, _, _) = try RunReport.build(outputs: "\(run)/outputs", runName: "runA")
        // Test Dice of bladder: 0.71 ... 0.76; numpy: mean 0.735, std 0.018708, percentiles 0.7225 / 0.735 / 0.7475
        // (printed by numpy with %.3f as 0.722 and 0.748: the binary values lie just below and above).
        let table = doc.blocks.compactMap { block -> [[String]]? in
            if case .table(let caption, _, let rows, _) = block, caption == "Test: Dice per structure (sorted by mean)" { return rows }
            return nil
        }.first
        XCTAssertEqual(table?.first, ["bladder", "6", "0.735", "0.019", "0.710", "0.722", "0.735", "0.748", "0.760"])
    }

    func testMissingValIsReported() throws {
        let run = try makeRun("runB", withVal: false)
        let result = try RunReport.write(run: run)
        // Without Val/epoch_metrics.csv the highest epoch folder is used.
        XCTAssertEqual(result.epoch, 3)
        XCTAssertTrue(result.missing.contains("Val/metrics.csv"))
        XCTAssertTrue(result.missing.contains("Val/epoch_metrics.csv"))
        let html = try String(contentsOfFile: result.htmlPath, encoding: .utf8)
        XCTAssertTrue(html.contains("No Val results: epoch_003/Val/metrics.csv is missing."))
        XCTAssertTrue(html.contains("Test results"))
        try validateNotebook(result.notebookPath)
    }

    func testDeterministicExceptTimestamp() throws {
        let run = try makeRun("runA")
        let first = try RunReport.write(run: run, now: Date(timeIntervalSince1970: 1_700_000_000))
        let notebook1 = try Data(contentsOf: URL(fileURLWithPath: first.notebookPath))
        let html1 = try String(contentsOfFile: first.htmlPath, encoding: .utf8)
        let second = try RunReport.write(run: run, now: Date(timeIntervalSince1970: 1_800_000_000))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: second.notebookPath)), notebook1)
        let html2 = try String(contentsOfFile: second.htmlPath, encoding: .utf8)
        XCTAssertNotEqual(html1, html2)
        let differing = zip(html1.split(separator: "\n"), html2.split(separator: "\n")).filter { $0 != $1 }
        XCTAssertEqual(differing.count, 1)
        XCTAssertTrue(differing.first?.0.contains("Generated 2023-11-14T22:13:20Z") ?? false)
    }

    func testCrossValidationParent() throws {
        let parent = "\(root)/parent/outputs"
        try write(datasetCSV(subjects: 6), "\(parent)/dataset.csv")
        for (k, base) in [("0", 0.6), ("1", 0.65), ("ENSEMBLE", 0.7)] {
            try write(metricsCSV(subjects: 6, base: base), "\(parent)/CrossValResults/\(k)/epoch_005/Test/metrics.csv")
        }
        let result = try RunReport.write(run: "\(root)/parent")
        XCTAssertNil(result.epoch)
        let html = try String(contentsOfFile: result.htmlPath, encoding: .utf8)
        XCTAssertTrue(html.contains("Cross-validation: folds and ensemble"))
        XCTAssertTrue(html.contains("Test: mean Dice (%) per fold and ensemble"))
        XCTAssertTrue(html.contains("Dice_Test_Splits.png"))
        // bladder mean Dice x 100 of fold 0: 60 + mean(1..6) = 63.5.
        XCTAssertTrue(html.contains("<tr><td class=\"t\">bladder</td><td>63.500</td><td>68.500</td><td>73.500</td></tr>"))
        try validateNotebook(result.notebookPath)
    }

    func testStructureGroupsOfAtMostSeven() {
        let names = (1...9).map { "s\($0)" }
        // InnerEye's split_by_structures: 2 plots of 9/2 = 4.5 -> ends int(0.5 + 4.5) = 5 and int(0.5 + 9) = 9.
        XCTAssertEqual(Plots.structureGroups(names).map { $0.count }, [5, 4])
        XCTAssertEqual(Plots.structureGroups((1...15).map { "s\($0)" }).map { $0.count }, [5, 5, 5])
        XCTAssertEqual(Plots.structureGroups((1...7).map { "s\($0)" }).map { $0.count }, [7])
    }

    func testBaselineComparison() throws {
        let current = try makeRun("current")
        let baseline = try makeRun("baseline")
        // Baseline epoch_002 Test Dice 0.60 + 0.01 p on 6 subjects; current 0.70 + 0.01 p: current higher on all
        // 6 pairs of each structure: W = 21, z = 21 / sqrt(91) = 2.2014, p = Phi(2.2014 / 1.25) = 0.9609: no verdict.
        try write(metricsCSV(subjects: 6, base: 0.6), "\(baseline)/outputs/epoch_002/Test/metrics.csv")
        let result = try BaselineComparison.run(outputs: "\(current)/outputs", epoch: 2,
                                                baselines: [.init(name: "BASE", run: baseline)])
        let text = try String(contentsOfFile: result.wilcoxonPath, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines[0], "Run 1: BASE")
        XCTAssertEqual(lines[1], "Run 2: CURRENT")
        XCTAssertEqual(lines[3], "bladder    6  63.500  73.500    0    6  63.500  73.500  2.201 0.961 ")
        XCTAssertEqual(result.wilcoxonPath, "\(current)/outputs/epoch_002/Test/BaselineComparisonWilcoxonSignedRankTestResults.txt")
        XCTAssertEqual(result.scatterplotPaths, ["\(current)/outputs/epoch_002/Test/scatterplots/BASE_vs_CURRENT.png"])
        let png = try Data(contentsOf: URL(fileURLWithPath: result.scatterplotPaths[0]))
        XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47])
        XCTAssertEqual(result.copiedMetricsPaths, ["\(current)/outputs/BASE/epoch_002/Test/metrics.csv"])
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: result.copiedMetricsPaths[0])),
                       try Data(contentsOf: URL(fileURLWithPath: "\(baseline)/outputs/epoch_002/Test/metrics.csv")))
        let across = try String(contentsOfFile: result.metricsAcrossAllRunsPath, encoding: .utf8)
        XCTAssertTrue(across.hasPrefix(",Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,seriesId,institutionId,split,mode\n0,1,bladder,71.0,3.0,1.25,series1,inst1,CURRENT,Test\n4,2,bladder,72.0,"), across)
        // The report picks the comparison up.
        let html = try String(contentsOfFile: try RunReport.write(run: current).htmlPath, encoding: .utf8)
        XCTAssertTrue(html.contains("Comparison with baselines"))
        XCTAssertTrue(html.contains("scatterplots/BASE_vs_CURRENT.png"))
    }

    func testMetricsBoxPlotHasDiceAndHausdorffPanels() throws {
        let records = try MetricsFile.parse(text: metricsCSV(subjects: 6, base: 0.6)).records
        let png = try RunEvaluation.boxPlot(records, structures: Self.structures, mode: "Test", epoch: 2)
        let path = "\(root)/metrics_boxplot.png"
        try png.write(to: URL(fileURLWithPath: path))
        // Read back by PIL: two 600-pixel panels stacked, each with drawing in it (pixels neither white nor black).
        let out = try pythonReference("""
            from PIL import Image
            image = Image.open(\(jsonString(path))).convert('RGB')
            w, h = image.size
            def coloured(top):
                return sum(1 for y in range(top, top + h // 2, 2) for x in range(0, w, 2)
                           if len(set(image.getpixel((x, y)))) > 1)
            print(w, h, coloured(0), coloured(h // 2))
            """)
        let v = numbers(out)
        XCTAssertEqual(Array(v.prefix(2)), [1100, 1200])
        XCTAssertGreaterThan(v[2], 100, "Dice panel has coloured boxes")
        XCTAssertGreaterThan(v[3], 100, "HausdorffDistance_mm panel has coloured boxes")
    }

    func testMissingGnuplotIsAClearError() throws {
        let savedPath = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let savedExplicit = ProcessInfo.processInfo.environment["IE_GNUPLOT"]
        setenv("PATH", root, 1)
        unsetenv("IE_GNUPLOT")
        defer {
            setenv("PATH", savedPath, 1)
            if let savedExplicit { setenv("IE_GNUPLOT", savedExplicit, 1) }
        }
        XCTAssertThrowsError(try Plots.trainingCurve(train: [(1, 1)], val: [], title: "t", yLabel: "y")) { error in
            XCTAssertTrue("\(error)".contains("gnuplot not found"), "\(error)")
        }
    }
}

final class StatsReportCrossValidationTests: XCTestCase {
    func testInnerEyeTrainEnsembleFilesAreReproduced() throws {
        // Copy InnerEye's PR_TrainEnsemble CrossValResults inputs (folds 0, 1, ENSEMBLE; one Test subject).
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("ie-cv-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        for k in ["0", "1", "ENSEMBLE"] {
            let data = try Data(contentsOf: URL(fileURLWithPath: StatsFixtures.path("PR_TrainEnsemble/\(k)/Test/metrics.csv")))
            try AtomicFile.write(data, to: "\(root)/\(k)/Test/metrics.csv")
        }
        let result = try CrossValidationResults.write(crossValResults: root,
                                                      dataset: StatsFixtures.path("PR_TrainEnsemble/dataset_subject5.csv"),
                                                      drawPlots: false)
        XCTAssertEqual(result.writtenFiles.map { ($0 as NSString).lastPathComponent },
                       ["MetricsAcrossAllRuns.csv", "ResultsByModeAndStructure.csv", "ResultsByMode.csv", "Test_outliers.txt",
                        "CrossValidationWilcoxonSignedRankTestResults.txt", "CrossValidationMannWhitneyTestResults.txt"])
        XCTAssertEqual(try String(contentsOfFile: "\(root)/Test_outliers.txt", encoding: .utf8),
                       try StatsFixtures.text("PR_TrainEnsemble_Test_outliers.txt"))
        // InnerEye's files hold the message without a newline; the stored copies have one appended.
        XCTAssertEqual(try String(contentsOfFile: "\(root)/CrossValidationWilcoxonSignedRankTestResults.txt", encoding: .utf8) + "\n",
                       try StatsFixtures.text("CrossValidationWilcoxonSignedRankTestResults.txt"))
        XCTAssertEqual(try String(contentsOfFile: "\(root)/CrossValidationMannWhitneyTestResults.txt", encoding: .utf8),
                       WilcoxonComparison.notEnoughData)
        let across = try String(contentsOfFile: "\(root)/MetricsAcrossAllRuns.csv", encoding: .utf8)
        XCTAssertEqual(across.split(separator: "\n").count, 10)
        XCTAssertTrue(across.contains("5,spinalcord,0.0,169.77,108.318,402ba5d42f37357f18f29af17b0846cbca4c430fea5b15a6baad5ec29dd6c9ba,b7f757fb-12e0-489e-a6da-f64895cdd229,1,Test"))
    }
}

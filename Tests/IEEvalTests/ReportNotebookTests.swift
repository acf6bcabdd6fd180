import Foundation
import IECore
import IEEval
import IETestSupport
import XCTest
@testable import IEReport

/// report.ipynb executed by Jupyter (pandas, matplotlib) from the run's CSV files recomputes the tables it was
/// saved with, cell by cell (SPEC §11).
final class ReportNotebookTests: ScratchFolderTestCase {

    static let structures = ["bladder", "femur_l", "prostate", "rectum"]

    /// A metrics.csv in random row order: Dice with ties and empty fields, distances with inf where Dice is 0,
    /// a structure with no ground truth (all empty), subjects 1...n (text order differs from numeric order).
    func randomMetricsCSV(subjects: Int, seed: UInt64, base: Double = 0) -> String {
        var random = SplitMix64(seed: seed)
        func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        var rows: [String] = []
        for structure in Self.structures + ["zz_missing"] {
            for p in 1...subjects {
                if structure == "zz_missing" { rows.append("\(p),\(structure),,,"); continue }
                let u = uniform()
                let dice: String, hd: String, md: String
                if u < 0.08 {
                    (dice, hd, md) = ("", "", "")
                } else if u < 0.16 {
                    (dice, hd, md) = ("0.000", "inf", "inf")
                } else {
                    // femur_l takes few distinct values, so sorting by value leaves ties broken by patient.
                    let d = structure == "femur_l" ? 0.5 + 0.1 * Double(Int(uniform() * 4)) : min(1, base + uniform())
                    dice = String(format: "%.3f", d)
                    hd = String(format: "%.3f", 60 * uniform() * uniform())
                    md = String(format: "%.3f", 5 * uniform())
                }
                rows.append("\(p),\(structure),\(dice),\(hd),\(md)")
            }
        }
        for i in stride(from: rows.count - 1, to: 0, by: -1) { rows.swapAt(i, Int(random.next() % UInt64(i + 1))) }
        return "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n" + rows.joined(separator: "\n") + "\n"
    }

    func datasetCSV(subjects: Int) -> String {
        var s = "subject,filePath,channel,seriesId,institutionId\n"
        for p in 1...subjects {
            for channel in ["ct"] + Self.structures { s += "\(p),\(p)/\(channel).nii.gz,\(channel),series\(p),inst\(p % 2)\n" }
        }
        return s
    }

    /// A run with Train/Val curves, epoch_002 Val and Test metrics (27 subjects, so numpy's eight-way pairwise
    /// sums are exercised) and run.json.
    func makeRun(_ name: String, seed: UInt64) throws -> String {
        let outputs = "\(root)/\(name)/outputs"
        let header = "epoch,loss,learning_rate,Dice/AverageAcrossStructures,seconds,cross_validation_split_index\n"
        try write(header + "1,0.9,0.001,0.2,10,-1\n2,0.7,0.0009,0.4,10,-1\n3,,0.0008,0.5,10,-1\n",
                  "\(outputs)/Train/epoch_metrics.csv")
        try write(header + "1,0.95,0.001,0.15,3,-1\n2,0.8,0.0009,0.45,3,-1\n3,0.85,0.0008,0.40,3,-1\n",
                  "\(outputs)/Val/epoch_metrics.csv")
        try write(randomMetricsCSV(subjects: 11, seed: seed), "\(outputs)/epoch_002/Val/metrics.csv")
        try write(randomMetricsCSV(subjects: 27, seed: seed + 1), "\(outputs)/epoch_002/Test/metrics.csv")
        try write(datasetCSV(subjects: 27), "\(outputs)/dataset.csv")
        try write("{\"id\": \"\(name)\", \"model\": \"Fake\", \"status\": \"completed\", \"parent\": null, \"epochs\": 3}",
                  "\(root)/\(name)/run.json")
        return "\(root)/\(name)"
    }

    func assertRecomputes(_ notebook: String, tables: Int, texts: Int, plots: Int,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let result = try NotebookExecution.executeAndCompare(notebook: notebook)
        XCTAssertEqual(result.problems, [], file: file, line: line)
        XCTAssertEqual(result.tables, tables, "tables recomputed", file: file, line: line)
        XCTAssertEqual(result.texts, texts, "texts printed again", file: file, line: line)
        XCTAssertEqual(result.plots, plots, "plots drawn again", file: file, line: line)
    }

    func testSingleRunNotebookRecomputesItsTables() throws {
        let run = try makeRun("current", seed: 11)
        let baseline = try makeRun("baseline", seed: 21)
        _ = try BaselineComparison.run(outputs: "\(run)/outputs", epoch: 2, baselines: [.init(name: "BASE", run: baseline)])
        // Written outside the outputs folder: the notebook reaches the run by a relative path.
        let result = try RunReport.write(run: run, outputFolder: "\(root)/elsewhere")
        let notebook = try String(contentsOfFile: result.notebookPath, encoding: .utf8)
        XCTAssertTrue(notebook.contains("OUTPUTS = Path(\\\"../current/outputs\\\")"))
        // Tables: run.json, then per mode (Val, Test) describe + worst for 3 metrics. Texts: the setup line and
        // the Wilcoxon file. Plots: 3 training curves, 2 box plots per mode, the scatterplot.
        try assertRecomputes(result.notebookPath, tables: 1 + 2 * 6, texts: 2, plots: 3 + 2 * 2 + 1)
    }

    func testCrossValidationNotebooksRecomputeTheirTables() throws {
        // A parent with CrossValResults/MetricsAcrossAllRuns.csv and its text files, as ie-crossval leaves it.
        let parent = "\(root)/parent/outputs"
        try write(datasetCSV(subjects: 27), "\(parent)/dataset.csv")
        for (k, seed) in [("0", 1), ("1", 2), ("ENSEMBLE", 3)] as [(String, UInt64)] {
            try write(randomMetricsCSV(subjects: 27, seed: seed, base: 0.2), "\(parent)/CrossValResults/\(k)/epoch_004/Test/metrics.csv")
            try write(randomMetricsCSV(subjects: 9, seed: seed + 10), "\(parent)/CrossValResults/\(k)/epoch_004/Val/metrics.csv")
        }
        _ = try CrossValidationResults.write(crossValResults: "\(parent)/CrossValResults", dataset: "\(parent)/dataset.csv")
        let result = try RunReport.write(run: "\(root)/parent")
        // Tables: mean Dice per fold for Test and Val. Texts: setup, Wilcoxon, Mann-Whitney, 2 outlier files.
        // Plots: Dice and Hausdorff box plots per mode.
        try assertRecomputes(result.notebookPath, tables: 2, texts: 5, plots: 4)
    }

    func testCommentOnlyCellFailsTheComparison() throws {
        // A parent with fold metrics only (no MetricsAcrossAllRuns.csv): the notebook reads each fold's metrics.csv.
        let parent = "\(root)/folds/outputs"
        try write(datasetCSV(subjects: 27), "\(parent)/dataset.csv")
        for (k, seed) in [("0", 4), ("1", 5)] as [(String, UInt64)] {
            try write(randomMetricsCSV(subjects: 27, seed: seed), "\(parent)/CrossValResults/\(k)/epoch_003/Test/metrics.csv")
        }
        let result = try RunReport.write(run: "\(root)/folds")
        // The fold table's cell reduced to its comment line, as report.ipynb was before it recomputed itself.
        let script = """
            import json, sys
            nb = json.load(open(sys.argv[1]))
            cell = next(c for c in nb['cells'] if c['cell_type'] == 'code' and '\\nfold_table(' in ''.join(c['source']))
            cell['source'] = [cell['source'][0].rstrip('\\n')]
            json.dump(nb, open(sys.argv[1], 'w'))
            print(cell['source'][0])
            """
        let caption = try PythonOracle.run(script, arguments: [result.notebookPath]).trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(caption, "# Test: mean Dice (%) per fold and ensemble")
        let comparison = try NotebookExecution.executeAndCompare(notebook: result.notebookPath)
        let cellProblems = comparison.problems.filter { $0.contains("(\(caption))") }
        XCTAssertEqual(comparison.problems.count, cellProblems.count, "\(comparison.problems)")
        XCTAssertTrue(cellProblems.contains { $0.hasSuffix("no python beyond comments") }, "\(cellProblems)")
        XCTAssertTrue(cellProblems.contains { $0.hasSuffix("no outputs after execution") }, "\(cellProblems)")
        // The other cells recompute: setup line, the Dice and Hausdorff box plots.
        XCTAssertEqual([comparison.tables, comparison.texts, comparison.plots], [0, 1, 2])
    }
}

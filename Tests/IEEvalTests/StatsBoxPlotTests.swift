import Foundation
import IETestSupport
import XCTest
@testable import IEEval
@testable import IEReport

/// Cross-validation box plots with more than 7 structures (InnerEye's ML/visualizers/plot_cross_validation.py,
/// MAX_STRUCTURES_PER_PLOT = 7): the structures spread evenly over the plots and every file suffixed.
final class StatsBoxPlotTests: XCTestCase {
    func testPartitionMatchesInnerEyesSplitByStructuresForUpTo40Structures() throws {
        // Names in an order that sorts differently by case and code point.
        let pool = ["lens_l", "Brainstem", "external", "spinal_cord", "SPC_muscle", "mpc_muscle", "cochlea_l", "cochlea_r",
                    "globe_l", "globe_r", "lens_r", "mandible", "optic_chiasm", "optic_nerve_l", "optic_nerve_r",
                    "parotid_l", "parotid_r", "pituitary_gland", "smg_l", "smg_r", "lacrimal_gland_l", "lacrimal_gland_r",
                    "z1", "Z2", "a10", "a9", "_x", "élan", "zz", "A", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]
        let cases = (1...pool.count).map { Array(pool.prefix($0)) }
        let reference = try XCTUnwrap(try PythonOracle.json("""
            import sys, json
            MAX_STRUCTURES_PER_PLOT = 7
            def split_by_structures(names):
                names = sorted(set(names))
                n_structures = len(names)
                n_plots = int((n_structures + MAX_STRUCTURES_PER_PLOT - 1) / MAX_STRUCTURES_PER_PLOT)
                if n_plots <= 1:
                    return [names]
                n_per_plot = n_structures / n_plots
                out = []; start = 0
                for idx in range(n_plots):
                    end = int(0.5 + (idx + 1) * n_per_plot)
                    out.append(names[start:end]); start = end
                return out
            print(json.dumps([split_by_structures(c) for c in json.load(sys.stdin)]))
            """, input: JSONSerialization.data(withJSONObject: cases)) as? [[[String]]])
        XCTAssertEqual(reference.count, cases.count)
        for (names, expected) in zip(cases, reference) {
            XCTAssertEqual(Plots.structureGroups(names), expected, "\(names.count) structures")
        }
        // Hand-worked: 22 structures (HeadAndNeckPaper) -> 4 plots of 5.5 -> ends 6, 11, 17, 22.
        XCTAssertEqual(Plots.structureGroups(Array(pool.prefix(22))).map(\.count), [6, 5, 6, 5])
    }

    func testFileNamesKeepTheSeedsNameForOnePlotAndSuffixEveryPlotOtherwise() throws {
        func records(_ structures: Int) -> [MetricsRecord] {
            var out: [MetricsRecord] = []
            for split in ["0", "1"] {
                for s in 0..<structures {
                    for p in 0..<3 {
                        out.append(MetricsRecord(patient: "\(p)", structure: "s\(s)", dice: Double(60 + s + p),
                                                 hausdorffDistance: Double(2 + p), split: split, mode: "Test"))
                    }
                }
            }
            return out
        }
        XCTAssertEqual(try Plots.crossValidationBoxPlots(records(7)).map(\.name),
                       ["Dice_Test_Splits.png", "HausdorffDistance_mm_Test_splits.png"])
        XCTAssertEqual(try Plots.crossValidationBoxPlots(records(9)).map(\.name),
                       ["Dice_Test_Splits_1.png", "Dice_Test_Splits_2.png",
                        "HausdorffDistance_mm_Test_splits_1.png", "HausdorffDistance_mm_Test_splits_2.png"])
    }
}

/// A model that found nothing (every Dice empty, every distance inf) or a training whose losses are all NaN is a
/// result to show, not a gnuplot failure ("all points y value undefined"): the panel is drawn empty.
final class EmptyPlotTests: XCTestCase {
    func isPNG(_ data: Data) -> Bool { data.prefix(8) == Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) }

    func testABoxPlotWithoutAFiniteValueIsAnEmptyPanel() throws {
        let png = try Plots.boxPlot(categories: ["liver", "spleen"], series: ["Test"], values: { _, _ in [.nan, .infinity] },
                                    title: "Dice", yLabel: "Dice")
        XCTAssertTrue(isPNG(png))
        XCTAssertTrue(isPNG(try Plots.boxPlot(categories: [], series: [], values: { _, _ in [] }, title: "none", yLabel: "Dice")))
    }

    func testATrainingCurveWithoutAFiniteValueIsAnEmptyPanel() throws {
        let nan = [(1.0, Double.nan), (2.0, Double.nan)]
        XCTAssertTrue(isPNG(try Plots.trainingCurve(train: nan, val: [], title: "loss", yLabel: "loss")))
        XCTAssertTrue(isPNG(try Plots.trainingCurve(train: nan, val: [(1.0, 0)], title: "loss", yLabel: "loss", logScale: true)))
    }
}

import Foundation
import IECore
import IETestSupport
import XCTest
@testable import IEEval

/// metrics_aggregates.csv and the results breakdown print pandas' `%.3f` of groupby().describe(): pandas' mean and
/// std sum the whole group with NaN as 0 (numpy's pairwise sum) in the data frame's row order, which decides the
/// last digit where a value lies half-way. Compared with pandas run InnerEye's way on random files whose values
/// have 3 decimals (many half-way means), NaN rows inside the groups and patients 1...24 (string order differs
/// from numeric order from 10 on).
final class StatsPandasOrderTests: XCTestCase {
    var random = SplitMix64(seed: 20_240_611)

    func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
    func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }

    /// A metrics field: sometimes empty, inf (distances), a value with 3 decimals, or one with more.
    func field(dice: Bool) -> String {
        let u = uniform()
        if u < 0.08 { return "" }
        if !dice && u < 0.14 { return "inf" }
        let scale = dice ? 1.0 : 20.0
        if uniform() < 0.75 {
            // Dice near 0.8 repeats values, so many groups have means on a half-way point.
            let v = dice && uniform() < 0.5 ? Double(795 + below(15)) / 1000 : uniform() * scale
            return String(format: "%.3f", v)
        }
        return String(uniform() * scale)
    }

    func testAggregatesMatchInnerEyesPandasFrame() throws {
        try assertAggregatesMatchPandas(totalPatients: false)
    }

    /// allow_incomplete_labels: InnerEye adds `total_patients` (distinct patients of the whole file, an integer)
    /// after `count`; the random files lack structures for some patients, so count and total_patients differ.
    func testAggregatesWithIncompleteLabelsHaveInnerEyesTotalPatientsColumn() throws {
        try assertAggregatesMatchPandas(totalPatients: true)
    }

    func assertAggregatesMatchPandas(totalPatients: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        var files: [String] = []
        for _ in 0..<150 {
            let structures = ["liver", "lung_l", "Lung", "b", "a_b", "skin"].shuffled(using: &random).prefix(1 + below(3))
            var text = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n"
            var rows = 0
            // Rows in file order patient by patient: InnerEye's frame is sorted by Patient as a string.
            for patient in 1...(1 + below(24)) {
                for structure in structures where uniform() < 0.9 {
                    let dice = field(dice: true)
                    let rest = dice.isEmpty ? "," : field(dice: false) + "," + field(dice: false)
                    text += "\(patient),\(structure),\(dice),\(rest)\n"
                    rows += 1
                }
            }
            if rows > 0 { files.append(text) }
        }
        let ours = try files.map { MetricsAggregates.csv(try MetricsFile.parse(text: $0).records, totalPatients: totalPatients) }
        // InnerEye's MetricsPerPatientWriter.save_aggregates_to_csv on the writer's format_metric values.
        let reference = try PythonOracle.json("""
            import sys, io, json, pandas as pd
            incomplete = sys.argv[1] == 'True'
            def aggregates(text):
                df = pd.read_csv(io.StringIO(text), dtype={'Patient': str, 'Structure': str})
                for c in ['Dice', 'HausdorffDistance_mm', 'MeanDistance_mm']:
                    df[c] = df[c].map(lambda v: float("{:0.3f}".format(v)))
                df['DiceNumeric'] = df['Dice']
                df = df.sort_values(by=['Patient', 'Structure'])
                agg = df.groupby('Structure').describe()
                def f(col, count=False):
                    d = agg[col][(['count'] if count else []) + ['mean', 'std', 'min', 'max']]
                    if count and incomplete:
                        d['total_patients'] = len(pd.unique(df['Patient']))
                        d = d[['count', 'total_patients', 'mean', 'std', 'min', 'max']]
                    return d.rename(columns={k: f"{col}_{k}" for k in d.columns if k not in ('count', 'total_patients')})
                m = lambda a, b: pd.merge(a, b, left_on='Structure', right_on='Structure')
                out = io.StringIO()
                m(m(f('DiceNumeric', True), f('HausdorffDistance_mm')), f('MeanDistance_mm')).to_csv(out, float_format='%.3f')
                return out.getvalue()
            print(json.dumps([aggregates(t) for t in json.load(sys.stdin)]))
            """, arguments: [totalPatients ? "True" : "False"], input: try JSONSerialization.data(withJSONObject: files))
        let expected = try XCTUnwrap(reference as? [String], file: file, line: line)
        XCTAssertEqual(expected.count, files.count, file: file, line: line)
        if totalPatients { XCTAssertTrue(expected.allSatisfy { $0.hasPrefix("Structure,count,total_patients,DiceNumeric_mean,") }, file: file, line: line) }
        assertSame(ours, expected, label: { "file \($0):\n\(files[$0])" }, file: file, line: line)
    }

    /// Every text of ours equal to pandas'; the first three differences shown (`label` names the case).
    func assertSame(_ ours: [String], _ expected: [String], label: (Int) -> String,
                    file: StaticString = #filePath, line: UInt = #line) {
        var differing = 0
        for (i, (a, b)) in zip(ours, expected).enumerated() where a != b {
            differing += 1
            if differing <= 3 { XCTFail("\(label(i))ours:\n\(a)pandas:\n\(b)", file: file, line: line) }
        }
        XCTAssertEqual(differing, 0, file: file, line: line)
    }

    func testBreakdownMatchesPandasDescribe() throws {
        var files: [String] = []
        for _ in 0..<80 {
            var text = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,split,mode\n"
            for patient in 1...(1 + below(28)) {
                for structure in ["liver", "lung"] {
                    for mode in ["Test", "Val"] {
                        // Dice x 100 with 3 decimals, as MetricsAcrossAllRuns.csv; a few missing.
                        let dice = uniform() < 0.1 ? "" : String(format: "%.3f", uniform() < 0.6
                            ? Double(70_000 + below(30_001)) / 1000 : Double(700 + below(301)) / 10)
                        text += "\(patient),\(structure),\(dice),1.000,1.000,\(below(2)),\(mode)\n"
                    }
                }
            }
            files.append(text)
        }
        var ours: [String] = []
        for text in files {
            let records = try MetricsFile.parse(text: text).records
            ours += [ResultsBreakdown.csv(records, byStructure: true), ResultsBreakdown.csv(records, byStructure: false)]
        }
        // InnerEye's create_results_breakdown.
        let reference = try PythonOracle.json("""
            import sys, io, json, pandas as pd
            out = []
            for text in json.load(sys.stdin):
                df = pd.read_csv(io.StringIO(text))[['mode', 'Structure', 'Dice']]
                for by in (['mode', 'Structure'], ['mode']):
                    s = io.StringIO()
                    df.groupby(by).describe()['Dice'][["mean", "50%", "min", "max"]].to_csv(s, float_format="%.3f")
                    out.append(s.getvalue())
            print(json.dumps(out))
            """, input: try JSONSerialization.data(withJSONObject: files))
        let expected = try XCTUnwrap(reference as? [String])
        XCTAssertEqual(expected.count, ours.count)
        assertSame(ours, expected) { "file \($0 / 2):\n" }
    }
}

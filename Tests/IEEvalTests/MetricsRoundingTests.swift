import Foundation
import IECore
import IETestSupport
import XCTest
@testable import IEEval

/// InnerEye's MetricsPerPatientWriter (ML/utils/metrics_util.py) rounds every metric to 3 decimals
/// (`format_metric`, then `float`) before it sorts metrics.csv and before it computes metrics_aggregates.csv.
/// The oracle re-implements that writer in plain Python from InnerEye's code, not from ours.
final class MetricsRoundingTests: XCTestCase {
    /// InnerEye's writer: `"{:0.3f}".format` then float; rows sorted by (Patient, Structure), then stably by
    /// (Structure, DiceNumeric) with NaN last (pandas lexsort); `to_csv(float_format="%.3f")`; aggregates from
    /// `groupby(Structure).describe()` of the rounded values (sample std, NaN skipped), written `%.3f`.
    static let oracle = """
        import sys, json, math
        import numpy as np
        rows = json.loads(sys.stdin.read())
        fm = lambda v: float("{:0.3f}".format(float(v)))
        recs = [(p, s, fm(d), fm(h), fm(m)) for p, s, d, h, m in rows]
        recs.sort(key=lambda r: (r[0], r[1]))
        recs.sort(key=lambda r: (r[1], math.isnan(r[2]), 0.0 if math.isnan(r[2]) else r[2]))
        f3 = lambda v: '' if math.isnan(v) else ('inf' if v == math.inf else '%.3f' % v)
        out = 'Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\\n'
        for r in recs:
            out += ','.join([r[0], r[1]] + [f3(v) for v in r[2:]]) + '\\n'
        agg = 'Structure,count' + ''.join(',%s_%s' % (m, s) for m in ['DiceNumeric', 'HausdorffDistance_mm', 'MeanDistance_mm']
                                          for s in ['mean', 'std', 'min', 'max']) + '\\n'
        for s in sorted(set(r[1] for r in recs)):
            cols = [np.array([r[i] for r in recs if r[1] == s]) for i in (2, 3, 4)]
            fields = [s, '%.3f' % np.sum(~np.isnan(cols[0]))]
            for c in cols:
                v = c[~np.isnan(c)]
                nan = float('nan')
                mean = float(np.mean(v)) if len(v) else nan
                std = float(np.std(v, ddof=1)) if len(v) > 1 and np.all(np.isfinite(v)) else nan
                fields += [f3(x) for x in [mean, std, float(np.min(v)) if len(v) else nan, float(np.max(v)) if len(v) else nan]]
            agg += ','.join(fields) + '\\n'
        print(json.dumps([out, agg]))
        """

    func testSortAndAggregatesUseRoundedValuesAsInnerEye() throws {
        var rng = MetricsTestRandom(seed: 15)
        // Seven patients per structure (string order differs from numeric order); Dice values within 0.00045 of a
        // multiple of 0.05, so many are tied after rounding but not before; some NaN, some infinite distances.
        let patients = ["10", "2", "1", "33", "3", "21", "7"]
        var rows: [MetricsRow] = []
        for structure in ["spinal_cord", "Brainstem", "lens_l"] {
            for patient in patients {
                let draw = rng.unitDouble()
                let dice = draw < 0.1 ? Double.nan : Double(rng.int(8...20)) / 20 + (rng.unitDouble() - 0.5) * 0.0009
                let hd = dice.isNaN ? Double.nan : (rng.unitDouble() < 0.15 ? .infinity : rng.unitDouble() * 30)
                let md = dice.isNaN ? Double.nan : (hd.isInfinite ? .infinity : Double(rng.int(0...4000)) / 1000 + 0.0004999)
                rows.append(MetricsRow(patient: patient, structure: structure,
                                       metrics: SegmentationMetrics(dice: dice, hausdorffDistanceMM: hd, meanDistanceMM: md)))
            }
        }
        let input = "[" + rows.map { r in
            "[\"\(r.patient)\",\"\(r.structure)\"," + [r.metrics.dice, r.metrics.hausdorffDistanceMM, r.metrics.meanDistanceMM]
                .map { "\"\($0)\"" }.joined(separator: ",") + "]"
        }.joined(separator: ",") + "]"
        let reference = try XCTUnwrap(try PythonOracle.json(Self.oracle, input: Data(input.utf8)) as? [String])
        let metricsCSV = MetricsCSVWriter.text(rows: rows)
        XCTAssertEqual(metricsCSV, reference[0])
        // Aggregates from the written file (the run's path) and from unrounded values (ie-stats on any table).
        XCTAssertEqual(MetricsAggregates.csv(try MetricsFile.parse(text: metricsCSV).records), reference[1])
        let unrounded = rows.map { MetricsRecord(patient: $0.patient, structure: $0.structure, dice: $0.metrics.dice,
                                                 hausdorffDistance: $0.metrics.hausdorffDistanceMM,
                                                 meanDistance: $0.metrics.meanDistanceMM) }
        XCTAssertEqual(MetricsAggregates.csv(unrounded), reference[1])
        // The data must exercise the rule: some rows tie on the rounded Dice but not on the raw one.
        let raw = Dictionary(grouping: rows.filter { !$0.metrics.dice.isNaN }) { "\($0.structure) \(MetricsCSVWriter.rounded($0.metrics.dice))" }
        XCTAssertTrue(raw.values.contains { Set($0.map(\.metrics.dice)).count > 1 }, "no rounding ties in the test data")
    }

    func testRoundedKeepsNonFiniteValues() {
        XCTAssertEqual(MetricsCSVWriter.rounded(0.40049), 0.4)
        XCTAssertEqual(MetricsCSVWriter.rounded(0.8125), 0.812)   // printf: the binary value is exactly halfway, even digit
        XCTAssertEqual(MetricsCSVWriter.rounded(.infinity), .infinity)
        XCTAssertTrue(MetricsCSVWriter.rounded(.nan).isNaN)
    }
}

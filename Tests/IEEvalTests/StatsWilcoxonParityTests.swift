import Foundation
import IECore
import IETestSupport
import XCTest
@testable import IEEval

/// InnerEye's wilcoxon_signed_rank_test.py on a MetricsAcrossAllRuns-like table, re-implemented in Python from
/// InnerEye's code (convert_data, run_wilcoxon_test_on_data, compose_pairwise_result, statistical_tests.wilcoxon):
/// pairing on seriesId when the column exists, a structure with fewer than 5 non-zero differences printed without
/// z, p and verdict, a pair in which no structure qualifies left out.
final class StatsWilcoxonParityTests: XCTestCase {
    /// InnerEye's per-pair test and its text block (statistical_tests.wilcoxon, compose_pairwise_result), shared by
    /// the oracles below: `block(r1, r2, d1, d2)` is the block's lines, empty when no structure has 5 differences.
    static let innerEyePairBlock = """
        import math
        import numpy as np
        from scipy.stats import norm, rankdata
        def stats(d1, d2, factor):
            shared = sorted(set(k for k in d1 if k in d2))
            v1 = [d1[k] for k in shared]; v2 = [d2[k] for k in shared]
            d = np.array(v2) - np.array(v1); nz = d[d != 0]; n = len(nz)
            z = 0.0
            if n:
                w = float(np.sum(np.sign(nz) * rankdata(np.abs(nz))))
                z = w / math.sqrt(n * (n + 1) * (2 * n + 1) / 6.0)
            return dict(pairs=len(shared), mean1=np.mean(v1), mean2=np.mean(v2), n1=int(np.sum(d < 0)),
                        n2=int(np.sum(d > 0)), med1=np.median(v1), med2=np.median(v2), z=z, p=norm.cdf(z / factor))
        header = (f"{'Name':<15s} {'N':^3s} {'Mean1':^7s} {'Mean2':^7s} {'N1>2':^4s} {'N2>1':^4s} "
                  f"{'Med1':^7s} {'Med2':^7s} {'WilcZ':>6s} {'WilcP':^5s} {'2_vs_1':<s}")
        def block(r1, r2, d1, d2):
            res = {name: stats(d1[name], d2[name], 2.0 if name.lower() in ('skin', 'external') else 1.25)
                   for name in d1 if name in d2}
            width = max([0] + [len(k) for k in res]); body = []; valid = False
            for name in sorted(res):
                s = res[name]
                line = (f"{name:<{width}s} {s['pairs']:3d} {s['mean1']:7.3f} {s['mean2']:7.3f} {s['n1']:4d} "
                        f"{s['n2']:4d} {s['med1']:7.3f} {s['med2']:7.3f}")
                if s['n1'] + s['n2'] >= 5:
                    verdict = 'WORSE' if s['p'] < 0.025 else ('BETTER' if s['p'] > 0.975 else '')
                    line += f" {s['z']:6.3f} {s['p']:5.3f} {verdict}"
                    valid = True
                body.append(line)
            return ['Run 1: ' + r1, 'Run 2: ' + r2, header] + body + [''] if valid else []

        """
    static let oracle = innerEyePairBlock + """
        import sys, csv, io
        rows = list(csv.DictReader(io.StringIO(sys.stdin.read())))
        use_series = 'seriesId' in rows[0]
        data = {}
        for r in rows:
            if r['mode'].lower() == 'test':
                key = r['seriesId'] if use_series else r['Patient']
                data.setdefault(r['split'], {}).setdefault(r['Structure'], {})[key] = float(r['Dice'])
        runs = sorted(data); lines = []
        while runs:
            r1 = runs.pop(0)
            for r2 in runs:
                lines += block(r1, r2, data[r1], data[r2])
        print('\\n'.join(lines) if lines else 'There were not enough data points for any statistically meaningful comparisons.', end='\\n' if lines else '')
        """

    /// Runs 0, 1 and ENSEMBLE, 9 subjects: patients are named differently in run 1 (only seriesId pairs them);
    /// lens_l has 3 non-zero differences between 0 and 1 (no z); ENSEMBLE is run 1 plus 2 in subjects 0-3, so
    /// 1 vs ENSEMBLE has 4 differences per structure (that pair is left out); Val rows are ignored.
    func table() -> String {
        var rng = MetricsTestRandom(seed: 7)
        var text = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm,seriesId,institutionId,split,mode\n"
        for s in ["lens_l", "external", "brainstem"] {
            let run0 = (0..<9).map { _ in 60 + 35 * rng.unitDouble() }
            let run1 = run0.enumerated().map { i, d in s == "lens_l" ? (i < 3 ? d + 1.5 : d) : d + rng.unitDouble() * 4 - 1 }
            let ensemble = run1.enumerated().map { i, d in i < 4 ? d + 2 : d }
            for (run, values) in [("0", run0), ("1", run1), ("ENSEMBLE", ensemble)] {
                for (i, dice) in values.enumerated() {
                    let patient = run == "1" ? "q\(i)" : "\(i + 1)"
                    text += "\(patient),\(s),\(dice),1.0,0.5,series\(i),inst1,\(run),Test\n"
                    text += "\(patient),\(s),\(100 - dice),1.0,0.5,series\(i),inst1,\(run),Val\n"
                }
            }
        }
        return text
    }

    func testCrossValidationTextMatchesInnerEyeOracle() throws {
        let csv = table()
        let expected = try PythonOracle.run(Self.oracle, input: Data(csv.utf8))
        var scores = ScoresByRun()
        scores.add(try MetricsFile.parse(text: csv), defaultRun: "", subset: "test")
        let results = WilcoxonComparison.run(scores)
        let text = WilcoxonComparison.text(results)
        XCTAssertEqual(text, expected)
        // The case must exercise the rules: a row without z, the 1-vs-ENSEMBLE block left out, pairs of 9.
        XCTAssertTrue(text.hasPrefix("Run 1: 0\nRun 2: 1\n"), text)
        XCTAssertTrue(text.contains("Run 1: 0\nRun 2: ENSEMBLE\n"), text)
        XCTAssertFalse(text.contains("Run 2: ENSEMBLE\nRun 1: 1"), text)
        XCTAssertFalse(text.contains("Run 1: 1\n"), text)
        let lensLine = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("lens_l") })
        XCTAssertEqual(lensLine.split(separator: " ").count, 8, "lens_l of 0 vs 1 has 3 differences and no z: \(lensLine)")
        XCTAssertTrue(lensLine.hasPrefix("lens_l      9 "), String(lensLine))

        // The CSV lists every structure; where the rule is not met W, z, p and the verdict are empty.
        let rows = WilcoxonComparison.csv(results).split(separator: "\n").filter { $0.hasPrefix("0,1,lens_l,") }
        XCTAssertEqual(rows.count, 1)
        XCTAssertTrue(rows.first?.hasSuffix(",,,,") ?? false, "\(rows)")
    }

    func testPairsOnPatientWhereSeriesIdIsEmpty() throws {
        // InnerEye writes '' for a dataset without seriesId and then pairs nothing (each NaN key is distinct);
        // we pair such rows on Patient (SPEC §8).
        var csv = "Patient,Structure,Dice,seriesId,split,mode\n"
        for (run, shift) in [("A", 0.0), ("B", 3.0)] {
            for i in 1...10 { csv += "\(i),liver,\(Double(50 + i * 3) + shift * Double(i % 3 + 1)),,\(run),Test\n" }
        }
        var scores = ScoresByRun()
        scores.add(try MetricsFile.parse(text: csv), defaultRun: "")
        let row = try XCTUnwrap(WilcoxonComparison.run(scores).first?.rows.first)
        XCTAssertEqual(row.pairs, 10)
        XCTAssertEqual(row.secondHigher, 10)
        XCTAssertEqual(row.verdict, "BETTER")
    }
}

/// The Mean and Med columns of InnerEye's text on plain metrics files, where pandas reads Patient as int64 when
/// every id is an integer: InnerEye averages the shared subjects in `sorted(shared)` order (numeric then, so
/// 2 before 10; strings in code-point order when some id is not a number) and takes np.median, (a + b) / 2 for
/// an even count. Values with 3 decimals put many means and medians on half-way points of `%7.3f`.
final class StatsWilcoxonTextOrderTests: XCTestCase {
    static let oracle = StatsWilcoxonParityTests.innerEyePairBlock + """
        import sys, io, json
        import pandas as pd
        from collections import defaultdict
        out = []
        for fa, fb in json.load(sys.stdin):
            data = {}
            for run, text in (('A', fa), ('B', fb)):
                d = defaultdict(dict)
                for t in pd.read_csv(io.StringIO(text)).itertuples():
                    d[t.Structure][t.Patient] = float(t.Dice)
                data[run] = d
            lines = block('A', 'B', data['A'], data['B'])
            out.append('\\n'.join(lines) + '\\n' if lines else
                       'There were not enough data points for any statistically meaningful comparisons.')
        print(json.dumps(out))
        """

    func testMeansAndMediansMatchInnerEyeOnIntegerAndStringIds() throws {
        var random = SplitMix64(seed: 31)
        func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        var pairs: [[String]] = []
        for index in 0..<400 {
            let structures = ["liver", "skin", "External", "lung", "Heart"].shuffled(using: &random).prefix(1 + below(3))
            let n = 1 + below(30)
            // One case in four has a non-numeric id: pandas then reads every id as a string.
            let named = index % 4 == 3 ? below(n) : -1
            var a = "Patient,Structure,Dice,HausdorffDistance_mm,MeanDistance_mm\n", b = a
            for structure in structures {
                for p in 0..<n {
                    let id = p == named ? "p\(p + 1)" : "\(p + 1)"
                    // Dice in a narrow band (repeats: half-way means and medians), differences often zero.
                    // Every other case spreads over [0, 1]: the two middle values then differ a lot, and
                    // (a + b) / 2 and the lerp b - (b - a) / 2 part more often.
                    let base = index % 2 == 0 ? 600 + below(400) : below(1001)
                    let delta = [0, 0, 1, -1, 2, -2, 5, -5, 13, -7, 30][below(11)]
                    // The named id stays in both files: with it in one file only, pandas would read that
                    // file's ids as int64 and the other's as str, and InnerEye would pair nothing (SPEC §8).
                    let keep = p == named
                    if keep || below(20) > 0 { a += "\(id),\(structure),\(String(format: "%.3f", Double(base) / 1000)),1.000,1.000\n" }
                    if keep || below(20) > 0 {
                        let v = min(max(base + delta, 0), 1000)
                        b += "\(id),\(structure),\(String(format: "%.3f", Double(v) / 1000)),1.000,1.000\n"
                    }
                }
            }
            pairs.append([a, b])
        }
        let expected = try XCTUnwrap(try PythonOracle.json(Self.oracle, input: try JSONSerialization.data(withJSONObject: pairs))
                                     as? [String])
        XCTAssertEqual(expected.count, pairs.count)
        var differing = 0
        for (i, pair) in pairs.enumerated() {
            var scores = ScoresByRun()
            scores.add(try MetricsFile.parse(text: pair[0]), defaultRun: "A")
            scores.add(try MetricsFile.parse(text: pair[1]), defaultRun: "B")
            let text = WilcoxonComparison.text(WilcoxonComparison.run(scores))
            if text != expected[i] {
                differing += 1
                if differing <= 3 { XCTFail("case \(i):\nours:\n\(text)InnerEye:\n\(expected[i])") }
            }
        }
        XCTAssertEqual(differing, 0)
    }

    func testNumpyMedianAndKeyOrder() throws {
        // np.median of an even count is (a + b) / 2; the quantile lerp b - (b - a) / 2 is one ulp off here.
        let values = [0.001, 0.002, 0.008, 0.995, 0.998, 0.999]
        let reference = numbers(try pythonReference("import numpy as np; print(repr(float(np.median(\(pythonList(values))))))"))
        XCTAssertEqual(Descriptive.median(values).bitPattern, reference.first?.bitPattern)
        XCTAssertNotEqual(Descriptive.quantile(values, 0.5).bitPattern, reference.first?.bitPattern)
        XCTAssertTrue(Descriptive.median([1, .nan, 2]).isNaN)
        XCTAssertEqual(SubjectKeyOrder.inferred(["1", "10", "2"]), .integer)
        XCTAssertEqual(SubjectKeyOrder.inferred(["1", "2.5"]), .float)
        XCTAssertEqual(SubjectKeyOrder.inferred(["1", "0x10"]), .string)
        XCTAssertEqual(["10", "2", "1"].sorted(by: SubjectKeyOrder.integer.precedes), ["1", "2", "10"])
        XCTAssertEqual(["10", "2", "1"].sorted(by: SubjectKeyOrder.string.precedes), ["1", "10", "2"])
    }
}

import XCTest
import IETestSupport
import IECore
@testable import IEEval

final class StatsWilcoxonTests: XCTestCase {
    // Hand-worked: d = second - first = [1, 1, -2, 0, 3, -1, 0.5]; the zero is dropped (n = 6);
    // |d| ranks: 0.5 -> 1, the three 1s -> (2+3+4)/3 = 3, 2 -> 5, 3 -> 6;
    // W = 3 + 3 - 5 + 6 - 3 + 1 = 5; z = 5 / sqrt(6*7*13/6) = 5 / sqrt(91).
    let first: [Double] = [10, 20, 30, 40, 50, 60, 70]
    let second: [Double] = [11, 21, 28, 40, 53, 59, 70.5]

    func testInnerEyeStatisticHandWorkedWithTiesAndZero() {
        let r = WilcoxonSignedRank.innerEyeStatistic(first: first, second: second)
        XCTAssertEqual(r.n, 6)
        XCTAssertEqual(r.w, 5, accuracy: 1e-12)
        XCTAssertEqual(r.z, 5 / 91.0.squareRoot(), accuracy: 1e-12)
    }

    func testInnerEyeStatisticAllEqualGivesZero() {
        let r = WilcoxonSignedRank.innerEyeStatistic(first: [1, 2, 3], second: [1, 2, 3])
        XCTAssertEqual(r.n, 0)
        XCTAssertEqual(r.z, 0)
    }

    func testInnerEyePValueUsesDeflationFactor() throws {
        let ref = numbers(try pythonReference("""
            from scipy.stats import norm; import math
            z = 5 / math.sqrt(91)
            print(norm.cdf(z / 1.25), norm.cdf(z / 2.0))
            """))
        var a: [String: [String: Double]] = ["bladder": [:], "Skin": [:]]
        var b = a
        for (i, (x, y)) in zip(first, second).enumerated() {
            a["bladder"]!["s\(i)"] = x; b["bladder"]!["s\(i)"] = y
            a["Skin"]!["s\(i)"] = x; b["Skin"]!["s\(i)"] = y
        }
        let rows = WilcoxonComparison.compare(a, b)
        XCTAssertEqual(rows.map { $0.structure }, ["Skin", "bladder"])
        XCTAssertEqual(rows[1].p, ref[0], accuracy: 1e-12)
        XCTAssertEqual(rows[0].p, ref[1], accuracy: 1e-12)
        XCTAssertEqual(rows[1].firstHigher, 2)
        XCTAssertEqual(rows[1].secondHigher, 4)
        XCTAssertTrue(rows[1].qualifies)
        XCTAssertEqual(rows[1].verdict, "")
    }

    func testExactNullDistributionMatchesPublishedCriticalValues() {
        // Two-sided alpha 0.05 critical values of T (largest T with 2 P(T <= T) <= 0.05):
        // n = 10 -> 8, n = 20 -> 52 (standard Wilcoxon signed-rank tables).
        for (n, critical) in [(10, 8), (20, 52)] {
            let counts = WilcoxonSignedRank.nullDistribution(n: n)
            let total = counts.reduce(0, +)
            XCTAssertEqual(total, pow(2, Double(n)))
            let p = { (t: Int) in 2 * counts[0...t].reduce(0, +) / total }
            XCTAssertLessThanOrEqual(p(critical), 0.05, "n=\(n)")
            XCTAssertGreaterThan(p(critical + 1), 0.05, "n=\(n)")
        }
        // n = 10, T = 8: p = 2 * 25/1024 = 0.048828125 exactly.
        let counts = WilcoxonSignedRank.nullDistribution(n: 10)
        XCTAssertEqual(2 * counts[0...8].reduce(0, +) / 1024, 0.048828125)
    }

    func testExactMethodMatchesScipyWithoutTies() throws {
        var generator = SplitMix(seed: 7)
        for n in [6, 12, 25] {
            let x = (0..<n).map { _ in generator.unitDouble() }
            let y = x.map { $0 + generator.unitDouble() - 0.35 }
            let ref = numbers(try pythonReference("""
                from scipy.stats import wilcoxon
                r = wilcoxon(\(pythonList(x)), \(pythonList(y)), method='exact')
                print(r.statistic, r.pvalue)
                """))
            let r = WilcoxonSignedRank.twoSided(first: x, second: y, method: .exact)
            XCTAssertEqual(r.method, .exact)
            XCTAssertEqual(r.statistic, ref[0], accuracy: 1e-9, "n=\(n)")
            XCTAssertEqual(r.p, ref[1], accuracy: 1e-12, "n=\(n)")
        }
    }

    func testApproxWithTiesAndZerosMatchesScipy() throws {
        let ref = numbers(try pythonReference("""
            from scipy.stats import wilcoxon
            r = wilcoxon(\(pythonList(first)), \(pythonList(second)), method='asymptotic', correction=False)
            print(r.statistic, r.pvalue)
            """))
        let r = WilcoxonSignedRank.twoSided(first: first, second: second, method: .approx)
        XCTAssertEqual(r.method, .approx)
        XCTAssertEqual(r.statistic, ref[0], accuracy: 1e-12)
        XCTAssertEqual(r.p, ref[1], accuracy: 1e-12)
    }

    /// `--method=exact` is scipy.stats.wilcoxon(x, y) with its defaults (method='auto', scipy >= 1.13): with ties
    /// or zeros and at most 13 pairs, an exact permutation test over all sign flips; with more, the normal
    /// approximation; without either, the exact distribution. Random small samples with 3-decimal scores whose
    /// differences repeat (ties) and are often zero, some all zero. scipy's permutation test calls the statistic
    /// once per flip (2.5 s at n = 13), so most cases have n <= 8 and a few reach 9...13 and the approximation.
    func testExactMethodMatchesScipyAutoWithTiesAndZeros() throws {
        var generator = SplitMix(seed: 11)
        func below(_ n: Int) -> Int { Int(generator.next() % UInt64(n)) }
        var cases: [[[Double]]] = []
        let sizes = (0..<200).map { 2 + $0 % 7 } + [1, 1, 9, 10, 11, 12, 13, 14, 15, 17, 20, 30]
        for (index, n) in sizes.enumerated() {
            let steps = [0, 0, 1, -1, 2, -2, 3, -3, 5, -4, 7, 10 + below(20)]
            let x = (0..<n).map { _ in Double(500 + below(400)) / 1000 }
            let y = x.map { v in index % 37 == 0 ? v : (v * 1000 + Double(steps[below(steps.count)])) / 1000 }
            cases.append([x, y])
        }
        let out = try PythonOracle.run("""
            import sys, json, warnings
            warnings.filterwarnings('ignore')
            from scipy.stats import wilcoxon
            for x, y in json.load(sys.stdin):
                try:
                    r = wilcoxon(x, y)
                    print(repr(float(r.statistic)), repr(float(r.pvalue)))
                except ValueError:  # one pair with a zero difference: permutation_test needs two
                    print('nan nan')
            """, input: try JSONSerialization.data(withJSONObject: cases))
        let lines = out.split(separator: "\n")
        XCTAssertEqual(lines.count, cases.count)
        var permutationCases = 0, differing = 0
        for (pair, line) in zip(cases, lines) {
            let ref = numbers(String(line))
            let r = WilcoxonSignedRank.twoSided(first: pair[0], second: pair[1], method: .exact)
            let differences = zip(pair[0], pair[1]).map { $1 - $0 }
            let tied = Set(differences.map { abs($0) }).count < differences.count
            if pair[0].count <= 13 && tied { permutationCases += 1 }
            // The permutation p is a ratio of integers (bit for bit); the approximation within rounding.
            let pMatches = r.p.isNaN ? ref[1].isNaN : abs(r.p - ref[1]) <= 1e-12 * max(1, ref[1])
            let statisticMatches = r.statistic.isNaN ? ref[1].isNaN : r.statistic == ref[0]
            if !(pMatches && statisticMatches) {
                differing += 1
                if differing <= 5 { XCTFail("x=\(pair[0]) y=\(pair[1]): ours \(r.statistic) \(r.p), scipy \(ref)") }
            }
        }
        XCTAssertEqual(differing, 0)
        XCTAssertGreaterThan(permutationCases, 100, "the cases must exercise the permutation test")
    }

    func testHolmAdjustmentHandWorked() {
        // Sorted 0.01, 0.03, 0.04 -> 3*0.01 = 0.03, 2*0.03 = 0.06, max(0.06, 1*0.04) = 0.06.
        let adjusted = WilcoxonSignedRank.holmAdjusted([0.01, 0.04, 0.03, .nan])
        XCTAssertEqual(adjusted[0], 0.03, accuracy: 1e-15)
        XCTAssertEqual(adjusted[1], 0.06, accuracy: 1e-15)
        XCTAssertEqual(adjusted[2], 0.06, accuracy: 1e-15)
        XCTAssertTrue(adjusted[3].isNaN)
    }

    func testTextLayoutMatchesPythonFormatting() throws {
        // Two runs, two structures; the expected file is produced by python with InnerEye's format strings
        // and numpy/scipy statistics, independently of our code.
        let patients = (1...8).map { "p\($0)" }
        let a1: [Double] = [0.81, 0.85, 0.9, 0.77, 0.88, 0.92, 0.79, 0.83]
        let b1: [Double] = [0.84, 0.87, 0.93, 0.80, 0.90, 0.95, 0.83, 0.86]
        let a2: [Double] = [0.5, 0.6, 0.55, 0.52]
        let b2: [Double] = [0.51, 0.58, 0.55, 0.6]
        var csvA = "Patient,Structure,Dice\n", csvB = csvA
        for (i, p) in patients.enumerated() {
            csvA += "\(p),prostate,\(a1[i])\n"; csvB += "\(p),prostate,\(b1[i])\n"
            if i < 4 { csvA += "\(p),rectum_long_name,\(a2[i])\n"; csvB += "\(p),rectum_long_name,\(b2[i])\n" }
        }
        var scores = ScoresByRun()
        scores.add(try MetricsFile.parse(text: csvA), defaultRun: "A")
        scores.add(try MetricsFile.parse(text: csvB), defaultRun: "B")
        let text = WilcoxonComparison.text(WilcoxonComparison.run(scores))
        let expected = try pythonReference("""
            import numpy as np, math
            from scipy.stats import norm, rankdata
            data = {'prostate': (\(pythonList(a1)), \(pythonList(b1))),
                    'rectum_long_name': (\(pythonList(a2)), \(pythonList(b2)))}
            w = max(len(k) for k in data)
            lines = ['Run 1: A', 'Run 2: B',
                     f"{'Name':<15s} {'N':^3s} {'Mean1':^7s} {'Mean2':^7s} {'N1>2':^4s} {'N2>1':^4s} "
                     f"{'Med1':^7s} {'Med2':^7s} {'WilcZ':>6s} {'WilcP':^5s} {'2_vs_1':<s}"]
            for name in sorted(data):
                x, y = map(np.array, data[name])
                d = y - x; d = d[d != 0]; n = len(d)
                r = rankdata(np.abs(d))
                W = float(np.sum(np.sign(d) * r))
                z = W / math.sqrt(n * (n + 1) * (2 * n + 1) / 6) if n else 0.0
                p = norm.cdf(z / 1.25)
                n1 = int(np.sum(x > y)); n2 = int(np.sum(y > x))
                line = f"{name:<{w}s} {len(x):3d} {x.mean():7.3f} {y.mean():7.3f} {n1:4d} {n2:4d} {np.median(x):7.3f} {np.median(y):7.3f}"
                if n1 + n2 >= 5:
                    v = 'WORSE' if p < 0.025 else ('BETTER' if p > 0.975 else '')
                    line += f" {z:6.3f} {p:5.3f} {v}"
                lines.append(line)
            lines.append('')
            print('\\n'.join(lines))
            """)
        XCTAssertEqual(text, expected)
        XCTAssertTrue(text.contains("BETTER"), "the prostate comparison should be significant: \(text)")
    }

    func testNotEnoughDataMessageMatchesInnerEyeFile() throws {
        // PR_TrainEnsemble: folds 0, 1 and ENSEMBLE of one subject; nothing qualifies.
        var scores = ScoresByRun()
        for k in ["0", "1", "ENSEMBLE"] {
            scores.add(try MetricsFile.read(path: StatsFixtures.path("PR_TrainEnsemble/\(k)/Test/metrics.csv")),
                       defaultRun: k)
        }
        let text = WilcoxonComparison.text(WilcoxonComparison.run(scores))
        let expected = try StatsFixtures.text("CrossValidationWilcoxonSignedRankTestResults.txt")
        // InnerEye wrote the message without a newline; the stored reference file has one appended.
        XCTAssertEqual(text + "\n", expected)
        XCTAssertEqual(text, WilcoxonComparison.notEnoughData)
    }

    func testCSVFormatColumns() throws {
        var scores = ScoresByRun()
        // MetricsAcrossAllRuns.csv rows (split and mode columns: Dice * 100, as InnerEye writes that file).
        for (run, values) in [("A", first), ("B", second)] {
            let rows = zip(values, 1...).map { "\($1),s,\($0),\(run),Test" }.joined(separator: "\n")
            scores.add(try MetricsFile.parse(text: "Patient,Structure,Dice,split,mode\n" + rows), defaultRun: run)
        }
        let results = WilcoxonComparison.run(scores, method: .approx)
        let csv = WilcoxonComparison.csv(results[0]).split(separator: "\n")
        XCTAssertEqual(csv[0], "Structure,N,Mean1,Mean2,N1>2,N2>1,Median1,Median2,W,z,p,verdict")
        XCTAssertTrue(csv[1].hasPrefix("s,7,40.0,40.357142857142854,2,4,40.0,40.0,"), String(csv[1]))
        // Every number reads back to the double computed here (full precision, not 6 significant digits).
        let fields = csv[1].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        let row = results[0].rows[0]
        for (field, value) in zip([fields[2], fields[3], fields[6], fields[7], fields[8], fields[9], fields[10]],
                                  [row.mean1, row.mean2, row.median1, row.median2, row.statistic, row.z, row.p]) {
            XCTAssertEqual(Double(field), value, "\(field) reads back to \(value)")
        }
        // And z, p equal scipy's normal approximation to the last bits that scipy's own float formatting shows.
        let reference = try PythonOracle.run("""
            import sys, json; from scipy.stats import wilcoxon
            r = wilcoxon(json.loads(sys.argv[2]), json.loads(sys.argv[1]), method='approx')
            print(repr(float(r.pvalue)))
            """, arguments: ["\(first)", "\(second)"])
        XCTAssertEqual(Double(fields[10]) ?? .nan, Double(reference.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0,
                       accuracy: 1e-12)
    }
}

/// Deterministic pseudo-random numbers for test data (IECore's SplitMix64; draws in MetricsTestSupport).
typealias SplitMix = SplitMix64

import XCTest
@testable import IEEval

final class StatsMannWhitneyTests: XCTestCase {
    func testAsymptoticWithTiesMatchesScipy() throws {
        let x: [Double] = [1, 2, 2, 3, 4, 5, 5, 5, 7, 8, 9, 10]
        let y: [Double] = [3, 4, 5, 6, 6, 7, 8, 9, 9, 11, 12]
        let ref = numbers(try pythonReference("""
            from scipy.stats import mannwhitneyu
            r = mannwhitneyu(\(pythonList(x)), \(pythonList(y)), alternative='two-sided', method='asymptotic')
            print(r.statistic, r.pvalue)
            """))
        let r = MannWhitneyU.test(x, y)
        XCTAssertEqual(r.u, ref[0], accuracy: 1e-12)
        XCTAssertEqual(r.p, ref[1], accuracy: 1e-12)
    }

    func testExactMatchesScipyForSmallSamplesWithoutTies() throws {
        let x: [Double] = [0.11, 0.52, 0.33, 0.94, 0.25]
        let y: [Double] = [0.61, 0.72, 0.43, 0.84, 0.99, 0.77]
        let ref = numbers(try pythonReference("""
            from scipy.stats import mannwhitneyu
            r = mannwhitneyu(\(pythonList(x)), \(pythonList(y)), alternative='two-sided', method='exact')
            print(r.statistic, r.pvalue)
            """))
        let r = MannWhitneyU.test(x, y, method: .exact)
        XCTAssertEqual(r.method, .exact)
        XCTAssertEqual(r.u, ref[0], accuracy: 1e-12)
        XCTAssertEqual(r.p, ref[1], accuracy: 1e-12)
    }

    /// scipy's method='exact' keeps the no-ties distribution when there are ties (U of average ranks, truncated):
    /// U ending in .5, a whole U with ties, all values tied but one.
    func testExactWithTiesMatchesScipy() throws {
        let cases: [([Double], [Double])] = [([1, 2, 2, 3, 4], [2, 3, 5, 6, 6, 7]),
                                             ([1, 1, 2, 3], [1, 2, 4, 4, 5]),
                                             ([5, 5, 5, 5, 5, 5, 5, 6], [5, 5, 5, 5, 5, 5, 5, 5, 5]),
                                             // Dice-like values of two institutions, 120 and 150, rounded so some tie.
                                             ((0..<120).map { Double(Int(80 + 15 * sin(Double($0)))) / 100 },
                                              (0..<150).map { Double(Int(77 + 15 * cos(Double($0) * 1.3))) / 100 })]
        for (x, y) in cases {
            let ref = numbers(try pythonReference("""
                from scipy.stats import mannwhitneyu
                r = mannwhitneyu(\(pythonList(x)), \(pythonList(y)), alternative='two-sided', method='exact')
                print(r.statistic, r.pvalue)
                """))
            let r = MannWhitneyU.test(x, y, method: .exact)
            XCTAssertEqual(r.method, .exact)
            XCTAssertEqual(r.u, ref[0], accuracy: 1e-12, "\(x) \(y)")
            XCTAssertEqual(r.p, ref[1], accuracy: 1e-12, "\(x) \(y)")
        }
    }

    func testUDistributionHandWorked() {
        // m = n = 2: the 6 orderings give U = 0, 1, 2, 2, 3, 4.
        for (p, q) in zip(MannWhitneyU.uDistribution(2, 2), [1.0, 1, 2, 1, 1].map { $0 / 6 }) { XCTAssertEqual(p, q, accuracy: 1e-15) }
        XCTAssertEqual(MannWhitneyU.uDistribution(30, 40).reduce(0, +), 1, accuracy: 1e-12)
    }

    func testROCHandWorked() {
        // Pairs (x, y): 1<2, 1<3, 2=2 (0.5), 2<3, 4>2, 4>3 -> (1 + 1 + 0.5 + 1) / 6.
        XCTAssertEqual(MannWhitneyU.roc([1, 2, 4], [2, 3]), 3.5 / 6, accuracy: 1e-15)
    }

    /// Two institutions with 12 and 10 values of one structure, one with 4 (dropped: fewer than 10).
    func makeMetrics() -> MetricsFile {
        var records: [MetricsRecord] = []
        let a: [Double] = [81, 85, 90, 77, 88, 92, 79, 83, 86, 84, 91, 80]
        let b: [Double] = [70, 75, 88, 72, 69, 80, 74, 71, 77, 73]
        for (i, v) in a.enumerated() { records.append(MetricsRecord(patient: "\(i)", structure: "prostate", dice: v, institutionId: "instA", split: "0", mode: "Test")) }
        for (i, v) in b.enumerated() { records.append(MetricsRecord(patient: "\(100 + i)", structure: "prostate", dice: v, institutionId: "instB", split: "0", mode: "Test")) }
        for i in 0..<4 { records.append(MetricsRecord(patient: "\(200 + i)", structure: "prostate", dice: 60, institutionId: "instC", split: "0", mode: "Test")) }
        return MetricsFile(records: records, hasSeriesId: false, hasInstitutionId: true, hasSplit: true, hasMode: true)
    }

    func testInstitutionComparisonTextMatchesPythonFormatting() throws {
        let file = makeMetrics()
        let text = MannWhitneyComparison.text(MannWhitneyComparison.run(file, by: { $0.institutionId }))
        let a = file.records.filter { $0.institutionId == "instA" }.map { $0.dice }
        let b = file.records.filter { $0.institutionId == "instB" }.map { $0.dice }
        // Expected text from python: scipy's p, statistics.stdev, InnerEye's format strings. ROC = P(a < b)
        // with instA first; it is below 0.5, so no swap: I = instA (1), J = instB (2).
        let expected = try pythonReference("""
            import statistics, math
            from scipy.stats import mannwhitneyu, norm
            a = \(pythonList(a)); b = \(pythonList(b))
            p = mannwhitneyu(a, b, alternative='two-sided').pvalue
            roc = sum(1.0 if x < y else 0.5 if x == y else 0.0 for x in a for y in b) / (len(a) * len(b))
            assert roc < 0.5
            ma, mb = statistics.mean(a), statistics.mean(b)
            sa, sb = statistics.stdev(a), statistics.stdev(b)
            z = abs(mb - ma) / math.sqrt(sa * sa / len(a) + sb * sb / len(b))
            normp = norm.cdf(-z)
            header = (f"{'ROC':^6s} {'Mann-Wht p':>12s} {'Normal p':>12s} | "
                      f"I {'N(I)':>5s} {'Mean(I)':>11s} {'Std(I)':>11s} | "
                      f"I {'N(J)':>5s} {'Mean(J)':>11s} {'Std(J)':>11s} | Statistic")
            line = (f"{roc:6.4f} {p:12.4e} {normp:12.4e} | "
                    f"{1:d} {len(a):5d} {ma:11.4f} {sa:11.4f} | "
                    f"{2:d} {len(b):5d} {mb:11.4f} {sb:11.4f} | prostate")
            print('\\n'.join(['For split 0:', '1: instA', '2: instB', '', header, line, '']))
            """)
        XCTAssertEqual(text, expected)
    }

    func testCSVRowsNameInstitutions() {
        let csv = MannWhitneyComparison.csv(MannWhitneyComparison.run(makeMetrics(), by: { $0.institutionId }))
        let lines = csv.split(separator: "\n")
        XCTAssertEqual(lines[0], "Structure,I,J,N_I,N_J,Mean_I,Mean_J,Std_I,Std_J,U,ROC,p_mannwhitney,p_normal")
        XCTAssertEqual(lines.count, 2)
        XCTAssertTrue(lines[1].hasPrefix("prostate,instA,instB,12,10,84.66666666666667,74.9,"), String(lines[1]))
        // Full precision: the mean reads back to the exact double (6 significant digits did not).
        let fields = lines[1].split(separator: ",")
        XCTAssertEqual(Double(fields[5]), 1016.0 / 12)
    }

    func testTooFewValuesGivesNotEnoughDataMessage() {
        var file = makeMetrics()
        file.records = file.records.filter { $0.institutionId != "instA" }
        XCTAssertEqual(MannWhitneyComparison.text(MannWhitneyComparison.run(file, by: { $0.institutionId })),
                       "There were not enough data points for any statistically meaningful comparisons.")
    }
}

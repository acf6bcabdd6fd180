import Foundation
import IECore
import IETestSupport
import XCTest
@testable import IEEval

/// Descriptive statistics give numpy's and pandas' bits: the report's tables are recomputed by pandas and must
/// print the same `%.3f` digits, also where a value lies on a rounding boundary.
final class StatsDescriptiveTests: XCTestCase {
    /// Random arrays of every length up to 300 (numpy's plain loop, 8-way unrolled and recursive pairwise
    /// branches), values with 3 decimals as in metrics.csv, some NaN and some inf.
    func samples() -> [[Double]] {
        var random = SplitMix64(seed: 7)
        func uniform() -> Double { Double(random.next() >> 11) / Double(1 << 53) }
        return (1...300).map { n in
            (0..<n).map { _ in
                let u = uniform()
                if n % 3 == 0 && u < 0.1 { return .nan }
                if n % 5 == 0 && u > 0.97 { return .infinity }
                return (uniform() * 100_000).rounded() / 1000
            }
        }
    }

    func testSumMeanStdAndQuantilesAreBitwiseNumpyAndPandas() throws {
        let data = samples()
        let input = data.map { $0.map { $0.isNaN ? "nan" : ($0.isInfinite ? "inf" : String($0)) }.joined(separator: " ") }
            .joined(separator: "\n")
        let out = try PythonOracle.run("""
            import sys, numpy as np, pandas as pd, warnings
            warnings.filterwarnings('ignore')
            for line in sys.stdin.read().splitlines():
                v = np.array([float(x) for x in line.split()])
                s = pd.Series(v)
                finite = v[~np.isnan(v)]
                q = np.percentile(finite, [25, 50, 75]) if len(finite) else [np.nan] * 3
                print(' '.join(repr(float(x)) for x in [finite.sum(), s.mean(), s.std(), *q]))
            """, input: Data(input.utf8))
        let lines = out.split(separator: "\n")
        XCTAssertEqual(lines.count, data.count)
        var checked = 0
        for (values, line) in zip(data, lines) {
            let expected = line.split(separator: " ").map { Double(String($0)) ?? -1 }
            let finite = values.filter { !$0.isNaN }
            let ours = [Descriptive.sum(finite), Descriptive.skipNaNMean(values), Descriptive.skipNaNSampleStandardDeviation(values),
                        Descriptive.quantile(finite, 0.25), Descriptive.quantile(finite, 0.5), Descriptive.quantile(finite, 0.75)]
            for (name, (a, b)) in zip(["sum", "mean", "std", "25%", "50%", "75%"], zip(ours, expected)) {
                XCTAssertTrue(a.bitPattern == b.bitPattern || (a.isNaN && b.isNaN), "\(name) of \(values.count) values: \(a) vs \(b)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 6 * 300)
    }

    func testNumpyQuantileWithInfinities() {
        // numpy's lerp: b - (b - a)(1 - t) from the midpoint on, so inf - inf gives NaN where the exact answer is inf.
        XCTAssertEqual(Descriptive.quantile([1, .infinity], 0.25), .infinity)
        XCTAssertTrue(Descriptive.quantile([1, .infinity], 0.5).isNaN)
        XCTAssertTrue(Descriptive.quantile([1, .infinity, .infinity], 0.5).isNaN)
        XCTAssertEqual(Descriptive.quantile([1, 2, 3, .infinity], 0.5), 2.5)
        XCTAssertEqual(Descriptive.quantile([1, 2, 3, .infinity], 0.75), .infinity)
    }
}

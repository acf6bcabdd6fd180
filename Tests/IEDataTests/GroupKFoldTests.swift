import Foundation
import XCTest
import IECore
import IEConfig
import IETestSupport
@testable import IEData

/// numpy 1.19.1's `argsort(kind='quicksort')` for integers, in python, written from the algorithm of numpy's
/// `aquicksort`/`aheapsort` (numpy/core/src/npysort/quicksort.c.src and heapsort.c.src at v1.19.1).
///
/// Why not numpy itself: InnerEye pins numpy 1.19.1, which no longer installs on the python we test with, and
/// the numpy we do have (2.x) orders equal values differently (on x86 it may hand int64 argsort to
/// x86-simd-sort; on this project's AMD machines it differed from 1.19 for 2498 of 3034 tie-heavy arrays,
/// 208 of them with at most 16 elements). This rendering was checked once against numpy 1.19.1's own C
/// routines compiled from that tag: the same permutation on 3034 arrays (sizes 0 to 1024, heap-sort path
/// included). The script below also checks it against `kind='stable'` wherever the order is forced.
/// `stats["heapsorted"]` counts ranges that went to heap sort, so a test can show that path is exercised.
private let numpy119ArgsortPython = """
    def numpy119_argsort(values, stats=None):
        v = list(values)
        t = list(range(len(v)))
        def swap(i, j):
            t[i], t[j] = t[j], t[i]
        def heapsort(first, count):
            # 1-based max-heap over t[first : first + count]
            def get(i): return t[first + i - 1]
            def put(i, x): t[first + i - 1] = x
            def sift(tmp, i, n):
                j = 2 * i
                while j <= n:
                    if j < n and v[get(j)] < v[get(j + 1)]: j += 1
                    if v[tmp] < v[get(j)]:
                        put(i, get(j)); i = j; j += j
                    else:
                        break
                put(i, tmp)
            n = count
            for l in range(n >> 1, 0, -1):
                sift(get(l), l, n)
            while n > 1:
                tmp = get(n); put(n, get(1)); n -= 1
                sift(tmp, 1, n)
        lo, hi = 0, len(v) - 1
        depth = 2 * (len(v).bit_length() - 1) if len(v) > 0 else 0
        pending = []
        while True:
            if depth < 0:
                if stats is not None: stats["heapsorted"] = stats.get("heapsorted", 0) + 1
                heapsort(lo, hi - lo + 1)
            else:
                while hi - lo > 15:
                    mid = lo + ((hi - lo) >> 1)
                    if v[t[mid]] < v[t[lo]]: swap(mid, lo)
                    if v[t[hi]] < v[t[mid]]: swap(hi, mid)
                    if v[t[mid]] < v[t[lo]]: swap(mid, lo)
                    pivot = v[t[mid]]
                    i, j = lo, hi - 1
                    swap(mid, j)
                    while True:
                        i += 1
                        while v[t[i]] < pivot: i += 1
                        j -= 1
                        while pivot < v[t[j]]: j -= 1
                        if i >= j: break
                        swap(i, j)
                    swap(i, hi - 1)
                    depth -= 1
                    if i - lo < hi - i:
                        pending.append((i + 1, hi, depth)); hi = i - 1
                    else:
                        pending.append((lo, i - 1, depth)); lo = i + 1
                for i in range(lo + 1, hi + 1):
                    x = t[i]; j = i
                    while j > lo and v[x] < v[t[j - 1]]:
                        t[j] = t[j - 1]; j -= 1
                    t[j] = x
            if not pending: break
            lo, hi, depth = pending.pop()
        return t

    """

/// scikit-learn's own `GroupKFold` (the installed version) run with numpy 1.19's argsort in place of the one
/// its module calls. scikit-learn 0.23.2 (InnerEye's pin) called `np.argsort(n_samples_per_group)` with the
/// default unstable kind; recent releases pass `kind="stable"`, the only difference in the unshuffled branch, so
/// the substitute ignores `kind`. The script refuses to run if GroupKFold no longer sorts the group sizes so.
private let groupKFoldPython = numpy119ArgsortPython + """
    import inspect, json, sys
    import numpy
    import sklearn.model_selection._split as split_module
    from sklearn.model_selection import GroupKFold
    assert "np.argsort(n_samples_per_group" in inspect.getsource(GroupKFold._iter_test_indices)

    class Numpy119:
        def __getattr__(self, name): return getattr(numpy, name)
        @staticmethod
        def argsort(a, kind=None, **unused):
            return numpy.array(numpy119_argsort(numpy.asarray(a).tolist()), dtype=numpy.intp)
    split_module.np = Numpy119()

    def group_k_fold(groups, k):
        labels = numpy.array(groups, dtype=object)
        return [[train.tolist(), val.tolist()] for train, val in GroupKFold(n_splits=k).split(labels, groups=labels)]

    """

/// A deterministic pseudo-random source for the test cases (the cases need variety, not any particular stream).
private struct CaseRandom {
    var python: PythonRandom
    init(seed: UInt64) { python = PythonRandom(seed: seed) }
    /// Uniform in lower...upper.
    mutating func int(_ lower: Int, _ upper: Int) -> Int { lower + python.randbelow(upper - lower + 1) }
}

final class GroupKFoldTests: XCTestCase {
    /// The argsort permutation, ties included, equals numpy 1.19's for arrays of every size class: at most 16
    /// values (insertion sort only), more (partitioning, unstable), and a median-of-three killer that exhausts
    /// the depth budget (heap sort).
    func testArgsortOrdersTiesAsNumpy119() throws {
        var random = CaseRandom(seed: 19)
        var cases: [[Int]] = [[], [7], [2, 2], [3, 1, 2, 1, 3]]
        for _ in 0..<600 {
            let count = random.int(0, 1) == 0 ? random.int(0, 40) : random.int(17, 300)
            let largest = [1, 2, 3, 5, 10, 1000][random.int(0, 5)]
            cases.append((0..<count).map { _ in random.int(1, largest) })
        }
        for n in [17, 18, 33, 64, 257] {
            cases += [Array(0..<n), Array((1...n).reversed()), (0..<n).map { min($0, n - $0) }, (0..<n).map { $0 % 7 }]
        }
        // Musser's median-of-three killer: numpy's partitions stay lopsided until the budget runs out.
        let half = 512
        var killer = [Int](repeating: 0, count: 2 * half)
        for i in 1...half {
            if i % 2 == 1 { killer[i - 1] = i; killer[i] = half + i }
            killer[half + i - 1] = 2 * i
        }
        cases.append(killer)
        let script = numpy119ArgsortPython + """
            import json, sys
            import numpy
            cases = json.load(sys.stdin)
            stats, orders, tie_orders_differ = {}, [], 0
            for values in cases:
                order = numpy119_argsort(values, stats)
                stable = numpy.argsort(numpy.array(values, dtype=numpy.int64), kind="stable").tolist()
                # Without ties the order is forced; up to 16 values numpy 1.19 only insertion-sorts (stable).
                if len(set(values)) == len(values) or len(values) <= 16:
                    assert order == stable, values
                assert [values[i] for i in order] == sorted(values)
                tie_orders_differ += order != stable
                orders.append(order)
            print(json.dumps({"orders": orders, "heapsorted": stats.get("heapsorted", 0), "tieOrdersDiffer": tie_orders_differ}))
            """
        let input = try JSONSerialization.data(withJSONObject: cases)
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(PythonOracle.run(script, input: input).utf8)) as? [String: Any])
        let orders = try XCTUnwrap(reference["orders"] as? [[Int]])
        XCTAssertEqual(orders.count, cases.count)
        // The cases must reach the heap sort and must have ties whose order is not the stable one.
        XCTAssertGreaterThan(reference["heapsorted"] as? Int ?? 0, 0)
        XCTAssertGreaterThan(reference["tieOrdersDiffer"] as? Int ?? 0, 50)
        var mismatches = 0
        for (values, expected) in zip(cases, orders) where numpy119Argsort(values) != expected {
            mismatches += 1
            if mismatches <= 3 { XCTFail("argsort of \(values): \(numpy119Argsort(values)), numpy 1.19 gives \(expected)") }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// GroupKFold's folds (sample indices) equal scikit-learn's for many group-size patterns full of ties,
    /// 2 to 40 groups, k = 2...5, labels whose string order is not their numeric order, samples in mixed order.
    func testGroupKFoldMatchesScikitLearnWithNumpy119TieOrder() throws {
        var random = CaseRandom(seed: 23)
        var cases: [(groups: [String], k: Int)] = []
        for groupCount in 2...40 {
            for _ in 0..<4 {
                let largestSize = [1, 2, 3, 6][random.int(0, 3)]
                let numericLabels = random.int(0, 1) == 0
                var samples: [String] = []
                for group in 0..<groupCount {
                    let label = numericLabels ? "\(group * 3)" : "p\(group)"
                    samples += Array(repeating: label, count: random.int(1, largestSize))
                }
                random.python.shuffle(&samples)
                cases.append((samples, random.int(2, min(5, groupCount))))
            }
        }
        let script = groupKFoldPython + """
            cases = json.load(sys.stdin)
            print(json.dumps([group_k_fold(groups, k) for groups, k in cases]))
            """
        let input = try JSONSerialization.data(withJSONObject: cases.map { [$0.groups, $0.k] as [Any] })
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(PythonOracle.run(script, input: input).utf8)) as? [[[[Int]]]])
        XCTAssertEqual(reference.count, cases.count)
        var mismatches = 0
        for (c, expected) in zip(cases, reference) {
            let ours = groupKFoldSplits(groups: c.groups, folds: c.k).map { [$0.train, $0.validation] }
            if ours != expected {
                mismatches += 1
                if mismatches <= 3 { XCTFail("GroupKFold(\(c.k)) of \(c.groups): \(ours), scikit-learn gives \(expected)") }
            }
        }
        XCTAssertEqual(mismatches, 0)
    }

    /// The audit's case: HW40 (23 subjects of 4 rows each, patient_group g(subject mod 7)), HelloWorld's
    /// 0.6/0.2/0.2 split by group, 3 folds. The expected sets are what InnerEye's own split_dataset.py printed.
    func testHW40GroupFoldsAreInnerEyes() throws {
        let scratch = try Scratch()
        let dataset = try Dataset.load(path: scratch.write("HW40/dataset.csv", hw40DatasetText()))
        let expectedValidation = [[2, 4, 9, 11, 16, 18, 23], [1, 7, 8, 14, 15, 21, 22], [5, 6, 12, 13, 19, 20]]
        for (index, expected) in expectedValidation.enumerated() {
            let config = try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(
                ["--proportion_train=0.6", "--proportion_val=0.2", "--proportion_test=0.2", "--group_column=patient_group",
                 "--number_of_cross_validation_splits=3", "--cross_validation_split_index=\(index)"]))
            let fold = try Splits.split(dataset, config: config)
            XCTAssertEqual(fold.test, ["3", "10", "17"])
            XCTAssertEqual(fold.val.compactMap { Int($0) }.sorted(), expected, "fold \(index) validation")
            XCTAssertEqual(Set(fold.train + fold.val).count, 20)
        }
    }

    /// crossValidationFold with a group column follows InnerEye's procedure: every row of the train table then
    /// the val table is a GroupKFold sample (so a group weighs its subjects' row counts), and the fold's subject
    /// ids select the subjects. The datasets give subjects 1 to 3 rows, so weighing subjects instead would differ.
    func testGroupFoldsWeighGroupsByDatasetRows() throws {
        let scratch = try Scratch()
        var random = CaseRandom(seed: 29)
        var cases: [[Any]] = []
        var expectedInputs: [(dataset: Dataset, base: DatasetSplit, k: Int)] = []
        for n in [12, 20, 30, 45, 60, 80] {
            let channels = ["ct", "mask", "region"]
            var text = "subject,filePath,channel,patient\n"
            var groupOf: [String: String] = [:]
            for s in 0..<n {
                let group = "G\(random.int(0, n / 2))"
                groupOf["s\(s)"] = group
                for channel in channels.prefix(random.int(1, 3)) { text += "s\(s),s\(s)/\(channel).nii.gz,\(channel),\(group)\n" }
            }
            let csv = try scratch.write("d\(n)/dataset.csv", text)
            let dataset = try Dataset.load(path: csv)
            let base = try Splits.byGroup(dataset, column: "patient", train: 0.6, val: 0.2, test: 0.2)
            let poolGroups = Set((base.train + base.val).compactMap { groupOf[$0] }).count
            for k in 2...5 where k <= poolGroups {
                cases.append([csv, base.train, base.val, k])
                expectedInputs.append((dataset, base, k))
            }
        }
        let script = groupKFoldPython + """
            import csv
            from collections import Counter
            result = []
            for path, train, val, k in json.load(sys.stdin):
                rows = list(csv.DictReader(open(path)))
                # InnerEye: pd.concat([train, val]) of dataset rows; GroupKFold over its subject and group columns.
                table = [r for r in rows if r["subject"] in train] + [r for r in rows if r["subject"] in val]
                subjects = [r["subject"] for r in table]
                groups = [r["patient"] for r in table]
                folds = [sorted({subjects[i] for i in v}) for _, v in group_k_fold(groups, k)]
                # The same with one sample per subject, to show the row weighting matters in these cases.
                unique = list(dict.fromkeys(subjects))
                by_subject = [sorted({unique[i] for i in v}) for _, v in group_k_fold([groups[subjects.index(s)] for s in unique], k)]
                result.append({"val": folds, "rowsMatter": folds != by_subject})
            print(json.dumps(result))
            """
        let input = try JSONSerialization.data(withJSONObject: cases)
        let reference = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(PythonOracle.run(script, input: input).utf8)) as? [[String: Any]])
        XCTAssertEqual(reference.count, expectedInputs.count)
        XCTAssertGreaterThan(reference.filter { $0["rowsMatter"] as? Bool == true }.count, 3)
        for ((dataset, base, k), expected) in zip(expectedInputs, reference) {
            let folds = try XCTUnwrap(expected["val"] as? [[String]])
            for index in 0..<k {
                let fold = try Splits.crossValidationFold(base, dataset: dataset, folds: k, index: index, groupColumn: "patient")
                XCTAssertEqual(fold.val.sorted(), folds[index], "\(dataset.path) k=\(k) fold \(index)")
                XCTAssertEqual(fold.train.sorted(), Set(base.train + base.val).subtracting(fold.val).sorted())
                XCTAssertEqual(fold.test, base.test)
                // Both lists keep the train-then-val order InnerEye's filtered table has.
                XCTAssertEqual(fold.val, (base.train + base.val).filter(Set(fold.val).contains))
            }
        }
    }
}

/// HW40's dataset.csv (the audit's data set): subjects 1...23, four rows each, patient_group g(subject mod 7).
func hw40DatasetText() -> String {
    var text = "subject,filePath,channel,patient_group\n"
    for subject in 1...23 {
        for channel in ["ct", "region_a", "region_b", "mask"] {
            text += "\(subject),\(String(format: "%03d", subject))/\(channel).nii.gz,\(channel),g\(subject % 7)\n"
        }
    }
    return text
}

import Foundation
import XCTest
import IECore
import IEConfig
@testable import IEData

/// Python reference of InnerEye's DatasetSplits (from_proportions / from_institutions / k-fold) on a CSV,
/// using the real random.Random(0).shuffle and sklearn KFold. Prints JSON.
private let innerEyeReference = """
    import csv, json, random, sys
    from math import ceil
    from sklearn.model_selection import KFold

    def ranges(population, p_train, p_test, p_val):
        train, test, val = set(population[0:1]), set(population[1:2]), set(population[2:3])
        remaining = list(population[3:])
        if p_test == 0:
            remaining = list(test) + remaining
            test = set()
        train |= set(remaining[: ceil(len(remaining) * p_train)])
        if len(test) > 0:
            test |= set(remaining[len(train): len(train) + ceil(len(remaining) * p_test)])
        val |= set(remaining) - (train | test)
        return train, test, val

    def unique(seq):
        out = []
        for s in seq:
            if s not in out: out.append(s)
        return out

    def split(path, p_train, p_val, p_test, k):
        rows = list(csv.DictReader(open(path)))
        subjects = unique([r["subject"] for r in rows])
        shuffled = list(subjects)
        random.Random(0).shuffle(shuffled)
        train, test, val = ranges(shuffled, p_train, p_test, p_val)
        result = {"train": sorted(train), "val": sorted(val), "test": sorted(test)}
        if "institutionId" in rows[0]:
            inst = {}
            for r in rows:
                inst.setdefault(r["institutionId"], [])
                if r["subject"] not in inst[r["institutionId"]]: inst[r["institutionId"]].append(r["subject"])
            it, iv, its = set(), set(), set()
            for name, subs in inst.items():
                subs = list(subs)
                random.Random(0).shuffle(subs)
                a, b, c = ranges(subs, p_train, p_test, p_val)
                it |= a; its |= b; iv |= c
            result["institution"] = {"train": sorted(it), "val": sorted(iv), "test": sorted(its)}
            if k > 1:
                # InnerEye's tables after from_institutions: rows grouped by sorted institutionId (pandas groupby).
                keys = sorted(inst, key=lambda x: (float(x),) if all(v.replace('.', '', 1).isdigit() for v in inst) else (x,))
                ordered = [s for key in keys for s in inst[key]]
                pool = [s for s in ordered if s in it] + [s for s in ordered if s in iv]
                if len(pool) >= k: result["institution_folds"] = [{"train": sorted(pool[i] for i in t), "val": sorted(pool[i] for i in v)}
                                               for t, v in KFold(n_splits=k, shuffle=True, random_state=0).split(pool)]
        if k > 1:
            pool = [s for s in subjects if s in train] + [s for s in subjects if s in val]
            folds = []
            for t, v in KFold(n_splits=k, shuffle=True, random_state=0).split(pool):
                folds.append({"train": sorted(pool[i] for i in t), "val": sorted(pool[i] for i in v)})
            result["folds"] = folds
        return result

    cases = json.loads(sys.argv[1])
    print(json.dumps([split(*c) for c in cases]))
    """

final class SplitTests: XCTestCase {
    /// One python run for all cases (importing sklearn is slow): each case is (csv, p_train, p_val, p_test, k).
    func references(_ cases: [(String, (Double, Double, Double), Int)]) throws -> [[String: Any]] {
        let json = "[" + cases.map { "[\"\($0.0)\", \($0.1.0), \($0.1.1), \($0.1.2), \($0.2)]" }.joined(separator: ",") + "]"
        let script = innerEyeReference.replacingOccurrences(of: "sys.argv[1]", with: "'" + json + "'")
        return try pythonJSON(script) as! [[String: Any]]
    }

    func assertSame(_ split: DatasetSplit, _ ref: [String: Any], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(split.train.sorted(), ref["train"] as? [String], "\(what) train", file: file, line: line)
        XCTAssertEqual(split.val.sorted(), ref["val"] as? [String], "\(what) val", file: file, line: line)
        XCTAssertEqual(split.test.sorted(), ref["test"] as? [String], "\(what) test", file: file, line: line)
    }

    func testProportionalAndKFoldMatchInnerEyeOnSyntheticDatasets() throws {
        let scratch = try Scratch()
        var cases: [(String, (Double, Double, Double), Int)] = []
        var datasets: [String: Dataset] = [:]
        for n in [7, 10, 50, 100] {
            // Unsorted, non-numeric-looking ids so that first-appearance order matters.
            var rng = PythonRandom(seed: UInt64(n))
            var ids = (0..<n).map { "p\(($0 * 37) % 101)" }
            rng.shuffle(&ids)
            // Institutions appear in the file as c, a, b (not sorted), so the groupby order matters.
            let institutions = (0..<n).map { ["c", "a", "b"][$0 % 3] }
            let csv = try scratch.write("d\(n)/dataset.csv", datasetText(subjects: ids, institutions: institutions))
            datasets[csv] = try Dataset.load(path: csv)
            XCTAssertEqual(datasets[csv]!.subjectsInFileOrder, ids)
            for p in [(0.8, 0.1, 0.1), (0.8, 0.05, 0.15), (0.6, 0.2, 0.2), (0.7, 0.3, 0.0)] {
                for k in [0, 2, 5] where k <= n { cases.append((csv, p, k)) }
            }
        }
        let refs = try references(cases)
        XCTAssertEqual(refs.count, cases.count)
        for ((csv, p, k), ref) in zip(cases, refs) {
            let dataset = datasets[csv]!
            let n = dataset.subjectsInFileOrder.count
            let split = try Splits.byProportions(dataset, train: p.0, val: p.1, test: p.2)
            assertSame(split, ref, "n=\(n) p=\(p)")
            if k > 1 {
                let folds = ref["folds"] as! [[String: [String]]]
                for i in 0..<k {
                    let fold = try Splits.crossValidationFold(split, dataset: dataset, folds: k, index: i)
                    XCTAssertEqual(fold.train.sorted(), folds[i]["train"], "n=\(n) k=\(k) fold \(i) train")
                    XCTAssertEqual(fold.val.sorted(), folds[i]["val"], "n=\(n) k=\(k) fold \(i) val")
                    XCTAssertEqual(fold.test, split.test)
                }
            }
            if n >= 10, p.2 > 0, let inst = ref["institution"] as? [String: Any] {
                let byInst = try Splits.byInstitution(dataset, train: p.0, val: p.1, test: p.2)
                assertSame(byInst, inst, "institution n=\(n) p=\(p)")
                if k > 1, let folds = ref["institution_folds"] as? [[String: [String]]] {
                    for i in 0..<k {
                        let fold = try Splits.crossValidationFold(byInst, dataset: dataset, folds: k, index: i)
                        XCTAssertEqual(fold.train.sorted(), folds[i]["train"], "institution n=\(n) k=\(k) fold \(i)")
                        XCTAssertEqual(fold.val.sorted(), folds[i]["val"], "institution n=\(n) k=\(k) fold \(i)")
                    }
                }
            }
        }
    }

    func testRealInnerEyeDataset() throws {
        let csv = fixtures + "/innereye_dataset.csv"
        let dataset = try Dataset.load(path: csv)
        XCTAssertEqual(dataset.subjectsInFileOrder, ["1", "2", "3", "4", "5", "6", "7"])
        XCTAssertEqual(dataset.rows.count, 35)
        let ps = [(0.8, 0.1, 0.1), (0.8, 0.05, 0.15), (0.5, 0.3, 0.2)]
        let refs = try references(ps.map { (csv, $0, 2) })
        for (p, ref) in zip(ps, refs) {
            let split = try Splits.byProportions(dataset, train: p.0, val: p.1, test: p.2)
            assertSame(split, ref, "p=\(p)")
            let folds = ref["folds"] as! [[String: [String]]]
            for i in 0..<2 {
                let fold = try Splits.crossValidationFold(split, dataset: dataset, folds: 2, index: i)
                XCTAssertEqual(fold.train.sorted(), folds[i]["train"])
                XCTAssertEqual(fold.val.sorted(), folds[i]["val"])
            }
        }
    }

    /// The range rule worked by hand: 10 keys, proportions 0.8/0.1/0.1. R = 7 remaining keys; train gets key 0
    /// and ceil(5.6) = 6 remaining keys (7 in all); test gets key 1 and remaining[7..<8] (empty); val gets key 2
    /// and the one remaining key left over.
    func testRangeRuleByHand() throws {
        let keys = (0..<10).map { "k\($0)" }
        let r = try Splits.subjectRanges(population: keys, proportionTrain: 0.8, proportionTest: 0.1, proportionVal: 0.1)
        XCTAssertEqual(r.train, Set(["k0", "k3", "k4", "k5", "k6", "k7", "k8"]))
        XCTAssertEqual(r.test, Set(["k1"]))
        XCTAssertEqual(r.val, Set(["k2", "k9"]))
        // 20 keys, 0.6/0.2/0.2: R = 17, train = k0 + 11 keys (k3..k13), test = k1 + remaining[12..<16] = k15..k18,
        // one key (k14) skipped into val, val = k2, k14, k19.
        let keys20 = (0..<20).map { "k\($0)" }
        let r20 = try Splits.subjectRanges(population: keys20, proportionTrain: 0.6, proportionTest: 0.2, proportionVal: 0.2)
        XCTAssertEqual(r20.train, Set(["k0"] + (3...13).map { "k\($0)" }))
        XCTAssertEqual(r20.test, Set(["k1", "k15", "k16", "k17", "k18"]))
        XCTAssertEqual(r20.val, Set(["k2", "k14", "k19"]))
        // proportion_test = 0: key 1 rejoins the remaining keys.
        let r0 = try Splits.subjectRanges(population: keys, proportionTrain: 0.5, proportionTest: 0, proportionVal: 0.5)
        XCTAssertEqual(r0.test, [])
        XCTAssertEqual(r0.train, Set(["k0", "k1", "k3", "k4", "k5"]))   // k0 + ceil(8*0.5)=4 of [k1,k3,...]
        XCTAssertEqual(r0.val, Set(["k2", "k6", "k7", "k8", "k9"]))
    }

    func testProportionChecks() {
        assertIEError(.usage, contains: ["expected a sum of 1"]) { _ = try Splits.checkProportions(train: 0.8, val: 0.1, test: 0.2) }
        assertIEError(.usage, contains: ["proportion_test"]) { _ = try Splits.checkProportions(train: 0.5, val: 1.5, test: -1) }
        assertIEError(.usage, contains: ["(0, 1)"]) { _ = try Splits.checkProportions(train: 1.0, val: 0.0, test: 0.0) }
    }

    func testExplicitAndGroupedSplits() throws {
        let scratch = try Scratch()
        let text = "subject,filePath,channel,patient\n" + (1...8).map { "s\($0),f\($0).nii.gz,ct,P\(($0 + 1) / 2)\n" }.joined()
        let csv = try scratch.write("g/dataset.csv", text)
        let dataset = try Dataset.load(path: csv)
        let explicit = try Splits.explicit(dataset, train: ["s3", "s1"], val: ["s2"], test: ["s4"])
        XCTAssertEqual(explicit, DatasetSplit(train: ["s1", "s3"], val: ["s2"], test: ["s4"]))
        assertIEError(.usage, contains: ["train_subjects", "s9", "closest"]) { _ = try Splits.explicit(dataset, train: ["s9"], val: ["s2"], test: []) }
        assertIEError(.badInput, contains: ["two splits", "s1"]) { _ = try Splits.explicit(dataset, train: ["s1"], val: ["s1"], test: []) }
        assertIEError(.badInput, contains: ["non-empty"]) { _ = try Splits.explicit(dataset, train: ["s1"], val: [], test: []) }

        // Groups P1..P4 (two subjects each) are shuffled like subjects and never split apart.
        let grouped = try Splits.byGroup(dataset, column: "patient", train: 0.5, val: 0.25, test: 0.25)
        var groupOrder = ["P1", "P2", "P3", "P4"]
        var rng = PythonRandom(seed: 0)
        rng.shuffle(&groupOrder)
        let r = try Splits.subjectRanges(population: groupOrder, proportionTrain: 0.5, proportionTest: 0.25, proportionVal: 0.25)
        func subjects(_ groups: Set<String>) -> [String] {
            (1...8).map { "s\($0)" }.filter { groups.contains("P\((Int($0.dropFirst())! + 1) / 2)") }
        }
        XCTAssertEqual(grouped, DatasetSplit(train: subjects(r.train), val: subjects(r.val), test: subjects(r.test)))
        for split in [grouped.train, grouped.val, grouped.test] { XCTAssertEqual(split.count % 2, 0) }
        assertIEError(.badInput, contains: ["group_column 'patiant'", "closest: patient", ":1"]) {
            _ = try Splits.byGroup(dataset, column: "patiant", train: 0.5, val: 0.25, test: 0.25)
        }
        let bad = try scratch.write("g2/dataset.csv", "subject,filePath,channel,patient\ns1,a,ct,P1\ns1,b,mask,P2\ns2,c,ct,P2\n")
        assertIEError(.badInput, contains: ["g2/dataset.csv:3", "subject s1", "one value per subject"]) {
            _ = try Splits.byGroup(Dataset.load(path: bad), column: "patient", train: 0.5, val: 0.25, test: 0.25)
        }
    }

    func testSplitFromConfigAndWrite() throws {
        let scratch = try Scratch()
        let csv = try scratch.write("d/dataset.csv", datasetText(subjects: (1...12).map { "\($0)" }))
        let dataset = try Dataset.load(path: csv)
        let config = try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(
            ["--proportion_train=0.6", "--proportion_val=0.2", "--proportion_test=0.2",
             "--number_of_cross_validation_splits=3", "--cross_validation_split_index=1"]))
        let split = try Splits.split(dataset, config: config)
        let base = try Splits.byProportions(dataset, train: 0.6, val: 0.2, test: 0.2)
        XCTAssertEqual(split, try Splits.crossValidationFold(base, dataset: dataset, folds: 3, index: 1))
        try Splits.write(split, dataset: dataset, to: scratch.root + "/out")
        let train = try CSVTable.read(path: scratch.root + "/out/train_dataset.csv")
        XCTAssertEqual(train.header, ["subject", "filePath", "channel"])
        XCTAssertEqual(Set(train.rows.map { $0[0] }), Set(split.train))
        XCTAssertEqual(train.rows.count, 2 * split.train.count)
        let all = try CSVTable.read(path: scratch.root + "/out/dataset.csv")
        XCTAssertEqual(all.rows.count, dataset.table.rows.count)
        // Rows are dataset.csv's with absolute file paths (the copies live elsewhere than the images).
        for (written, original) in zip(all.rows, dataset.table.rows) {
            XCTAssertEqual(written[0], original[0]); XCTAssertEqual(written[2], original[2])
            XCTAssertEqual(written[1], scratch.root + "/d/" + original[1])
        }
        let readBack = try Splits.read(from: scratch.root + "/out")
        XCTAssertEqual(readBack.train?.subjectsInFileOrder.sorted(), split.train.sorted())
        XCTAssertEqual(readBack.val?.subjectsInFileOrder.sorted(), split.val.sorted())
        XCTAssertEqual(readBack.test?.subjectsInFileOrder.sorted(), split.test.sorted())
        XCTAssertEqual(readBack.all.subjectsInFileOrder, dataset.subjectsInFileOrder)
        let testRows = try CSVTable.read(path: scratch.root + "/out/test_dataset.csv")
        XCTAssertEqual(Set(testRows.rows.map { $0[0] }), Set(split.test))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.root + "/out").filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no temporary files left behind")
    }

    func testInstitutionSplitOptions() throws {
        let scratch = try Scratch()
        let ids = (0..<12).map { "s\($0)" }
        let inst = (0..<12).map { ["A", "B", "C"][$0 % 3] }
        let csv = try scratch.write("i/dataset.csv", datasetText(subjects: ids, institutions: inst))
        let dataset = try Dataset.load(path: csv)
        let split = try Splits.byInstitution(dataset, train: 0.5, val: 0.25, test: 0.25, exclude: ["C"], testOnlyInstitutions: ["B"],
                                             testOnlySubjects: ["s0"])
        let inB = ids.indices.filter { inst[$0] == "B" }.map { ids[$0] }
        let inC = Set(ids.indices.filter { inst[$0] == "C" }.map { ids[$0] })
        XCTAssertTrue(Set(inB).isSubset(of: Set(split.test)))
        XCTAssertTrue(split.test.contains("s0"))
        XCTAssertTrue(inC.isDisjoint(with: split.train + split.val + split.test))
        // Institution A without s0, shuffled with a fresh Random(0), then the range rule.
        var a = ids.indices.filter { inst[$0] == "A" }.map { ids[$0] }
        var rng = PythonRandom(seed: 0)
        rng.shuffle(&a)
        a.removeAll { $0 == "s0" }
        let r = try Splits.subjectRanges(population: a, proportionTrain: 0.5, proportionTest: 0.25, proportionVal: 0.25)
        XCTAssertEqual(Set(split.train), r.train)
        XCTAssertEqual(Set(split.val), r.val)
        XCTAssertEqual(Set(split.test), r.test.union(inB).union(["s0"]))
        assertIEError(.usage, contains: ["exclude_institutions", "Z"]) { _ = try Splits.byInstitution(dataset, train: 0.5, val: 0.25, test: 0.25, exclude: ["Z"]) }
        let gap = try scratch.write("gap/dataset.csv", "subject,filePath,channel,institutionId\na,x,ct,A\nb,x,ct,\nc,x,ct,A\n")
        assertIEError(.badInput, contains: ["gap/dataset.csv:3:", "empty institutionId"]) {
            _ = try Splits.byInstitution(Dataset.load(path: gap), train: 0.5, val: 0.25, test: 0.25)
        }
    }

    func testSubjectIdsForTestOnly() throws {
        let scratch = try Scratch()
        let ids = (0..<30).map { "\($0)" }
        let csv = try scratch.write("d/dataset.csv", datasetText(subjects: ids))
        let dataset = try Dataset.load(path: csv)
        let testOnly = (0..<5).map { "\($0)" }
        let split = try Splits.byProportions(dataset, train: 0.9, val: 0.1, test: 0.0, testOnly: testOnly)
        XCTAssertEqual(split.test, testOnly)
        // The others follow the shuffle-then-filter rule.
        var shuffled = ids
        var rng = PythonRandom(seed: 0)
        rng.shuffle(&shuffled)
        shuffled.removeAll { testOnly.contains($0) }
        let r = try Splits.subjectRanges(population: shuffled, proportionTrain: 0.9, proportionTest: 0, proportionVal: 0.1)
        XCTAssertEqual(Set(split.train), r.train)
        XCTAssertEqual(Set(split.val), r.val)
    }
}

import Foundation
import IECore
import IEConfig

/// Subjects of train, validation and test, each in the order InnerEye's split tables list them: dataset
/// first-appearance order (institution by institution for `byInstitution`). k-fold starts from train + val in this order.
public struct DatasetSplit: Sendable, Equatable {
    public var train: [String]
    public var val: [String]
    public var test: [String]

    public init(train: [String], val: [String], test: [String]) {
        self.train = train
        self.val = val
        self.test = test
    }
}

/// The split methods of SPEC §3, with InnerEye's exact subject selection.
public enum Splits {
    /// InnerEye's `get_subject_ranges_for_splits`: first key train, second test, third val; of the remaining R
    /// keys, train gets the first ceil(R*p_train), test the ceil(R*p_test) keys starting at index len(train set)
    /// (i.e. one key is skipped), val the rest. With p_test == 0 the second key rejoins the remaining keys.
    public static func subjectRanges(population: [String], proportionTrain: Double, proportionTest: Double,
                                     proportionVal: Double) throws -> (train: Set<String>, test: Set<String>, val: Set<String>) {
        try checkProportions(train: proportionTrain, val: proportionVal, test: proportionTest)
        var train = Set(population.prefix(1))
        var test = Set(population.dropFirst(1).prefix(1))
        var val = Set(population.dropFirst(2).prefix(1))
        var remaining = Array(population.dropFirst(3))
        if proportionTest == 0 {
            remaining = Array(test) + remaining
            test = []
        }
        let r = Double(remaining.count)
        let trainCount = Int((r * proportionTrain).rounded(.up))
        train.formUnion(remaining.prefix(trainCount))
        if !test.isEmpty {
            let start = min(train.count, remaining.count)
            let end = min(train.count + Int((r * proportionTest).rounded(.up)), remaining.count)
            if start < end { test.formUnion(remaining[start..<end]) }
        }
        val.formUnion(Set(remaining).subtracting(train.union(test)))
        return (train, test, val)
    }

    /// InnerEye's proportion checks: the sum is ~1 (numpy isclose), test in [0, 1), train and val in (0, 1).
    public static func checkProportions(train: Double, val: Double, test: Double) throws {
        let sum = train + val + test
        guard abs(sum - 1) <= 1e-8 + 1e-5 else {
            throw IEError.usage("proportion_train (\(train)) + proportion_val (\(val)) + proportion_test (\(test)) = \(sum), expected a sum of 1")
        }
        guard test >= 0 && test < 1 else { throw IEError.usage("proportion_test is \(test), expected a value in [0, 1)") }
        guard train > 0 && train < 1 && val > 0 && val < 1 else {
            throw IEError.usage("proportion_train (\(train)) and proportion_val (\(val)) must lie in (0, 1)")
        }
    }

    /// InnerEye's `from_proportions`: shuffle the unique keys (first-appearance order) with
    /// `random.Random(seed).shuffle`, then the range rule. `testOnly` keys are removed after shuffling and added
    /// to the test set (InnerEye's subject_ids_for_test_only).
    public static func proportional(keys: [String], proportionTrain: Double, proportionVal: Double, proportionTest: Double,
                                    testOnly: Set<String> = [], seed: UInt64 = 0) throws -> (train: Set<String>, test: Set<String>, val: Set<String>) {
        var shuffled = keys
        var rng = PythonRandom(seed: seed)
        rng.shuffle(&shuffled)
        shuffled.removeAll { testOnly.contains($0) }
        var ranges = try subjectRanges(population: shuffled, proportionTrain: proportionTrain,
                                       proportionTest: proportionTest, proportionVal: proportionVal)
        ranges.test.formUnion(testOnly.intersection(keys))
        return ranges
    }

    /// Orders the three sets by `order` (default: first appearance in the dataset) and checks SPEC §3's rules.
    static func makeSplit(_ dataset: Dataset, train: Set<String>, val: Set<String>, test: Set<String>,
                          order: [String]? = nil) throws -> DatasetSplit {
        let order = order ?? dataset.subjectsInFileOrder
        let split = DatasetSplit(train: order.filter(train.contains), val: order.filter(val.contains), test: order.filter(test.contains))
        try check(split, dataset: dataset)
        return split
    }

    public static func check(_ split: DatasetSplit, dataset: Dataset) throws {
        let t = Set(split.train), v = Set(split.val), s = Set(split.test)
        if let both = t.intersection(v).union(t.intersection(s)).union(v.intersection(s)).sorted().first {
            throw IEError.badInput("subject \(both) falls into two splits, expected train, val and test to be disjoint", file: dataset.path)
        }
        if split.train.isEmpty || split.val.isEmpty {
            throw IEError.badInput("the split has \(split.train.count) training and \(split.val.count) validation subjects (of \(dataset.subjectsInFileOrder.count)), expected both to be non-empty", file: dataset.path)
        }
    }

    /// Explicit subject lists.
    public static func explicit(_ dataset: Dataset, train: [String], val: [String], test: [String]) throws -> DatasetSplit {
        let known = Set(dataset.subjectsInFileOrder)
        for (name, list) in [("train_subjects", train), ("val_subjects", val), ("test_subjects", test)] {
            if let missing = list.first(where: { !known.contains($0) }) {
                let hint = closestMatch(missing, in: dataset.subjectsInFileOrder).map { " (closest: \($0))" } ?? ""
                throw IEError.usage("\(name) names subject \(missing)\(hint), which is not in \(dataset.path), expected subjects of the dataset")
            }
        }
        return try makeSplit(dataset, train: Set(train), val: Set(val), test: Set(test))
    }

    /// Proportional split of the dataset's subjects, exactly as InnerEye's `DatasetSplits.from_proportions`.
    public static func byProportions(_ dataset: Dataset, train: Double, val: Double, test: Double,
                                     testOnly: [String] = [], seed: UInt64 = 0) throws -> DatasetSplit {
        try checkTestOnly(testOnly, dataset: dataset)
        let r = try proportional(keys: dataset.subjectsInFileOrder, proportionTrain: train, proportionVal: val,
                                 proportionTest: test, testOnly: Set(testOnly), seed: seed)
        return try makeSplit(dataset, train: r.train, val: r.val, test: r.test)
    }

    static func checkTestOnly(_ testOnly: [String], dataset: Dataset) throws {
        let known = Set(dataset.subjectsInFileOrder)
        if let missing = testOnly.first(where: { !known.contains($0) }) {
            throw IEError.usage("subject_ids_for_test_only names subject \(missing), which is not in \(dataset.path), expected subjects of the dataset")
        }
    }

    /// InnerEye's `from_institutions`: the proportional rule within each institutionId (each with a fresh
    /// `Random(seed)`), excluded institutions dropped, test-only institutions and subjects sent to test.
    public static func byInstitution(_ dataset: Dataset, train: Double, val: Double, test: Double,
                                     exclude: [String] = [], testOnlyInstitutions: [String] = [], testOnlySubjects: [String] = [],
                                     seed: UInt64 = 0) throws -> DatasetSplit {
        guard dataset.table.columnIndex("institutionId") != nil else {
            throw IEError.badInput("split_by_institution needs an institutionId column, expected it in the header", file: dataset.path, line: 1)
        }
        guard dataset.subjectsInFileOrder.count >= 3 else {
            throw IEError.badInput("the dataset has \(dataset.subjectsInFileOrder.count) subjects, expected at least 3 for non-empty train/val/test sets", file: dataset.path)
        }
        try checkTestOnly(testOnlySubjects, dataset: dataset)
        var institutions: [String] = []
        var subjectsBy: [String: [String]] = [:]
        for row in dataset.rows {
            // InnerEye (pandas groupby) silently dropped rows without an institution; we refuse them instead.
            guard let inst = row.institutionId, !inst.isEmpty else {
                throw IEError.badInput("subject \(row.subject) has an empty institutionId, expected one for split_by_institution", file: dataset.path, line: row.line)
            }
            if subjectsBy[inst] == nil { institutions.append(inst) }
            if !(subjectsBy[inst]?.contains(row.subject) ?? false) { subjectsBy[inst, default: []].append(row.subject) }
        }
        for (name, list) in [("exclude_institutions", exclude), ("institutions_for_test_only", testOnlyInstitutions)] {
            if let bad = list.first(where: { subjectsBy[$0] == nil }) {
                throw IEError.usage("\(name) names institution \(bad), which is not in \(dataset.path), expected one of \(institutions.joined(separator: ", "))")
            }
        }
        // pandas' groupby visits institutions in sorted key order (numeric when the column is numeric) and
        // concatenates their rows, so InnerEye's split tables list subjects institution by institution. That
        // order matters for a later k-fold split.
        let numeric = institutions.allSatisfy { Double($0) != nil }
        institutions.sort { numeric ? Double($0)! < Double($1)! : $0 < $1 }
        var trainSet = Set<String>(), valSet = Set<String>(), testSet = Set<String>()
        let testOnly = Set(testOnlySubjects)
        for inst in institutions where !exclude.contains(inst) {
            let subjects = subjectsBy[inst]!
            if testOnlyInstitutions.contains(inst) {
                testSet.formUnion(subjects)
                continue
            }
            let r = try proportional(keys: subjects, proportionTrain: train, proportionVal: val, proportionTest: test,
                                     testOnly: testOnly, seed: seed)
            trainSet.formUnion(r.train); valSet.formUnion(r.val); testSet.formUnion(r.test)
        }
        var order: [String] = []
        var seen = Set<String>()
        for inst in institutions {
            for s in subjectsBy[inst]! where seen.insert(s).inserted { order.append(s) }
        }
        return try makeSplit(dataset, train: trainSet, val: valSet, test: testSet, order: order)
    }

    /// Proportional split over the values of `column` (groups stay together): the unique group values in
    /// first-appearance order are shuffled and cut as subjects would be. Each subject must have one group value.
    public static func byGroup(_ dataset: Dataset, column: String, train: Double, val: Double, test: Double,
                               seed: UInt64 = 0) throws -> DatasetSplit {
        let groupOf = try groups(dataset, column: column)
        var groupsInOrder: [String] = []
        var seen = Set<String>()
        for s in dataset.subjectsInFileOrder where !seen.contains(groupOf[s]!) {
            seen.insert(groupOf[s]!); groupsInOrder.append(groupOf[s]!)
        }
        let r = try proportional(keys: groupsInOrder, proportionTrain: train, proportionVal: val, proportionTest: test, seed: seed)
        let subjects = dataset.subjectsInFileOrder
        return try makeSplit(dataset, train: Set(subjects.filter { r.train.contains(groupOf[$0]!) }),
                             val: Set(subjects.filter { r.val.contains(groupOf[$0]!) }),
                             test: Set(subjects.filter { r.test.contains(groupOf[$0]!) }))
    }

    /// subject -> group value; a subject whose rows disagree is an error naming the line.
    static func groups(_ dataset: Dataset, column: String) throws -> [String: String] {
        guard let c = dataset.table.columnIndex(column) else {
            let hint = closestMatch(column, in: dataset.table.header).map { " (closest: \($0))" } ?? ""
            throw IEError.badInput("group_column '\(column)' is not a column\(hint), expected it in the header", file: dataset.path, line: 1)
        }
        var groupOf: [String: String] = [:]
        for row in dataset.rows {
            let g = dataset.table.rows[row.rowIndex][c].trimmingCharacters(in: .whitespaces)
            if let previous = groupOf[row.subject], previous != g {
                throw IEError.badInput("subject \(row.subject) has \(column) '\(g)' here but '\(previous)' before, expected one value per subject", file: dataset.path, line: row.line)
            }
            groupOf[row.subject] = g
        }
        return groupOf
    }

    /// InnerEye's `get_k_fold_cross_validation_splits` on train + val (in that order); fold `index` validates on
    /// its chunk and trains on the rest; the test set is unchanged.
    /// Without `groupColumn`: the unique subjects (first-appearance order) cut by scikit-learn
    /// `KFold(k, shuffle=True, random_state=seed)`.
    /// With `groupColumn`: scikit-learn `GroupKFold(k)` (see `groupKFoldSplits`; the seed plays no part), whose
    /// samples are InnerEye's table rows, not subjects: a group weighs as many as its subjects' dataset.csv rows
    /// (one per channel), and groups of equal weight are taken in numpy 1.19's argsort order.
    public static func crossValidationFold(_ split: DatasetSplit, dataset: Dataset, folds k: Int, index: Int,
                                           groupColumn: String? = nil, seed: UInt32 = 0) throws -> DatasetSplit {
        guard k >= 2, index >= 0, index < k else {
            throw IEError.usage("cross-validation fold \(index) of \(k), expected number_of_cross_validation_splits >= 2 and 0 <= cross_validation_split_index < it")
        }
        let pool = split.train + split.val
        let valSubjects: Set<String>
        if let groupColumn {
            let groupOf = try groups(dataset, column: groupColumn)
            // One sample per dataset row, as InnerEye passes every row of its train + val tables to GroupKFold.
            var rowCount: [String: Int] = [:]
            for row in dataset.rows { rowCount[row.subject, default: 0] += 1 }
            var sampleSubjects: [String] = [], sampleGroups: [String] = []
            for subject in pool {
                let group = groupOf[subject] ?? ""
                for _ in 0..<(rowCount[subject] ?? 0) {
                    sampleSubjects.append(subject)
                    sampleGroups.append(group)
                }
            }
            let groupCount = Set(sampleGroups).count
            guard groupCount >= k else {
                throw IEError.badInput("\(groupCount) training+validation groups cannot make \(k) folds, expected at least \(k)", file: dataset.path)
            }
            let fold = groupKFoldSplits(groups: sampleGroups, folds: k)[index]
            valSubjects = Set(fold.validation.map { sampleSubjects[$0] })
        } else {
            guard pool.count >= k else {
                throw IEError.badInput("\(pool.count) training+validation subjects cannot make \(k) folds, expected at least \(k)", file: dataset.path)
            }
            let fold = kFoldSplits(count: pool.count, folds: k, seed: seed)[index]
            valSubjects = Set(fold.validation.map { pool[$0] })
        }
        // InnerEye filters its train + val table by the fold's subject ids, so both keep that table's order.
        let result = DatasetSplit(train: pool.filter { !valSubjects.contains($0) }, val: pool.filter(valSubjects.contains),
                                  test: split.test)
        try check(result, dataset: dataset)
        return result
    }

    /// The split a config asks for: explicit lists if any is set, else per institution, else by group, else
    /// proportional; then the cross-validation fold when number_of_cross_validation_splits > 1 and
    /// cross_validation_split_index >= 0 (for a parent, index -1, every fold is checked and the base returned).
    public static func split(_ dataset: Dataset, config: ModelConfig) throws -> DatasetSplit {
        var base: DatasetSplit
        if config.trainSubjects != nil || config.valSubjects != nil || config.testSubjects != nil {
            base = try explicit(dataset, train: config.trainSubjects ?? [], val: config.valSubjects ?? [], test: config.testSubjects ?? [])
        } else if config.splitByInstitution {
            base = try byInstitution(dataset, train: config.proportionTrain, val: config.proportionVal, test: config.proportionTest,
                                     exclude: config.excludeInstitutions, testOnlyInstitutions: config.institutionsForTestOnly,
                                     testOnlySubjects: config.subjectIdsForTestOnly)
        } else if let column = config.groupColumn {
            base = try byGroup(dataset, column: column, train: config.proportionTrain, val: config.proportionVal, test: config.proportionTest)
        } else {
            base = try byProportions(dataset, train: config.proportionTrain, val: config.proportionVal, test: config.proportionTest,
                                     testOnly: config.subjectIdsForTestOnly)
        }
        if config.performCrossValidation && config.crossValidationSplitIndex >= 0 {
            base = try crossValidationFold(base, dataset: dataset, folds: config.numberOfCrossValidationSplits,
                                           index: config.crossValidationSplitIndex, groupColumn: config.groupColumn)
        } else if config.performCrossValidation {
            // A cross-validation parent: every fold its children will make must be possible now, not when
            // `ie-crossval folds` runs (a parent that can never run is worse than an error here).
            for index in 0..<config.numberOfCrossValidationSplits {
                _ = try crossValidationFold(base, dataset: dataset, folds: config.numberOfCrossValidationSplits,
                                            index: index, groupColumn: config.groupColumn)
            }
        }
        return base
    }

    /// Writes dataset.csv, train_dataset.csv, val_dataset.csv and test_dataset.csv into `folder`, atomically.
    /// The rows are dataset.csv's with filePath made absolute (the copies live in another folder than the images,
    /// and SPEC §2 resolves relative paths against the CSV's own folder), so each file loads with `Dataset.load`.
    /// dataset.csv is written last: its presence means the split is complete.
    public static func write(_ split: DatasetSplit, dataset: Dataset, to folder: String) throws {
        try AtomicFile.createFolder(folder, for: folder)
        let layout = RunLayout(outputs: folder)
        for (name, subjects) in [("train", split.train), ("val", split.val), ("test", split.test)] {
            try AtomicFile.write(dataset.table(subjects: Set(subjects), absolutePaths: true).serialized(), to: layout.splitCSV(name))
        }
        try AtomicFile.write(dataset.table(absolutePaths: true).serialized(), to: layout.datasetCSV)
    }

    /// Reads the split files that `write` produced in `folder` (e.g. a run's outputs/).
    public static func read(from folder: String) throws -> (all: Dataset, train: Dataset?, val: Dataset?, test: Dataset?) {
        let layout = RunLayout(outputs: folder)
        func optional(_ name: String) throws -> Dataset? {
            let path = layout.splitCSV(name)
            let table = try CSVTable.read(path: path)
            return table.rows.isEmpty ? nil : try Dataset(table: table, path: path)
        }
        return (try Dataset.load(path: layout.datasetCSV), try optional("train"), try optional("val"), try optional("test"))
    }
}

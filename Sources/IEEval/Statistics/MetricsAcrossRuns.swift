import Foundation
import IECore

/// MetricsAcrossAllRuns.csv (SPEC §8): the metrics rows of several runs and modes, with seriesId and
/// institutionId joined from each run's dataset.csv, Dice multiplied by 100, and `split` and `mode` columns,
/// as InnerEye's convert_rows_for_comparisons + pandas to_csv wrote it.
public enum MetricsAcrossRuns {
    public struct Input: Sendable {
        /// Value of the `split` column (fold index, ENSEMBLE, CURRENT, a baseline name).
        public var split: String
        /// Value of the `mode` column (Test, Val).
        public var mode: String
        public var metrics: MetricsFile
        /// The run's dataset.csv, or nil to leave seriesId and institutionId empty.
        public var dataset: CSVTable?

        public init(split: String, mode: String, metrics: MetricsFile, dataset: CSVTable?) {
            self.split = split
            self.mode = mode
            self.metrics = metrics
            self.dataset = dataset
        }
    }

    public struct Row: Sendable {
        /// pandas' row label after InnerEye's merge with dataset.csv (each metrics row repeated once per
        /// dataset row of its subject, duplicates then dropped): the position of the first copy.
        public var index: Int
        public var record: MetricsRecord
    }

    static func sameSubject(_ a: String, _ b: String) -> Bool {
        if let x = Int(a), let y = Int(b) { return x == y }
        return a == b
    }

    /// Joins one input's rows with its dataset.csv; records get split, mode, seriesId and institutionId and
    /// Dice x 100.
    public static func rows(_ input: Input) throws -> [Row] {
        var subjectRows: [String: [Int]] = [:]
        var subjectColumn: Int?, seriesColumn: Int?, institutionColumn: Int?
        if let dataset = input.dataset {
            guard let s = dataset.columnIndex("subject") else {
                throw IEError.badInput("missing column subject, expected a dataset.csv", file: dataset.source, line: 1)
            }
            subjectColumn = s
            seriesColumn = dataset.columnIndex("seriesId")
            institutionColumn = dataset.columnIndex("institutionId")
            for (i, row) in dataset.rows.enumerated() where s < row.count {
                let key = Int(row[s]).map(String.init) ?? row[s]
                subjectRows[key, default: []].append(i)
            }
        }
        var result: [Row] = []
        var position = 0
        for var record in input.metrics.records {
            record.split = input.split
            record.mode = input.mode
            record.dice *= 100
            if let dataset = input.dataset, subjectColumn != nil {
                let key = Int(record.patient).map(String.init) ?? record.patient
                guard let matches = subjectRows[key], !matches.isEmpty else {
                    throw IEError.badInput("subject \(record.patient) of the metrics is not in the dataset, expected "
                                           + "every Patient to be a subject of \(dataset.source)",
                                           file: input.metrics.source, line: record.line)
                }
                func field(_ column: Int?, _ row: Int) -> String {
                    guard let column, column < dataset.rows[row].count else { return "" }
                    return dataset.rows[row][column]
                }
                // Distinct (seriesId, institutionId) among the subject's rows: InnerEye required exactly one.
                var distinct: [(String, String)] = []
                for m in matches {
                    let pair = (field(seriesColumn, m), field(institutionColumn, m))
                    if !distinct.contains(where: { $0 == pair }) { distinct.append(pair) }
                }
                if distinct.count > 1 {
                    throw IEError.badInput("subject \(record.patient) has \(distinct.count) different seriesId/"
                                           + "institutionId values, expected one per subject", file: dataset.source)
                }
                record.seriesId = distinct[0].0
                record.institutionId = distinct[0].1
                result.append(Row(index: position, record: record))
                position += matches.count
            } else {
                record.seriesId = ""
                record.institutionId = ""
                result.append(Row(index: position, record: record))
                position += 1
            }
        }
        return result
    }

    /// The CSV text. Columns: [index,] Patient, Structure, Dice, then HausdorffDistance_mm and MeanDistance_mm
    /// when every input has them, seriesId, institutionId, split, mode. `withIndex` writes pandas' unnamed
    /// row-label column first (InnerEye's baseline comparison wrote it; its cross-validation one did not).
    public static func csv(_ inputs: [Input], withIndex: Bool) throws -> String {
        let hasHausdorff = inputs.allSatisfy { $0.metrics.hasHausdorffDistance }
        let hasMeanDistance = inputs.allSatisfy { $0.metrics.hasMeanDistance }
        var header = ["Patient", "Structure", "Dice"]
        if hasHausdorff { header.append("HausdorffDistance_mm") }
        if hasMeanDistance { header.append("MeanDistance_mm") }
        header += ["seriesId", "institutionId", "split", "mode"]
        if withIndex { header.insert("", at: 0) }
        var out = header.joined(separator: ",") + "\n"
        for input in inputs {
            let rows = try rows(input)
            // pandas reads an all-integer Patient column as int64 and writes it back without leading zeros.
            let numericPatients = rows.allSatisfy { Int($0.record.patient) != nil }
            for row in rows {
                let r = row.record
                var fields: [String] = []
                if withIndex { fields.append(String(row.index)) }
                fields.append(numericPatients ? String(Int(r.patient)!) : r.patient)
                fields.append(r.structure)
                fields.append(pandasFloat(r.dice))
                if hasHausdorff { fields.append(pandasFloat(r.hausdorffDistance)) }
                if hasMeanDistance { fields.append(pandasFloat(r.meanDistance)) }
                fields += [r.seriesId ?? "", r.institutionId ?? "", r.split ?? "", r.mode ?? ""]
                out += fields.map(csvQuote).joined(separator: ",") + "\n"
            }
        }
        return out
    }

    /// pandas to_csv without float_format: repr of the float, NaN as an empty field.
    static func pandasFloat(_ v: Double) -> String { v.isNaN ? "" : pythonFloatRepr(v) }

    /// Inputs for a list of runs (run folders, outputs folders or CrossValResults/<k> folders): their
    /// `epoch_NNN/Test` and `epoch_NNN/Val` metrics.csv (all Test first, then all Val, as InnerEye concatenated
    /// them), with `dataset.csv` from the folder itself or `datasetOverride`.
    public static func inputs(runs: [(name: String, path: String)], epoch: Int? = nil,
                              modes: [String] = ["Test", "Val"], datasetOverride: String? = nil) throws -> [Input] {
        var result: [Input] = []
        // resultsFolder: the folder holding Test/ and Val/ (an epoch_NNN folder, or the folder itself in
        // InnerEye's downloaded cross-validation trees).
        var resolved: [(name: String, resultsFolder: String, dataset: CSVTable?)] = []
        for run in runs {
            let layout = RunLayout.locate(run.path)
            let outputs = layout.outputs
            let resultsFolder: String
            if let e = epoch ?? EpochChoice.bestEpoch(outputs) {
                resultsFolder = layout.epochFolder(epoch: e)
            } else if modes.contains(where: { FileManager.default.fileExists(atPath: "\(outputs)/\($0)/\(RunLayout.metricsFileName)") }) {
                resultsFolder = outputs
            } else {
                throw IEError.badInput("no epoch_NNN folder, expected a run folder with test results", file: outputs)
            }
            let datasetPath = datasetOverride ?? layout.datasetCSV
            let dataset = FileManager.default.fileExists(atPath: datasetPath) ? try CSVTable.read(path: datasetPath) : nil
            resolved.append((run.name, resultsFolder, dataset))
        }
        for mode in modes {
            for run in resolved {
                let path = "\(run.resultsFolder)/\(mode)/\(RunLayout.metricsFileName)"
                guard FileManager.default.fileExists(atPath: path) else { continue }
                result.append(Input(split: run.name, mode: mode, metrics: try MetricsFile.read(path: path),
                                    dataset: run.dataset))
            }
        }
        if result.isEmpty {
            throw IEError.badInput("no metrics.csv found under epoch folders of \(runs.map { $0.path }.joined(separator: ", ")), "
                                   + "expected epoch_NNN/Test/metrics.csv or epoch_NNN/Val/metrics.csv")
        }
        return result
    }
}

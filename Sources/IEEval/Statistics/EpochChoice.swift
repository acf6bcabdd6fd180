import Foundation
import IECore

/// Which epoch_NNN folder of an outputs folder a report or comparison uses (paths: IECore.RunLayout).
public enum EpochChoice {
    /// Per-epoch mean validation Dice from `Val/epoch_metrics.csv` (column Dice/AverageAcrossStructures).
    public static func validationDice(_ outputs: String) -> [(epoch: Int, dice: Double)]? {
        let path = RunLayout(outputs: outputs).epochMetrics(mode: "Val")
        guard FileManager.default.fileExists(atPath: path), let table = try? CSVTable.read(path: path),
              let e = table.columnIndex("epoch"), let d = table.columnIndex("Dice/AverageAcrossStructures") else {
            return nil
        }
        return table.rows.compactMap { row in
            guard e < row.count, d < row.count, let epochValue = Double(row[e]), let dice = Double(row[d]) else { return nil }
            return (Int(epochValue), dice)
        }
    }

    /// The epoch a report or comparison uses: among the epoch_NNN folders, the one with the best mean
    /// validation Dice when Val/epoch_metrics.csv has it, else the highest. Nil when there is no epoch folder.
    public static func bestEpoch(_ outputs: String) -> Int? {
        let folders = RunLayout(outputs: outputs).epochFolders()
        guard let highest = folders.last else { return nil }
        guard let dice = validationDice(outputs), !dice.isEmpty else { return highest }
        let available = Set(folders)
        // Epoch numbers in epoch_metrics.csv may count from 0 while folders count from 1: use whichever
        // numbering names existing folders.
        for offset in [0, 1] {
            let candidates = dice.filter { available.contains($0.epoch + offset) && !$0.dice.isNaN }
            if let best = candidates.max(by: { $0.dice < $1.dice || ($0.dice == $1.dice && $0.epoch > $1.epoch) }) {
                return best.epoch + offset
            }
        }
        return highest
    }
}

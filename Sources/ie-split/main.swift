import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IEData
import IERun

struct Split: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-split",
        abstract: "Split a dataset.csv into train/val/test subjects exactly as InnerEye did (SPEC §3).",
        discussion: """
            Writes dataset.csv, train_dataset.csv, val_dataset.csv and test_dataset.csv
            (rows of the dataset, with filePath made absolute). Every subject must have a
            row for each channel the config names; --check also reads every image and
            applies all dataset checks of SPEC §2.

            The method comes from the model config or --<param>=value overrides: explicit
            train_subjects/val_subjects/test_subjects; else split_by_institution; else
            group_column; else the proportions proportion_train/val/test (InnerEye's
            random.Random(0) shuffle and range rule). With
            --number_of_cross_validation_splits=N --cross_validation_split_index=k, fold k
            of scikit-learn's KFold(N, shuffle=True, random_state=0) over train+val
            replaces train and val; test is unchanged.

            With --model and no --output_folder/--run_dir, a new run is created under
            runs_dir and its folder is printed on stdout (the files go to <run>/outputs/).

            Examples:
              ie-split --model=HelloWorld
              ie-split --model=Prostate --number_of_cross_validation_splits=5 \\
                  --cross_validation_split_index=2
              ie-split --dataset=data/dataset.csv --output_folder=splits \\
                  --proportion_train=0.7 --proportion_val=0.15 --proportion_test=0.15
              ie-split --dataset=data/dataset.csv --output_folder=splits \\
                  --train_subjects=1,2,3 --val_subjects=4 --test_subjects=5
              ie-split --model=Lung --run_dir=runs/main/main_20260101T120000Z_1a2b --check
              ie-split --model=HelloWorld --print_dataset_folder
              ie-split --model=HelloWorld --num_epochs=5 --print_config
            """)

    @Option(name: .customLong("model"), help: "Model config name (configs/segmentation/<NAME>.yml).")
    var model: String?
    @Option(name: .customLong("dataset"), help: "dataset.csv to split (default: the model's dataset).")
    var dataset: String?
    @Option(name: .customLong("output_folder"), help: "Folder for the four CSV files.")
    var outputFolder: String?
    @Option(name: .customLong("run_dir"), help: "Existing run directory; the files go to its outputs/.")
    var runDir: String?
    @Option(name: .customLong("experiment"), help: "Experiment of a new run (default: the git branch, else 'default').")
    var experiment: String?
    @Flag(name: .customLong("check"), help: "Also load every subject's images and run all SPEC §2 checks.")
    var check = false
    @Flag(name: .customLong("print_dataset_folder"), help: "Only print the model's dataset folder (used by ie.mk to create demo data).")
    var printDatasetFolder = false
    @Flag(name: .customLong("print_config"), help: "Only print every model parameter, its value and its source.")
    var printConfig = false
    @OptionGroup var settingsOption: SettingsOption
    @OptionGroup var log: LogOptions
    @OptionGroup var parameters: ModelParameters

    func validate() throws {
        guard model != nil || dataset != nil else {
            throw ValidationError("nothing to split, expected --model=NAME or --dataset=PATH (see --help)")
        }
        if (printDatasetFolder || printConfig) && model == nil {
            throw ValidationError("--print_dataset_folder and --print_config need --model=NAME")
        }
        if model == nil && outputFolder == nil && runDir == nil {
            throw ValidationError("--dataset needs --output_folder=DIR (or --run_dir=DIR, or --model to create a new run)")
        }
        if outputFolder != nil && runDir != nil {
            throw ValidationError("--output_folder and --run_dir both given, expected one of them")
        }
    }

    func run() throws {
        log.apply(tool: "ie-split")
        let parsed = try parameters.overrides()
        let settings = try Settings.locate(explicitPath: settingsOption.settings)
        let config: ModelConfig
        if let model {
            config = try ModelConfig.load(name: model, settings: settings, overrides: parsed, requireRunnable: dataset == nil)
            try RunDirectory.checkRecoveredFoldCount(config, settings: settings)
        } else {
            config = try ModelConfig.fromDefaults(overrides: parsed)
        }
        let cwd = FileManager.default.currentDirectoryPath
        if printDatasetFolder { return try StandardStream.write(try config.datasetFolder(settings: settings) + "\n") }
        if printConfig { return try StandardStream.write(ConfigListing.text(config)) }
        let csvPath = try dataset.map { resolve($0, against: cwd) } ?? config.datasetCSVPath(settings: settings)

        func splitInto(_ folder: String, config: ModelConfig) throws {
            let data = try Dataset.load(path: csvPath)
            // A classification/regression dataset: labels and feature columns checked now (file:line errors).
            if config.category.isScalar { _ = try ScalarDataset.load(path: csvPath, options: ScalarDatasetOptions(config: config)) }
            // Every subject needs a row per channel the config names (cheap: no image is read).
            let request = SubjectRequest(config: config)
            try data.checkChannels(imageChannels: request.imageChannels, groundTruthIds: request.groundTruthIds,
                                   maskId: request.maskId, allowIncompleteLabels: request.allowIncompleteLabels)
            if check {
                let progress = IECore.Progress("checking subjects", total: data.subjects.count)
                try data.validateSubjects(request) { progress.step($0) }
            }
            let split = try Splits.split(data, config: config)
            try Splits.write(split, dataset: data, to: folder)
            Log.info("ie-split: \(csvPath): train \(split.train.count), val \(split.val.count), test \(split.test.count) subjects -> \(folder)")
            Log.verbose("train: \(split.train.joined(separator: ","))\nval: \(split.val.joined(separator: ","))\ntest: \(split.test.joined(separator: ","))")
        }

        if let outputFolder {
            try splitInto(resolve(outputFolder, against: cwd), config: config)
            return
        }
        let run: RunDirectory
        let isNew = runDir == nil
        var splitConfig = config
        if let runDir {
            run = try RunDirectory.open(path: resolve(runDir, against: cwd))
            splitConfig = try existingRunConfig(run, settings: settings)
        } else {
            let name = try RunIDs.experimentName(explicit: experiment)
            run = try RunDirectory.create(runsDir: settings.runsDir, experiment: name, model: config.name)
        }
        try RunLock.process.withLock(run: run.path, tool: "ie-split") {
            try run.openLog(tool: "ie-split")
            defer { run.closeLog() }
            do {
                try splitInto(run.outputs, config: splitConfig)
                try run.update { $0.dataset = csvPath }
                // The overrides of a re-split are the run's from now on (ie-train --print_config shows them).
                if !isNew { try run.recordOverrides(try parameters.flags()) }
                if isNew {
                    try run.writeArguments(config)
                    try run.writeBuildInformation()
                }
            } catch {
                try? run.markFailed(error, tool: "ie-split")
                throw error
            }
        }
        Log.info("ie-split: run \(run.recoveryID)")
        if isNew { try StandardStream.write(run.path + "\n") }
    }
}

runCommand(Split.self, tool: "ie-split")

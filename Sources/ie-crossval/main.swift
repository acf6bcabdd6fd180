import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IECrossValidation
import IENet
import IERun
import IETrain

struct CrossVal: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-crossval",
        abstract: "Run a cross-validation parent: its fold runs, their training, the ensemble (SPEC §10).",
        discussion: """
        A run made by `ie-split --number_of_cross_validation_splits=N` is a parent;
        its folds are the runs <PARENT>_0 ... <PARENT>_<N-1>. Without a subcommand
        (`all`) the folds are created, trained and evaluated one after the other,
        then the ensemble step runs. `make -j2 crossval` does the same with the
        folds in parallel: `folds`, then ie-train and ie-evaluate per fold, then
        `ensemble`. ie-submit submits the same steps to Slurm. Model parameters given
        here are recorded in the parent (and copied to folds created later).

        Examples:
          RUN=$(ie-split --model=HelloWorld --number_of_cross_validation_splits=2)
          ie-crossval --run=$RUN
          ie-crossval folds --run=$RUN       # prints the fold folders
          ie-crossval ensemble --run=$RUN    # prints the ensemble's model id
        """,
        subcommands: [All.self, Folds.self, Ensemble.self], defaultSubcommand: All.self)
}

/// The options of every step, and the parent with its config, under the parent's lock.
struct ParentOptions: ParsableArguments {
    @OptionGroup var run: RunOption
    @OptionGroup var settings: SettingsOption
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var precision: PrecisionOption
    @OptionGroup var log: LogOptions
    @OptionGroup var parameters: ModelParameters

    /// `checksWeights`: the folds' weight sources are checked before the overrides are recorded (not for the
    /// ensemble step, which trains nothing).
    func withParent(checksWeights: Bool = true, _ body: (RunDirectory, ModelConfig, Settings) throws -> Void) throws {
        log.apply(tool: "ie-crossval")
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        let parent = try RunDirectory.open(path: run.path)
        let extra = try parameters.flags()
        // Checked before anything is written.
        let checked = try parent.modelConfig(settings: settingsValue, extra: extra)
        _ = try CrossValidation.foldCount(checked, run: parent)
        try RunDirectory.checkRecoveredFoldCount(checked, settings: settingsValue)
        if checksWeights { try CrossValidation.checkWeightSources(config: checked, run: parent, settings: settingsValue) }
        try RunLock.process.withLock(run: parent.path, tool: "ie-crossval") {
            let config = try parent.modelConfig(settings: settingsValue, extra: extra, record: true)
            EngineOptions.fromCommandLine(threads: threads.threads, precision: precision.precision)
            try body(parent, config, settingsValue)
        }
    }
}

struct All: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, train and evaluate every fold here, one after the other, then the ensemble step.",
        discussion: """
        A stop signal (TERM/USR1) ends it with status 143; the same command resumes
        the fold.

        Examples:
          ie-crossval all --run=$RUN --threads=2
          ie-crossval all --run=$RUN --num_epochs=5   # recorded in parent and folds
        """)
    @OptionGroup var options: ParentOptions

    func run() throws {
        try options.withParent { parent, config, settings in
            StopSignal.install()
            guard let model = try CrossValidationRun.runHere(parent: parent, config: config, settings: settings, tool: "ie-crossval") else {
                Foundation.exit(stoppedBySignalExitCode)
            }
            try StandardStream.write(model + "\n")
        }
    }
}

struct Folds: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create the fold runs (or open those that exist) and print their folders, one a line.",
        discussion: """
        Examples:
          ie-crossval folds --run=$RUN
          ie-crossval folds --run=$RUN | xargs -I{} ie-train --run={}
        """)
    @OptionGroup var options: ParentOptions

    func run() throws {
        try options.withParent { parent, config, settings in
            for fold in try CrossValidationRun.folds(parent: parent, config: config, settings: settings) {
                try StandardStream.write(fold.path + "\n")
            }
        }
    }
}

struct Ensemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "After every fold is trained and evaluated: the ensemble on Val and Test, CrossValResults/, "
            + "the report and the registered ensemble, whose model id is printed.",
        discussion: """
        Examples:
          ie-crossval ensemble --run=$RUN
          ie-models show "$(ie-crossval ensemble --run=$RUN)"
        """)
    @OptionGroup var options: ParentOptions

    func run() throws {
        try options.withParent(checksWeights: false) { parent, config, settings in
            let model = try CrossValidationRun.ensembleStep(parent: parent, config: config, settings: settings, tool: "ie-crossval")
            try StandardStream.write(model + "\n")
        }
    }
}

runCommand(CrossVal.self, tool: "ie-crossval")

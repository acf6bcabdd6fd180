import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IECrossValidation
import IENet
import IERun
import IETrain

// TEMPORARY stand-in for the pipeline helper's ie-evaluate (the agreed interface of docs/REDESIGN), so that the
// commands branch's Slurm scripts, make rules and tests run; the merge takes the pipeline branch's version.
struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-evaluate",
        abstract: "Evaluate a trained run: inference and metrics of its tested epochs on Val and Test.")

    @OptionGroup var runFolder: RunOption
    @Flag(name: .customLong("mark_completed"), help: "Mark the run completed when the evaluation succeeds.")
    var markCompleted = false
    @OptionGroup var settings: SettingsOption
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var log: LogOptions

    func run() throws {
        log.apply(tool: "ie-evaluate")
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        EngineOptions.fromCommandLine(threads: threads.threads)
        let runDir = try RunDirectory.open(path: runFolder.path)
        let config = try runDir.modelConfig(settings: settingsValue)
        let body = {
            try RunCompletion.evaluate(run: runDir, config: config, settings: settingsValue,
                                       baselines: RunIDs.parentAndIndex(of: runDir.id) == nil)
        }
        if markCompleted {
            try RunTraining.performFailingParent(run: runDir, tool: "ie-evaluate", keepStarted: true, body)
        } else {
            try runDir.performEvaluation(tool: "ie-evaluate", body)
        }
    }
}

runCommand(Evaluate.self, tool: "ie-evaluate")

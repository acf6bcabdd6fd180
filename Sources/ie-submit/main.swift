import ArgumentParser
import Foundation
import IECommand
import IECore
import IEConfig
import IERun
import IESlurm

struct Submit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-submit",
        abstract: "Submit a run to Slurm: training and evaluation as jobs (SPEC §10).",
        discussion: """
        A plain run (or a fold) is one job: ie-train, then ie-evaluate
        --mark_completed. A cross-validation parent is a job array of its folds
        (created here) plus an afterok job for `ie-crossval ensemble`. The jobs use
        the settings.yml slurm: block and --cluster=PARTITION (default: the config's
        cluster, else slurm.partition). With --num_nodes=K a job takes K whole
        nodes, trains with one MPI rank per node (srun --mpi=pmix, all cores of
        each node), then evaluates on one node. Jobs are requeued before their time
        limit and resume from the autosave. Model parameters given here are
        recorded in the run, as ie-train does. Job ids are printed on stdout.
        A Slurm tool that does not answer within $IE_SLURM_TIMEOUT seconds
        (default 120) is stopped and ie-submit fails naming it.

        Examples:
          RUN=$(ie-split --model=HelloWorld) && ie-submit --run=$RUN
          ie-submit --run=$RUN --cluster=debug --num_epochs=50
          ie-submit --run=$RUN --num_nodes=4
          ie-status $RUN
        """)

    @OptionGroup var runFolder: RunOption
    @Option(help: "Slurm partition (default: the config's cluster, else settings.yml slurm.partition).") var cluster: String?
    @OptionGroup var settings: SettingsOption
    @OptionGroup var threads: ThreadsOption
    @OptionGroup var log: LogOptions
    @OptionGroup var parameters: ModelParameters

    func run() throws {
        log.apply(tool: "ie-submit")
        let settingsValue = try Settings.locate(explicitPath: settings.settings)
        let runDir = try RunDirectory.open(path: runFolder.path)
        // `slurm` and `cluster` concern this submission only; the jobs never see them.
        let extra = try parameters.flags(excluding: ["slurm", "cluster"])
        let checked = try runDir.modelConfig(settings: settingsValue, extra: extra)
        try RunDirectory.checkRecoveredFoldCount(checked, settings: settingsValue)
        // Checked before anything is written.
        let options = try Submission.options(run: runDir, config: checked, settings: settingsValue, cluster: cluster)
        let invocation = SlurmSubmission.Invocation.current(settingsFile: settings.settings ?? settingsValue.file,
                                                           threads: threads.threads)
        try RunLock.process.withLock(run: runDir.path, tool: "ie-submit") {
            let config = try runDir.modelConfig(settings: settingsValue, extra: extra, record: true)
            try Submission.submit(run: runDir, config: config, settings: settingsValue, options: options, invocation: invocation)
        }
    }
}

runCommand(Submit.self, tool: "ie-submit")

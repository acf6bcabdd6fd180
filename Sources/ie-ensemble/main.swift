import ArgumentParser
import IECommand
import IEInferCommand

struct Ensemble: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-ensemble",
        abstract: "Segment with an ensemble: the mean of several models' softmax posteriors, post-processed once.",
        discussion: """
        Members are checkpoint files or registered model ids (a registered
        cross-validation ensemble brings all its folds). --aggregation=MajorityVote
        takes the most frequent label instead (posterior files stay the mean).
        Output layout as ie-infer: a run's epoch_NNN/<Mode>/<subject>/ or, for one
        image, --output_folder.

        Examples:
          ie-ensemble --run=$PARENT --epoch=10 --mode=Test \\
              --checkpoint=$RUN_0/outputs/checkpoints/epoch_010.ckpt \\
              --checkpoint=$RUN_1/outputs/checkpoints/epoch_010.ckpt
          ie-ensemble --model_id=HelloWorld:1 --model_id=HelloWorld:2 \\
              --image_file=ct.nii.gz --output_folder=out/
        """)

    enum Aggregation: String, ExpressibleByArgument, CaseIterable {
        case average = "Average", majorityVote = "MajorityVote"
    }

    @OptionGroup var options: SegmentationOptions
    @Option(help: "Average or MajorityVote (default: the config's ensemble_aggregation_type).") var aggregation: Aggregation?

    func validate() throws {
        guard options.hasMembers else { throw ValidationError("no members, expected --checkpoint or --model_id (repeat)") }
    }

    func run() throws {
        try options.perform(tool: "ie-ensemble",
                            extra: aggregation.map { ["--ensemble_aggregation_type=\($0.rawValue)"] } ?? [])
    }
}

runCommand(Ensemble.self, tool: "ie-ensemble")

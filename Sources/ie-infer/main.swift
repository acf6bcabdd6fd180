import ArgumentParser
import IECommand
import IEInferCommand

struct Infer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-infer",
        abstract: "Segment images with a trained model: a run's Val/Test split, or a single image.",
        discussion: """
        Sliding-window inference (patch test_crop_size, stride
        inference_stride_size), overlaps averaged (inference_tiling: Average;
        Gaussian weights with --gaussian; InnerEye's zero padding and centre
        stitching with --inference_tiling=InnerEye, for InnerEye's exact
        segmentation); then the mask, optional posterior smoothing, argmax and
        largest connected components. Per subject it writes segmentation.nii.gz,
        posterior_<class>.nii.gz, <class>.nii.gz and uncertainty.nii.gz with the
        geometry of the first image channel. Several --checkpoint or --model_id
        make an ensemble, as ie-ensemble.

        Examples:
          ie-infer --run=$RUN --mode=Val     # epochs_to_test, val subjects
          ie-infer --run=$RUN --epoch=20 --mode=Test --gaussian --tta
          ie-infer --run=$RUN --mode=Test --inference_tiling=InnerEye
          # A registered model, with the config it was trained with:
          ie-infer --model_id=HelloWorld:1 --image_file=ct.nii.gz \\
                   --output_folder=out/
          ie-infer --model=HelloWorld \\
                   --checkpoint=$RUN/outputs/checkpoints/epoch_010.ckpt \\
                   --image_file=ct.nii.gz --output_folder=out/
          # PyTorch/InnerEye weights, the architecture from the config:
          ie-infer --model=HelloWorld --feature_channels=2 \\
                   --checkpoint=innereye/epoch=9.ckpt \\
                   --image_file=ct.nii.gz --output_folder=out/
        """)

    @OptionGroup var options: SegmentationOptions

    func run() throws { try options.perform(tool: "ie-infer") }
}

runCommand(Infer.self, tool: "ie-infer")

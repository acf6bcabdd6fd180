import ArgumentParser
import Foundation
import IECommand
import IECore
import IEData

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-synth",
        abstract: "Write the seeded synthetic demo datasets (HelloWorld segmentation, HelloClassification).",
        discussion: """
        Each subject gets <folder>/<subject:03d>/{ct,region_a,region_b,mask}.nii.gz:
        an int16 CT (air -1000 HU, body 40 HU, noise sd 25 HU), region_a (an
        ellipsoid at +150 HU), region_b (a blob of 2-3 spheres at -80 HU; exclusive
        with region_a) and the body mask, spacing (Z,Y,X) = (3,1,1) mm. dataset.csv
        (columns subject,filePath,channel,seriesId,institutionId) is written last.
        The same seed gives byte-identical files.

        --kind=classification writes the HelloClassification data instead: grey
        images (--dimensions=2: <subject>.png of --size squared; 3: NIfTI volumes)
        where a bright disk or ball is present in about half of the subjects (label
        1, flipped for a --label_noise fraction), beside a distractor square; the
        columns location (0 left / 1 right half), age and scanner; 300 subjects
        unless --subjects is given.

        Examples:
          ie-synth --output_folder=datasets/HelloWorld
          ie-synth --output_folder=/tmp/tiny --subjects=4 --seed=7 --shape=16,48,48
          ie-synth --output_folder=datasets/HelloClassification --kind=classification
        """)

    @Option(name: .customLong("output_folder"), help: "Folder to write the dataset into (created if missing).")
    var outputFolder: String

    @Option(help: "segmentation (HelloWorld's CT-like volumes) or classification (HelloClassification's images).")
    var kind: String = "segmentation"

    @Option(help: "Number of subjects (default 16; 300 for classification).")
    var subjects: Int?

    @Option(help: "classification: 2 (PNG) or 3 (NIfTI) dimensions.")
    var dimensions: Int = 2

    @Option(help: "classification: image width and height in pixels.")
    var size: Int = 32

    @Option(name: .customLong("label_noise"), help: "classification: fraction of labels flipped.")
    var labelNoise: Double = 0.02

    @Option(help: "Random seed (same seed = same bytes).")
    var seed: UInt64 = 42

    @Option(help: "Image shape Z,Y,X.")
    var shape: String = "24,64,64"

    @OptionGroup var log: LogOptions

    func parsedShape() throws -> Shape3D {
        let parts = shape.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, let z = parts[0], let y = parts[1], let x = parts[2] else {
            throw ValidationError("--shape=\(shape) is invalid, expected three integers Z,Y,X such as 24,64,64")
        }
        return Shape3D(z, y, x)
    }

    func options() throws -> SyntheticDataset.Options {
        SyntheticDataset.Options(subjects: subjects ?? 16, seed: seed, shape: try parsedShape())
    }

    func classificationOptions() -> SyntheticClassificationDataset.Options {
        var options = SyntheticClassificationDataset.Options()
        options.subjects = subjects ?? 300
        (options.seed, options.dimensions, options.size, options.labelNoise) = (seed, dimensions, size, labelNoise)
        return options
    }

    func validate() throws {
        guard kind == "segmentation" || kind == "classification" else {
            throw ValidationError("--kind=\(kind) is unknown, expected segmentation or classification")
        }
        do {
            if kind == "classification" { return try SyntheticClassificationDataset.validate(classificationOptions()) }
            try SyntheticDataset.validate(try options())
        } catch let error as IEError {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        log.apply(tool: "ie-synth")
        if kind == "classification" {
            let options = classificationOptions()
            let csv = try SyntheticClassificationDataset.generate(into: outputFolder, options: options)
            Log.info("ie-synth: wrote \(options.subjects) subjects, dataset file \(csv)")
            return
        }
        let options = try options()
        let csv = try SyntheticDataset.generate(into: outputFolder, options: options)
        Log.info("ie-synth: wrote \(options.subjects) subjects, dataset file \(csv)")
    }
}

runCommand(Synth.self, tool: "ie-synth")

import ArgumentParser
import Foundation
import IECommand
import IECore
import IEData

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ie-synth",
        abstract: "Write the seeded synthetic CT-like demo dataset of the HelloWorld model.",
        discussion: """
        Each subject gets <folder>/<subject:03d>/{ct,region_a,region_b,mask}.nii.gz:
        an int16 CT (air -1000 HU, body 40 HU, noise sd 25 HU), region_a (an
        ellipsoid at +150 HU), region_b (a blob of 2-3 spheres at -80 HU; exclusive
        with region_a) and the body mask, spacing (Z,Y,X) = (3,1,1) mm. dataset.csv
        (columns subject,filePath,channel,seriesId,institutionId) is written last.
        The same seed gives byte-identical files.

        Examples:
          ie-synth --output_folder=datasets/HelloWorld
          ie-synth --output_folder=/tmp/tiny --subjects=4 --seed=7 --shape=16,48,48
        """)

    @Option(name: .customLong("output_folder"), help: "Folder to write the dataset into (created if missing).")
    var outputFolder: String

    @Option(help: "Number of subjects.")
    var subjects: Int = 16

    @Option(help: "Random seed (same seed = same bytes).")
    var seed: UInt64 = 42

    @Option(help: "Image shape Z,Y,X.")
    var shape: String = "24,64,64"

    @Flag(help: "Only errors on stderr.")
    var quiet = false

    @Flag(help: "More detail on stderr.")
    var verbose = false

    func parsedShape() throws -> Shape3D {
        let parts = shape.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 3, let z = parts[0], let y = parts[1], let x = parts[2] else {
            throw ValidationError("--shape=\(shape) is invalid, expected three integers Z,Y,X such as 24,64,64")
        }
        return Shape3D(z, y, x)
    }

    func options() throws -> SyntheticDataset.Options {
        SyntheticDataset.Options(subjects: subjects, seed: seed, shape: try parsedShape())
    }

    func validate() throws {
        do {
            try SyntheticDataset.validate(try options())
        } catch let error as IEError {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        Log.tool = "ie-synth"
        Log.level = quiet ? .quiet : verbose ? .verbose : .normal
        let csv = try SyntheticDataset.generate(into: outputFolder, options: try options())
        Log.info("ie-synth: wrote \(subjects) subjects, dataset file \(csv)")
    }
}

runCommand(Synth.self, tool: "ie-synth")

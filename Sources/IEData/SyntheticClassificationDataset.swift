import Foundation
import IECore
import IEImage

/// The demo data of the HelloClassification models (ie-synth --kind=classification): grey images of noisy
/// tissue in which a bright disk (2-D, PNG) or ball (3-D, NIfTI) is present in about half of the subjects, always
/// inside one half of the image, beside a dimmer distractor square that appears regardless of the label. Columns:
/// `label` (1 when the structure is present, flipped for a `labelNoise` fraction of subjects), `location`
/// (class indices for a multi-label model: 0 left half, 1 right half, empty when absent), `age` (a number) and
/// `scanner` (a category); neither of the last two carries information about the label.
public enum SyntheticClassificationDataset {
    public struct Options: Sendable {
        public var subjects = 300
        public var seed: UInt64 = 42
        /// 2: PNG images of `size`×`size`; 3: NIfTI volumes of (`size`/2)×`size`×`size`.
        public var dimensions = 2
        public var size = 32
        public var labelNoise = 0.02
        public init() {}
    }

    public static let header = ["subject", "channel", "filePath", "label", "location", "age", "scanner"]

    public static func validate(_ options: Options) throws {
        guard (1...100_000).contains(options.subjects) else {
            throw IEError.usage("--subjects=\(options.subjects) is out of range, expected 1...100000")
        }
        guard options.dimensions == 2 || options.dimensions == 3 else {
            throw IEError.usage("--dimensions=\(options.dimensions) is invalid, expected 2 or 3")
        }
        guard (16...512).contains(options.size) else {
            throw IEError.usage("--size=\(options.size) is out of range, expected 16...512")
        }
        guard (0...0.5).contains(options.labelNoise) else {
            throw IEError.usage("--label_noise=\(options.labelNoise) is out of range, expected 0...0.5")
        }
    }

    /// One subject's image (`depth`×`size`×`size` bytes, depth 1 in 2-D) and true presence/location.
    public struct Subject: Sendable {
        public var pixels: [UInt8]
        public var depth: Int
        public var present: Bool
        public var rightHalf: Bool
        public var recordedLabel: Bool
        public var age: Int
        public var scanner: String
    }

    /// A pure function of (seed, index, options): a subject does not depend on how many are generated.
    public static func makeSubject(index: Int, options: Options) -> Subject {
        var rng = SplitMix64(seed: SplitMix64.mix(options.seed ^ UInt64(index) &* 0x9E37_79B9_7F4A_7C15))
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        func gaussian() -> Double { sqrt(-2 * log(max(uniform(), 1e-300))) * cos(2 * Double.pi * uniform()) }
        let n = options.size, depth = options.dimensions == 3 ? n / 2 : 1
        var values = [Double](repeating: 0, count: depth * n * n)
        for i in values.indices { values[i] = 90 + 18 * gaussian() }
        let present = uniform() < 0.5
        let rightHalf = uniform() < 0.5
        let radius = Double(n) * (0.09 + 0.06 * uniform())
        // Centre inside the chosen half, the whole structure inside the image.
        let margin = radius + 1
        let cx = rightHalf ? Double(n) / 2 + margin + uniform() * max(0, Double(n) / 2 - 2 * margin)
                           : margin + uniform() * max(0, Double(n) / 2 - 2 * margin)
        let cy = margin + uniform() * (Double(n) - 2 * margin)
        let cz = depth == 1 ? 0 : margin / 2 + uniform() * max(0, Double(depth) - margin)
        let square = (y: Int(uniform() * Double(n - 5)), x: Int(uniform() * Double(n - 5)), z: Int(uniform() * Double(max(depth - 3, 1))))
        let hasSquare = uniform() < 0.5
        for z in 0..<depth {
            for y in 0..<n {
                for x in 0..<n {
                    let i = (z * n + y) * n + x
                    let dz = depth == 1 ? 0 : (Double(z) - cz) * 2
                    let d2 = (Double(y) - cy) * (Double(y) - cy) + (Double(x) - cx) * (Double(x) - cx) + dz * dz
                    if present && d2 <= radius * radius { values[i] += 70 }
                    if hasSquare && (square.y..<square.y + 4).contains(y) && (square.x..<square.x + 4).contains(x)
                        && (depth == 1 || (square.z..<square.z + 3).contains(z)) { values[i] += 40 }
                }
            }
        }
        let flipped = uniform() < options.labelNoise
        let age = 30 + Int(uniform() * 50)
        let scanner = uniform() < 0.5 ? "A" : "B"
        return Subject(pixels: values.map { UInt8(max(0, min(255, $0.rounded()))) }, depth: depth, present: present,
                       rightHalf: rightHalf, recordedLabel: present != flipped, age: age, scanner: scanner)
    }

    /// Writes every subject's image (`<folder>/<subject:03d>.png` or `.nii.gz`) and then `<folder>/dataset.csv`,
    /// so that a dataset.csv only exists once all its images do. Returns the CSV path.
    @discardableResult
    public static func generate(into folder: String, options: Options = Options()) throws -> String {
        try validate(options)
        try SyntheticDataset.createOutputFolder(folder)
        var rows: [[String]] = []
        let progress = Progress("ie-synth: subjects", total: options.subjects)
        for index in 1...options.subjects {
            let subject = makeSubject(index: index, options: options)
            let name = String(format: "%03d", index) + (options.dimensions == 2 ? ".png" : ".nii.gz")
            if options.dimensions == 2 {
                try PNG.write(pixels: subject.pixels, width: options.size, height: options.size, format: .grey, to: folder + "/" + name)
            } else {
                let volume = Volume(shape: Shape3D(subject.depth, options.size, options.size), data: subject.pixels)
                try NIfTI.write(volume, to: folder + "/" + name, datatype: .uint8)
            }
            rows.append([String(format: "%03d", index), "image", name, subject.recordedLabel ? "1" : "0",
                         subject.present ? (subject.rightHalf ? "1" : "0") : "", "\(subject.age)", subject.scanner])
            progress.step("subject \(index)")
        }
        let csvPath = folder + "/dataset.csv"
        try AtomicFile.write(CSVTable(header: header, rows: rows).serialized(), to: csvPath)
        return csvPath
    }
}

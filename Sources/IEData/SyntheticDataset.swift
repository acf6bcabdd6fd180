import Foundation
import IECore
import IEImage

/// The built-in CT-like demo dataset of the HelloWorld model (`ie-synth`).
///
/// Each subject has an int16 CT (`ct`: air -1000 HU outside an elliptic-cylinder body, soft tissue 40 HU inside,
/// Gaussian noise), two exclusive structures inside the body with their own intensity (`region_a`: a rotated
/// ellipsoid at +150 HU; `region_b`: a blob made of two or three overlapping spheres at -80 HU) and the body
/// `mask`, all as `.nii.gz` with anisotropic spacing (3, 1, 1) mm and an offset origin.
public enum SyntheticDataset {
    /// The seeded generator of the synthetic data (IECore's SplitMix64), so the data is the same bytes on every
    /// machine and run.
    public typealias SplitMix64 = IECore.SplitMix64

    public static let channels = ["ct", "region_a", "region_b", "mask"]
    public static let institutions = ["institution_A", "institution_B", "institution_C"]

    /// Designed intensities (HU) and the noise level.
    public static let airHU = -1000.0
    public static let tissueHU = 40.0
    public static let regionAHU = 150.0
    public static let regionBHU = -80.0
    public static let noiseSD = 25.0

    public struct Options: Sendable {
        public var subjects: Int
        public var seed: UInt64
        public var shape: Shape3D
        public var spacing: (z: Double, y: Double, x: Double)

        public init(subjects: Int = 16, seed: UInt64 = 42, shape: Shape3D = Shape3D(24, 64, 64),
                    spacing: (z: Double, y: Double, x: Double) = (3, 1, 1)) {
            self.subjects = subjects
            self.seed = seed
            self.shape = shape
            self.spacing = spacing
        }
    }

    public struct Subject {
        public var ct: Volume<Int16>
        public var regionA: Volume<UInt8>
        public var regionB: Volume<UInt8>
        public var body: Volume<UInt8>
    }

    /// The smallest shape the generator accepts: the structures are 1-3 cm across, so smaller images cannot
    /// hold them inside a body.
    public static let minimumShape = Shape3D(z: 16, y: 48, x: 48)

    public static func validate(_ options: Options) throws {
        guard options.subjects >= 1 else {
            throw IEError.usage("--subjects=\(options.subjects) is invalid, expected at least 1")
        }
        let s = options.shape
        guard s.z >= minimumShape.z, s.y >= minimumShape.y, s.x >= minimumShape.x, s.z * s.y * s.x <= 64_000_000 else {
            throw IEError.usage("--shape=\(s.z),\(s.y),\(s.x) is invalid, expected Z,Y,X of at least "
                + "\(minimumShape.z),\(minimumShape.y),\(minimumShape.x) and at most 64 million voxels")
        }
    }

    /// Generates every subject into `folder` (`<folder>/<subject:03d>/<channel>.nii.gz`) and writes
    /// `<folder>/dataset.csv` last, so a dataset.csv only exists once all its images do. Returns the CSV path.
    @discardableResult
    public static func generate(into folder: String, options: Options = Options()) throws -> String {
        try validate(options)
        try createOutputFolder(folder)
        var rows: [[String]] = []
        var seriesRNG = SplitMix64(seed: SplitMix64.mix(options.seed ^ 0x5E41_E5ED))
        let progress = Progress("ie-synth: subjects", total: options.subjects)
        for index in 1...options.subjects {
            let subject = makeSubject(index: index, options: options)
            let relativeFolder = String(format: "%03d", index)
            let files: [(String, () throws -> Void)] = [
                ("ct", { try NIfTI.write(subject.ct, to: "\(folder)/\(relativeFolder)/ct.nii.gz", datatype: .int16) }),
                ("region_a", { try NIfTI.write(subject.regionA, to: "\(folder)/\(relativeFolder)/region_a.nii.gz", datatype: .uint8) }),
                ("region_b", { try NIfTI.write(subject.regionB, to: "\(folder)/\(relativeFolder)/region_b.nii.gz", datatype: .uint8) }),
                ("mask", { try NIfTI.write(subject.body, to: "\(folder)/\(relativeFolder)/mask.nii.gz", datatype: .uint8) }),
            ]
            // One scan per subject, its structures drawn on it: one seriesId for all of a subject's rows, which is
            // what the statistics join on (InnerEye's pairing key).
            let series = String(format: "%016llx", seriesRNG.next())
            for (channel, write) in files {
                try write()
                rows.append(["\(index)", "\(relativeFolder)/\(channel).nii.gz", channel, series,
                             institutions[(index - 1) % institutions.count]])
            }
            progress.step("subject \(index)")
        }
        let table = CSVTable(header: ["subject", "filePath", "channel", "seriesId", "institutionId"], rows: rows)
        let csvPath = folder + "/dataset.csv"
        try AtomicFile.write(table.serialized(), to: csvPath)
        return csvPath
    }

    /// Creates a demo dataset's folder (and its parents); an error names the folder.
    static func createOutputFolder(_ folder: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw IEError.failure("cannot create the output folder (\(error.localizedDescription))", file: folder)
        }
    }

    /// One subject, a pure function of (seed, index, shape, spacing): a subject's images do not depend on how
    /// many subjects are generated.
    public static func makeSubject(index: Int, options: Options) -> Subject {
        var rng = SplitMix64(seed: SplitMix64.mix(SplitMix64.mix(options.seed) ^ SplitMix64.mix(UInt64(index) &+ 0x51B7)))
        let shape = options.shape
        let spacing = options.spacing
        // World coordinates (mm) of voxel centres relative to the image centre.
        let centre = (z: Double(shape.z - 1) / 2, y: Double(shape.y - 1) / 2, x: Double(shape.x - 1) / 2)
        func mm(_ z: Int, _ y: Int, _ x: Int) -> (z: Double, y: Double, x: Double) {
            ((Double(z) - centre.z) * spacing.z, (Double(y) - centre.y) * spacing.y, (Double(x) - centre.x) * spacing.x)
        }
        let extent = (z: Double(shape.z) * spacing.z, y: Double(shape.y) * spacing.y, x: Double(shape.x) * spacing.x)

        // Body: an elliptic cylinder along z, slightly off centre.
        let bodyRadius = (y: extent.y * rng.uniform(0.34...0.42), x: extent.x * rng.uniform(0.38...0.45))
        let bodyCentre = (y: rng.uniform(-3...3), x: rng.uniform(-3...3))
        func bodyDepth(_ p: (z: Double, y: Double, x: Double)) -> Double {
            // > 0 inside; roughly the distance (mm) to the body outline, scaled by the smaller radius.
            let dy = (p.y - bodyCentre.y) / bodyRadius.y, dx = (p.x - bodyCentre.x) / bodyRadius.x
            return (1 - (dy * dy + dx * dx).squareRoot()) * min(bodyRadius.y, bodyRadius.x)
        }
        let margin = 4.0   // mm kept between the structures and the body outline / each other
        let zLimit = extent.z / 2 - max(spacing.z, 3)

        // region_a: an ellipsoid rotated in the axial plane, semi-axes 8-15 mm. Placement retries at random;
        // every 100 failures the ellipsoid shrinks by 7% (down to 5 mm semi-axes) so small images still fit one.
        var radiusA = (z: rng.uniform(9...15), y: rng.uniform(8...14), x: rng.uniform(8...14))
        let angleA = rng.uniform(0...Double.pi)
        var centreA = (z: 0.0, y: 0.0, x: 0.0)
        var reachA = max(radiusA.y, radiusA.x)
        for attempt in 1...2000 {
            centreA = (rng.uniform(-1...1) * max(0, zLimit - radiusA.z), rng.uniform(-1...1) * bodyRadius.y,
                       rng.uniform(-1...1) * bodyRadius.x)
            if bodyDepth(centreA) >= reachA + margin { break }
            if attempt % 100 == 0 {
                radiusA = (max(5, radiusA.z * 0.93), max(5, radiusA.y * 0.93), max(5, radiusA.x * 0.93))
                reachA = max(radiusA.y, radiusA.x)
            }
        }
        /// Inside region_a's ellipsoid with every semi-axis grown by `grow` mm (which contains every point
        /// within `grow` mm of the ellipsoid).
        func insideA(_ p: (z: Double, y: Double, x: Double), grow: Double = 0) -> Bool {
            let dz = p.z - centreA.z, dy = p.y - centreA.y, dx = p.x - centreA.x
            let u = cos(angleA) * dx + sin(angleA) * dy, v = -sin(angleA) * dx + cos(angleA) * dy
            let rz = radiusA.z + grow, ry = radiusA.y + grow, rx = radiusA.x + grow
            return dz * dz / (rz * rz) + v * v / (ry * ry) + u * u / (rx * rx) <= 1
        }
        /// Whether any voxel centre of a sphere comes within `margin` of region_a.
        func sphereTouchesA(_ c: (z: Double, y: Double, x: Double), _ r: Double) -> Bool {
            func range(_ centre: Double, _ offset: Double, _ step: Double, _ n: Int) -> ClosedRange<Int> {
                let low = max(0, Int(((centre - r) / step + offset).rounded(.down)))
                let high = min(n - 1, Int(((centre + r) / step + offset).rounded(.up)))
                return low...max(low, high)
            }
            for z in range(c.z, centre.z, spacing.z, shape.z) {
                for y in range(c.y, centre.y, spacing.y, shape.y) {
                    for x in range(c.x, centre.x, spacing.x, shape.x) {
                        let p = mm(z, y, x)
                        let d2 = (p.z - c.z) * (p.z - c.z) + (p.y - c.y) * (p.y - c.y) + (p.x - c.x) * (p.x - c.x)
                        if d2 <= r * r && insideA(p, grow: margin) { return true }
                    }
                }
            }
            return false
        }

        // region_b: two or three spheres (radius 5-8 mm) around a blob centre at least `margin` from region_a;
        // when it does not fit, both structures shrink (region_b down to 5 mm radii, region_a to 5.5 mm semi-axes).
        let sphereCount = 2 + Int(rng.next() % 2)
        var radiusScale = 1.0
        var spheres: [(centre: (z: Double, y: Double, x: Double), radius: Double)] = []
        for attempt in 1...2000 {
            let blob = (z: rng.uniform(-1...1) * max(0, zLimit - 6), y: rng.uniform(-1...1) * bodyRadius.y,
                        x: rng.uniform(-1...1) * bodyRadius.x)
            var candidate: [(centre: (z: Double, y: Double, x: Double), radius: Double)] = []
            for _ in 0..<sphereCount {
                let r = max(5, rng.uniform(5...8) * radiusScale)
                let offset = (z: rng.uniform(-4...4), y: rng.uniform(-5...5), x: rng.uniform(-5...5))
                candidate.append(((blob.z + offset.z, blob.y + offset.y, blob.x + offset.x), r))
            }
            let fits = candidate.allSatisfy { s in
                bodyDepth(s.centre) >= s.radius + margin && abs(s.centre.z) + s.radius <= zLimit
                    && !sphereTouchesA(s.centre, s.radius)
            }
            spheres = candidate
            if fits { break }
            if attempt % 100 == 0 {
                // Small images: make room by shrinking both structures (region_a stays inside the body).
                radiusScale *= 0.93
                radiusA = (max(5.5, radiusA.z * 0.95), max(5.5, radiusA.y * 0.95), max(5.5, radiusA.x * 0.95))
            }
        }
        func insideB(_ p: (z: Double, y: Double, x: Double)) -> Bool {
            spheres.contains { s in
                let dz = p.z - s.centre.z, dy = p.y - s.centre.y, dx = p.x - s.centre.x
                return dz * dz + dy * dy + dx * dx <= s.radius * s.radius
            }
        }

        let count = shape.z * shape.y * shape.x
        var body = [UInt8](repeating: 0, count: count)
        var regionA = [UInt8](repeating: 0, count: count)
        var regionB = [UInt8](repeating: 0, count: count)
        var ct = [Int16](repeating: 0, count: count)
        var i = 0
        for z in 0..<shape.z {
            for y in 0..<shape.y {
                for x in 0..<shape.x {
                    let p = mm(z, y, x)
                    let inBody = bodyDepth(p) > 0
                    // Structures only inside the body and never both (exclusive by construction, even if the
                    // placement search above had to give up).
                    let inA = inBody && insideA(p)
                    let inB = inBody && !inA && insideB(p)
                    body[i] = inBody ? 1 : 0
                    regionA[i] = inA ? 1 : 0
                    regionB[i] = inB ? 1 : 0
                    let base = inA ? regionAHU : inB ? regionBHU : inBody ? tissueHU : airHU
                    ct[i] = Int16((base + noiseSD * rng.gaussian()).rounded())
                    i += 1
                }
            }
        }
        // A non-trivial world position: the image centre sits at (z, y, x) = (12.5, -20.25, 35.75) mm.
        let origin = (z: 12.5 - centre.z * spacing.z, y: -20.25 - centre.y * spacing.y, x: 35.75 - centre.x * spacing.x)
        func volume<T>(_ data: [T]) -> Volume<T> { Volume(shape: shape, spacing: spacing, origin: origin, data: data) }
        return Subject(ct: volume(ct), regionA: volume(regionA), regionB: volume(regionB), body: volume(body))
    }
}

extension IECore.SplitMix64 {
    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    public mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * uniform()
    }

    /// Standard normal (Box-Muller; one of the pair is discarded to keep the stream position simple).
    public mutating func gaussian() -> Double {
        let u1 = 1 - uniform()            // in (0, 1], so log is finite
        let u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

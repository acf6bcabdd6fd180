import Foundation
import IECore
import IEImage
import IEConfig

/// One subject's images, ready for training or inference. All volumes share the first image channel's grid.
public struct SubjectData: @unchecked Sendable {
    public var subject: String
    /// In image_channels order, raw intensities (normalisation is the trainer's business).
    public var channels: [Volume<Float>]
    /// In ground_truth_ids order, binary 0/1; nil where the subject lacks the structure (allow_incomplete_labels).
    public var structures: [Volume<UInt8>?]
    /// The body mask (0/1), when mask_id is set.
    public var mask: Volume<UInt8>?

    public var shape: Shape3D { channels[0].shape }
}

/// Which channels to load and how strictly to check them (the dataset part of a model config).
public struct SubjectRequest: Sendable {
    public var imageChannels: [String]
    public var groundTruthIds: [String]
    public var maskId: String?
    public var allowIncompleteLabels: Bool
    public var checkExclusive: Bool

    public init(imageChannels: [String], groundTruthIds: [String], maskId: String? = nil,
                allowIncompleteLabels: Bool = false, checkExclusive: Bool = true) {
        self.imageChannels = imageChannels
        self.groundTruthIds = groundTruthIds
        self.maskId = maskId
        self.allowIncompleteLabels = allowIncompleteLabels
        self.checkExclusive = checkExclusive
    }

    public init(config: ModelConfig) {
        self.init(imageChannels: config.imageChannels, groundTruthIds: config.groundTruthIds, maskId: config.maskId,
                  allowIncompleteLabels: config.allowIncompleteLabels, checkExclusive: config.checkExclusive)
    }
}

extension Dataset {
    /// Loads and validates one subject (SPEC §2). Every failure is `IEError.badInput` naming this CSV and the
    /// line of the offending row.
    public func loadSubject(_ subject: String, _ request: SubjectRequest) throws -> SubjectData {
        try checkChannels(imageChannels: request.imageChannels, groundTruthIds: request.groundTruthIds, maskId: request.maskId,
                          allowIncompleteLabels: request.allowIncompleteLabels, subjects: [subject])
        var reference: (volume: Volume<Float>, row: DatasetRow)?

        func load(_ row: DatasetRow) throws -> Volume<Float> {
            let file = absolutePath(row)
            let volume: Volume<Float>
            do {
                volume = try NIfTI.read(file)
            } catch let e as IEError {
                throw IEError.badInput("subject \(row.subject) channel \(row.channel): \(e.description)", file: path, line: row.line)
            }
            if let (first, firstRow) = reference {
                guard volume.sameShape(as: first) else {
                    throw IEError.badInput("subject \(row.subject) channel \(row.channel) has shape \(Dataset.text(volume.shape)) (Z,Y,X) but channel \(firstRow.channel) has \(Dataset.text(first.shape)), expected one shape per subject", file: path, line: row.line)
                }
                // Spacing, origin and direction (a channel stored in another axis order, LAS against RAS, would
                // otherwise be stacked voxel by voxel with anatomy that does not correspond): GridComparison's rule.
                if let mismatch = volume.gridMismatch(with: first) {
                    throw IEError.badInput("subject \(row.subject) channel \(row.channel): \(mismatch) of channel \(firstRow.channel), expected them to agree", file: path, line: row.line)
                }
            } else {
                reference = (volume, row)
            }
            return volume
        }

        func binary(_ row: DatasetRow, what: String) throws -> Volume<UInt8> {
            let v = try load(row)
            var out = [UInt8](repeating: 0, count: v.count)
            for (i, value) in v.data.enumerated() {
                if value == 1 { out[i] = 1 } else if value != 0 {
                    let p = v.position(ofIndex: i)
                    throw IEError.badInput("subject \(row.subject) \(what) \(row.channel) has value \(value) at voxel (z=\(p.z), y=\(p.y), x=\(p.x)), expected a binary mask of 0 and 1", file: path, line: row.line)
                }
            }
            return v.with(data: out)
        }

        var channels: [Volume<Float>] = []
        for name in request.imageChannels {
            let r = row(subject: subject, channel: name)!
            let v = try load(r)
            try v.requireFiniteVoxels(what: "subject \(subject) channel \(name)", file: path, line: r.line)
            channels.append(v)
        }
        var structures: [Volume<UInt8>?] = []
        var structureRows: [DatasetRow?] = []
        for name in request.groundTruthIds {
            if let r = row(subject: subject, channel: name) {
                structures.append(try binary(r, what: "structure"))
                structureRows.append(r)
            } else {
                structures.append(nil)   // only reachable with allowIncompleteLabels (checked above)
                structureRows.append(nil)
            }
        }
        var mask: Volume<UInt8>?
        if let m = request.maskId { mask = try binary(row(subject: subject, channel: m)!, what: "mask") }

        if request.checkExclusive {
            let present = structures.indices.filter { structures[$0] != nil }
            if present.count > 1 {
                let count = channels[0].count
                var owner = [Int8](repeating: -1, count: count)
                for s in present {
                    let data = structures[s]!.data
                    for i in 0..<count where data[i] != 0 {
                        if owner[i] >= 0 {
                            let other = request.groundTruthIds[Int(owner[i])]
                            let shape = channels[0].shape
                            let z = i / (shape.y * shape.x), y = (i / shape.x) % shape.y, x = i % shape.x
                            throw IEError.badInput("subject \(subject) structures \(other) and \(request.groundTruthIds[s]) overlap at voxel (z=\(z), y=\(y), x=\(x)), expected exclusive structures (or check_exclusive false)", file: path, line: structureRows[s]!.line)
                        }
                        owner[i] = Int8(s)
                    }
                }
            }
        }
        return SubjectData(subject: subject, channels: channels, structures: structures, mask: mask)
    }

    /// Loads every listed subject (default: all, string-sorted), so a whole dataset can be checked up front.
    public func validateSubjects(_ request: SubjectRequest, subjects only: [String]? = nil,
                                 progress: ((String) -> Void)? = nil) throws {
        for s in only ?? subjects {
            _ = try loadSubject(s, request)
            progress?(s)
        }
    }

    static func text(_ s: Shape3D) -> String { "\(s.z)x\(s.y)x\(s.x)" }
}

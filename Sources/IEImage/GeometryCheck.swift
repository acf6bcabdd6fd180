import Foundation
import IECore

/// Comparing the grids of two images (dataset validation, SPEC §2: channels of one subject must share shape,
/// and spacing and origin may differ by at most 1e-3 relative, direction cosines by 1e-3; the metrics, SPEC §7:
/// a prediction and its ground truth, which SimpleITK's filters refuse unless they occupy the same physical space).
public enum GridComparison {
    /// nil when the grids agree; otherwise a phrase naming what differs, for an error message.
    /// A value pair (a, b) agrees when |a - b| <= relativeTolerance * max(|a|, |b|, 1) (the 1 keeps origins
    /// near 0 mm from being judged by a vanishing scale); direction cosines (at most 1 in size) when
    /// |a - b| <= relativeTolerance.
    public static func mismatch(shape a: Shape3D, spacing sa: (z: Double, y: Double, x: Double),
                                origin oa: (z: Double, y: Double, x: Double), direction da: [Double],
                                versus b: Shape3D, spacing sb: (z: Double, y: Double, x: Double),
                                origin ob: (z: Double, y: Double, x: Double), direction db: [Double],
                                relativeTolerance: Double = 1e-3) -> String? {
        if a != b {
            return "shape (Z,Y,X) \(a.z),\(a.y),\(a.x) differs from \(b.z),\(b.y),\(b.x)"
        }
        func close(_ u: Double, _ v: Double) -> Bool {
            abs(u - v) <= relativeTolerance * max(abs(u), abs(v), 1)
        }
        func text(_ v: [Double]) -> String { "(" + v.map { String(format: "%g", $0) }.joined(separator: ", ") + ")" }
        func text(_ t: (z: Double, y: Double, x: Double)) -> String { text([t.z, t.y, t.x]) }
        if !(close(sa.z, sb.z) && close(sa.y, sb.y) && close(sa.x, sb.x)) {
            return "spacing \(text(sa)) (Z,Y,X) differs from \(text(sb)) by more than \(relativeTolerance) relative"
        }
        if !(close(oa.z, ob.z) && close(oa.y, ob.y) && close(oa.x, ob.x)) {
            return "origin \(text(oa)) (Z,Y,X) differs from \(text(ob)) by more than \(relativeTolerance) relative"
        }
        if da.count != db.count || zip(da, db).contains(where: { abs($0 - $1) > relativeTolerance }) {
            return "direction \(text(da)) (row-major x,y,z by i,j,k) differs from \(text(db)) by more than \(relativeTolerance)"
        }
        return nil
    }
}

extension NIfTIHeaderInfo {
    /// nil when `other` has the same shape and, within `relativeTolerance`, the same spacing, origin and direction.
    public func gridMismatch(with other: NIfTIHeaderInfo, relativeTolerance: Double = 1e-3) -> String? {
        GridComparison.mismatch(shape: shape, spacing: spacing, origin: origin, direction: direction, versus: other.shape,
                                spacing: other.spacing, origin: other.origin, direction: other.direction,
                                relativeTolerance: relativeTolerance)
    }
}

extension Volume {
    /// nil when `other` has the same shape and, within `relativeTolerance`, the same spacing, origin and direction.
    public func gridMismatch<U>(with other: Volume<U>, relativeTolerance: Double = 1e-3) -> String? {
        GridComparison.mismatch(shape: shape, spacing: spacing, origin: origin, direction: direction, versus: other.shape,
                                spacing: other.spacing, origin: other.origin, direction: other.direction,
                                relativeTolerance: relativeTolerance)
    }
}

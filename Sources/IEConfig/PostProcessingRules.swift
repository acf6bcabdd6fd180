import Foundation
import IECore

/// InnerEye's SliceExclusionRule (ML/config.py): voxels of higher_class must lie in strictly higher z slices than
/// those of lower_class. Where they do not, in the slices from the lowest higher_class slice to the highest
/// lower_class slice, lower_class voxels become higher_class (higher_dominates) or the other way round.
public struct SliceExclusionRule: Sendable, Equatable {
    public var higherClass: String
    public var lowerClass: String
    public var higherDominates: Bool
}

/// InnerEye's SummedProbabilityRule: a voxel labelled external_class whose posterior of external_class is below
/// the sum of first_class's and second_class's becomes first_class (when its posterior is at least
/// second_class's) or second_class.
public struct SummedProbabilityRule: Sendable, Equatable {
    public var firstClass: String
    public var secondClass: String
    public var externalClass: String
}

extension ModelConfig {
    /// Whether summed_probability_rules and slice_exclusion_rules are ignored (InnerEye's
    /// disable_extra_postprocessing: they are then neither applied nor checked against ground_truth_ids).
    public var disableExtraPostprocessing: Bool { bool("disable_extra_postprocessing") }

    func ruleFields(_ key: String) -> [[String]] {
        (strings(key) ?? []).map { $0.split(separator: ":", omittingEmptySubsequences: false).map(String.init) }
    }

    public func sliceExclusionRules() throws -> [SliceExclusionRule] {
        try ruleFields("slice_exclusion_rules").map { f in
            guard f.count == 3, let dominates = BooleanSpelling.parse(f[2]) else {
                throw fail("slice_exclusion_rules", "cannot use '\(f.joined(separator: ":"))', expected higher_class:lower_class:higher_dominates such as brainstem:spinal_cord:False")
            }
            return SliceExclusionRule(higherClass: f[0], lowerClass: f[1], higherDominates: dominates)
        }
    }

    public func summedProbabilityRules() throws -> [SummedProbabilityRule] {
        try ruleFields("summed_probability_rules").map { f in
            guard f.count == 3 else {
                throw fail("summed_probability_rules", "cannot use '\(f.joined(separator: ":"))', expected first_class:second_class:external_class such as spinal_cord:brainstem:external")
            }
            return SummedProbabilityRule(firstClass: f[0], secondClass: f[1], externalClass: f[2])
        }
    }

    /// Entries must parse; unless disable_extra_postprocessing, every class they name must be a ground_truth_id
    /// (InnerEye's rule.validate at config load).
    func validatePostProcessingRules() throws {
        let slice = try sliceExclusionRules(), summed = try summedProbabilityRules()
        let structures = groundTruthIds
        guard !disableExtraPostprocessing, !structures.isEmpty else { return }
        let named = [("summed_probability_rules", summed.flatMap { [$0.firstClass, $0.secondClass, $0.externalClass] }),
                     ("slice_exclusion_rules", slice.flatMap { [$0.higherClass, $0.lowerClass] })]
        for (key, names) in named {
            if let bad = names.first(where: { !structures.contains($0) }) {
                throw fail(key, "'\(bad)' is not in ground_truth_ids, expected one of \(structures.joined(separator: ", ")) (or disable_extra_postprocessing)")
            }
        }
    }

    /// HeadAndNeckPaper's defaults (InnerEye's HeadAndNeckPaper.py), for the pairs present in `ids`: brainstem
    /// voxels in slices shared with spinal_cord become cord, spc_muscle becomes mpc_muscle, pituitary_gland becomes
    /// optic_chiasm; the same three pairs, with external present, get summed probability rules.
    static func headAndNeckPaperRules(_ ids: [String]) -> (sliceExclusion: [String], summedProbability: [String]) {
        let present = Set(ids)
        let pairs = [("brainstem", "spinal_cord", "False"), ("spc_muscle", "mpc_muscle", "False"),
                     ("optic_chiasm", "pituitary_gland", "True")]
        let slice = pairs.filter { present.contains($0.0) && present.contains($0.1) }.map { "\($0.0):\($0.1):\($0.2)" }
        let summed = [("spinal_cord", "brainstem"), ("mpc_muscle", "spc_muscle"), ("optic_chiasm", "pituitary_gland")]
            .filter { present.contains($0.0) && present.contains($0.1) && present.contains("external") }
            .map { "\($0.0):\($0.1):external" }
        return (slice, summed)
    }
}

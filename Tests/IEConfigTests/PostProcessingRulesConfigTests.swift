import Foundation
import XCTest
import IECore
@testable import IEConfig

/// summed_probability_rules, slice_exclusion_rules and disable_extra_postprocessing (SPEC §5): InnerEye's names,
/// written as nested lists, mappings or colon entries, checked against ground_truth_ids at load.
final class PostProcessingRulesConfigTests: XCTestCase {
    func testRulesParseFromListsMappingsAndTheCommandLine() throws {
        let s = try ConfigScratch()
        try s.model("Rules", runnable(with: """
            ground_truth_ids: [external, cord, stem]
            slice_exclusion_rules: [[stem, cord, false], {higher_class: cord, lower_class: stem, higher_dominates: yes}]
            summed_probability_rules:
              - [cord, stem, external]

            """))
        let c = try ModelConfig.load(name: "Rules", settings: s.settings)
        XCTAssertEqual(try c.sliceExclusionRules(), [SliceExclusionRule(higherClass: "stem", lowerClass: "cord", higherDominates: false),
                                                     SliceExclusionRule(higherClass: "cord", lowerClass: "stem", higherDominates: true)])
        XCTAssertEqual(try c.summedProbabilityRules(), [SummedProbabilityRule(firstClass: "cord", secondClass: "stem", externalClass: "external")])
        XCTAssertFalse(c.disableExtraPostprocessing)
        // args.txt's text is a valid override that gives the same rules back.
        let text = c.value("slice_exclusion_rules").description
        XCTAssertEqual(text, "stem:cord:false,cord:stem:yes")
        let again = try ModelConfig.load(name: "Rules", settings: s.settings,
                                         overrides: ConfigOverrides.parse(["--slice_exclusion_rules=" + text, "--summed_probability_rules=[]"]))
        XCTAssertEqual(try again.sliceExclusionRules(), try c.sliceExclusionRules())
        XCTAssertEqual(try again.summedProbabilityRules(), [])
        // Unset: no rules (InnerEye's SegmentationModelBase default).
        try s.model("None", minimalRunnable)
        XCTAssertEqual(try ModelConfig.load(name: "None", settings: s.settings).sliceExclusionRules(), [])
    }

    func testUnknownStructuresAndBadEntriesAreErrorsNamingTheLine() throws {
        let s = try ConfigScratch()
        try s.model("Unknown", runnable(with: "summed_probability_rules: [[liver, kidney, skin]]\n"))
        assertIEError(.usage, contains: ["Unknown.yml:6", "summed_probability_rules", "'skin' is not in ground_truth_ids", "liver, kidney"]) {
            _ = try ModelConfig.load(name: "Unknown", settings: s.settings)
        }
        try s.model("UnknownSlice", runnable(with: "slice_exclusion_rules: [[liver, spleen, true]]\n"))
        assertIEError(.usage, contains: ["UnknownSlice.yml:6", "slice_exclusion_rules", "'spleen'"]) {
            _ = try ModelConfig.load(name: "UnknownSlice", settings: s.settings)
        }
        // InnerEye checks the names only when the rules are used.
        try s.model("Disabled", runnable(with: "slice_exclusion_rules: [[liver, spleen, true]]\ndisable_extra_postprocessing: true\n"))
        XCTAssertTrue(try ModelConfig.load(name: "Disabled", settings: s.settings).disableExtraPostprocessing)
        try s.model("TwoFields", runnable(with: "slice_exclusion_rules: [[liver, kidney]]\n"))
        assertIEError(.usage, contains: ["TwoFields.yml:6", "higher_class:lower_class:higher_dominates entries"]) {
            _ = try ModelConfig.load(name: "TwoFields", settings: s.settings)
        }
        try s.model("BadBool", runnable(with: "slice_exclusion_rules: [[liver, kidney, maybe]]\n"))
        assertIEError(.usage, contains: ["BadBool.yml:6", "liver:kidney:maybe", "higher_dominates"]) {
            _ = try ModelConfig.load(name: "BadBool", settings: s.settings)
        }
        try s.model("BadKeys", runnable(with: "summed_probability_rules: [{first_class: liver, second: kidney, external_class: liver}]\n"))
        assertIEError(.usage, contains: ["BadKeys.yml:6", "expected exactly first_class, second_class, external_class"]) {
            _ = try ModelConfig.load(name: "BadKeys", settings: s.settings)
        }
        assertIEError(.usage, contains: ["--summed_probability_rules=liver:kidney", "first_class:second_class:external_class"]) {
            _ = try ConfigOverrides.parse(["--summed_probability_rules=liver:kidney"])
        }
    }

    func testHeadAndNeckPaperDerivesRulesOnlyForPresentPairs() throws {
        let s = try ConfigScratch()
        try s.model("Paper", runnable(with: "structure_defaults: HeadAndNeckPaper\nground_truth_ids: [external, spinal_cord, brainstem, optic_chiasm]\n"))
        let c = try ModelConfig.load(name: "Paper", settings: s.settings)
        XCTAssertEqual(c.value("slice_exclusion_rules"), .strings(["brainstem:spinal_cord:False"]))
        XCTAssertEqual(c.value("summed_probability_rules"), .strings(["spinal_cord:brainstem:external"]))
        XCTAssertEqual(c.classWeights ?? [], [0.02, 0.245, 0.245, 0.245, 0.245])
        // An explicit list (even empty) wins over the derived one.
        let explicit = try ModelConfig.load(name: "Paper", settings: s.settings,
                                            overrides: ConfigOverrides.parse(["--slice_exclusion_rules=[]"]))
        XCTAssertEqual(try explicit.sliceExclusionRules(), [])
        XCTAssertEqual(try explicit.summedProbabilityRules().count, 1)
    }
}

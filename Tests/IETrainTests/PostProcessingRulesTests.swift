import Foundation
import IECore
import IEConfig
import XCTest
@testable import IETrain

/// summed_probability_rules and slice_exclusion_rules against a Python oracle written from InnerEye's code
/// (pipelines/inference.py post_process; utils/image_util.py apply_summed_probability_rules,
/// extract_largest_foreground_connected_component, apply_slice_exclusion_rules), on hand-made posteriors.
final class PostProcessingRulesTests: XCTestCase {
    /// InnerEye's post_process without smoothing: argmax, summed probability rules (np.where on float32
    /// posteriors, restricted to voxels labelled external), largest component per listed class (scipy label,
    /// np.argmax of the sizes), slice exclusion rules (z = axis 0). Also returns the labels after each step.
    static let oracle = """
        import sys, json
        import numpy as np
        from scipy.ndimage import label
        d = json.load(sys.stdin)
        ids = d['ids']; shape = tuple(d['shape'])
        post = np.array(d['posteriors'], dtype=np.float32).reshape((len(ids) + 1,) + shape)
        seg = np.argmax(post, axis=0)
        after_argmax = seg.copy()
        for first, second, external in d['summed']:
            f, s, e = ids.index(first) + 1, ids.index(second) + 1, ids.index(external) + 1
            replace = (post[e] < post[[f, s]].sum(0)) & (seg == e)
            seg[replace & (post[f] >= post[s])] = f
            seg[replace & (post[f] < post[s])] = s
        after_summed = seg.copy()
        for name in d['lcc']:
            c = ids.index(name) + 1
            fg = seg == c
            if fg.any():
                lab, _ = label(fg)
                sizes = np.bincount(lab.flatten()); sizes[0] = 0
                seg[fg & (lab != np.argmax(sizes))] = 0
        after_lcc = seg.copy()
        for higher, lower, dominates in d['slice']:
            h, l = ids.index(higher) + 1, ids.index(lower) + 1
            zh = np.nonzero(np.any(seg == h, axis=(1, 2)))[0]; zl = np.nonzero(np.any(seg == l, axis=(1, 2)))[0]
            if len(zh) and len(zl) and zh[0] <= zl[-1]:
                region = seg[zh[0]:zl[-1] + 1]
                dom, rep = (h, l) if dominates else (l, h)
                region[region == rep] = dom
        print(json.dumps({'labels': seg.flatten().tolist(), 'argmax': after_argmax.flatten().tolist(),
                          'summed': after_summed.flatten().tolist(), 'lcc': after_lcc.flatten().tolist()}))
        """

    static let structures = ["external", "spinal_cord", "brainstem", "spc_muscle", "mpc_muscle", "lens_l"]

    /// Posteriors with external over the body (y < 6), spinal cord in low slices and brainstem in high ones
    /// (overlapping in z = 3...5), mpc below spc (overlapping in z = 4, 5), plus noise; normalised in float32.
    static func posteriors(shape: Shape3D) -> [Float] {
        let k = structures.count + 1, n = shape.count
        let noise = testValues(k * n, seed: 1515)
        var weights = [Float](repeating: 0, count: k * n)
        for z in 0..<shape.z { for y in 0..<shape.y { for x in 0..<shape.x {
            let i = (z * shape.y + y) * shape.x + x
            var w = (0..<k).map { noise[$0 * n + i] }
            if y < 6 { w[1] += 0.45 }
            if x < 4 && z <= 5 { w[2] += 0.35 }
            if x < 4 && z >= 3 { w[3] += 0.35 }
            if x >= 5 && z >= 4 { w[4] += 0.4 }
            if x >= 5 && z <= 5 { w[5] += 0.4 }
            let sum = w.reduce(0, +)
            for c in 0..<k { weights[c * n + i] = w[c] / sum }
        } } }
        return weights
    }

    func config(_ flags: [String]) throws -> ModelConfig {
        try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(
            ["--crop_size=16,32,32", "--structure_defaults=HeadAndNeckPaper",
             "--ground_truth_ids=" + Self.structures.joined(separator: ",")] + flags))
    }

    func testHeadAndNeckPaperRulesMatchInnerEyeOracle() throws {
        let shape = Shape3D(9, 8, 9)
        let settings = try InferenceSettings(config: config([]))
        // HeadAndNeckPaper's defaults for these structures, as class indices (external = 1).
        XCTAssertEqual(settings.labelRules.summedProbability,
                       [.init(first: 2, second: 3, external: 1), .init(first: 5, second: 4, external: 1)])
        XCTAssertEqual(settings.labelRules.sliceExclusion,
                       [.init(higher: 3, lower: 2, higherDominates: false), .init(higher: 4, lower: 5, higherDominates: false)])
        XCTAssertEqual(settings.largestComponentClasses, [1, 2, 3, 4, 5, 6])

        let p = Self.posteriors(shape: shape)
        let ours = PostProcessing.run(posteriors: p, classCount: Self.structures.count + 1, shape: shape, mask: nil,
                                      smoothingMM: nil, spacing: (1, 1, 1),
                                      largestComponentClasses: settings.largestComponentClasses, rules: settings.labelRules)
        let input: [String: Any] = [
            "ids": Self.structures, "shape": [shape.z, shape.y, shape.x], "posteriors": p.map(Double.init),
            "summed": [["spinal_cord", "brainstem", "external"], ["mpc_muscle", "spc_muscle", "external"]],
            "slice": [["brainstem", "spinal_cord", false], ["spc_muscle", "mpc_muscle", false]],
            "lcc": Self.structures]
        let reference = try XCTUnwrap(try pythonReference(Self.oracle, input: input) as? [String: Any])
        XCTAssertEqual(ours.labels.map(Int.init), ints(reference["labels"]))
        // Every step must change the labels, or the comparison would not test it.
        let argmax = ints(reference["argmax"]), summed = ints(reference["summed"]), lcc = ints(reference["lcc"])
        XCTAssertNotEqual(argmax, summed, "summed probability rules changed nothing")
        XCTAssertNotEqual(summed, lcc, "largest component changed nothing")
        XCTAssertNotEqual(lcc, ints(reference["labels"]), "slice exclusion changed nothing")
        XCTAssertEqual(PostProcessing.argmax(p, classCount: Self.structures.count + 1).map(Int.init), argmax)
    }

    func testDominanceAndOrderOfSliceRulesMatchOracle() throws {
        // optic_chiasm over pituitary_gland with higher_dominates (HeadAndNeckPaper's third rule) and a rule set on
        // the command line, the two rules sharing a class so that their order matters.
        let ids = ["optic_chiasm", "pituitary_gland", "lens_l"]
        let shape = Shape3D(6, 3, 3)
        let noise = testValues(shape.count, seed: 99)
        let labels: [UInt8] = (0..<shape.count).map { i in
            let z = i / 9, v = noise[i]
            if z >= 2 && v < 0.4 { return 1 }
            if z <= 3 && v < 0.7 { return 2 }
            return v < 0.85 ? 3 : 0
        }
        let c = try ModelConfig.fromDefaults(overrides: ConfigOverrides.parse(
            ["--crop_size=16,32,32", "--ground_truth_ids=" + ids.joined(separator: ","),
             "--slice_exclusion_rules=optic_chiasm:pituitary_gland:True,lens_l:optic_chiasm:yes"]))
        let rules = try InferenceSettings(config: c).labelRules
        var ours = labels
        for rule in rules.sliceExclusion { PostProcessing.applySliceExclusion(&ours, shape: shape, rule: rule) }
        // The oracle argmaxes one-hot posteriors, so it starts from the same labels.
        var onehot = [Double](repeating: 0, count: 4 * shape.count)
        for (i, l) in labels.enumerated() { onehot[Int(l) * shape.count + i] = 1 }
        let reference = try XCTUnwrap(try pythonReference(Self.oracle, input: [
            "ids": ids, "shape": [shape.z, shape.y, shape.x], "posteriors": onehot, "summed": [[String]](),
            "slice": [["optic_chiasm", "pituitary_gland", true], ["lens_l", "optic_chiasm", true]], "lcc": [String]()]) as? [String: Any])
        XCTAssertEqual(ours.map(Int.init), ints(reference["labels"]))
        XCTAssertNotEqual(ours, labels)
    }

    func testTiesAndASingleSharedSliceMatchOracle() throws {
        // Classes background, external, spinal_cord, brainstem; shape (3, 1, 2). Voxel z0 x1 is external with
        // p(spinal_cord) == p(brainstem) and their sum above p(external): the tie goes to the first class. The
        // slice rule meets a single shared slice (lowest brainstem slice == highest spinal_cord slice == 1).
        let ids = ["external", "spinal_cord", "brainstem"]
        let shape = Shape3D(3, 1, 2)
        let labels = [2, 1, 3, 2, 3, 0]
        var p = [Float](repeating: 0, count: 4 * shape.count)
        for (i, l) in labels.enumerated() { p[l * shape.count + i] = 1 }
        for (c, v) in [Float(0.1), 0.4, 0.25, 0.25].enumerated() { p[c * shape.count + 1] = v }
        let summed = LabelRules.SummedProbability(first: 2, second: 3, external: 1)
        let slice = LabelRules.SliceExclusion(higher: 3, lower: 2, higherDominates: false)
        for (rules, summedNames, sliceNames) in [
            (LabelRules(summedProbability: [summed]), [["spinal_cord", "brainstem", "external"]], [[Any]]()),
            (LabelRules(sliceExclusion: [slice]), [[String]](), [["brainstem", "spinal_cord", false] as [Any]]),
        ] {
            let ours = PostProcessing.run(posteriors: p, classCount: 4, shape: shape, mask: nil, smoothingMM: nil,
                                          spacing: (1, 1, 1), largestComponentClasses: [], rules: rules)
            let reference = try XCTUnwrap(try pythonReference(Self.oracle, input: [
                "ids": ids, "shape": [3, 1, 2], "posteriors": p.map(Double.init), "summed": summedNames,
                "slice": sliceNames, "lcc": [String]()]) as? [String: Any])
            XCTAssertEqual(ours.labels.map(Int.init), ints(reference["labels"]))
            XCTAssertNotEqual(ours.labels.map(Int.init), ints(reference["argmax"]))
        }
    }

    /// The shipped HeadAndNeckPaper.yml for every num_structures (a prefix of InnerEye's STRUCTURE_LIST): the
    /// derived rules against HeadAndNeckPaper.__init__'s defaults, re-implemented in Python.
    func testShippedHeadAndNeckPaperDerivesInnerEyesRulesForEveryPrefix() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let settings = try Settings.load(path: repo + "/settings.yml")
        let full = try ModelConfig.load(name: "HeadAndNeckPaper", settings: settings)
        let ids = full.groundTruthIds
        let reference = try XCTUnwrap(try pythonReference("""
            import sys, json
            ids = json.load(sys.stdin)
            out = []
            for k in range(1, len(ids) + 1):
                g = ids[:k]; slice_rules = []; summed = []
                if "brainstem" in g and "spinal_cord" in g: slice_rules.append(["brainstem", "spinal_cord", False])
                if "spc_muscle" in g and "mpc_muscle" in g: slice_rules.append(["spc_muscle", "mpc_muscle", False])
                if "optic_chiasm" in g and "pituitary_gland" in g: slice_rules.append(["optic_chiasm", "pituitary_gland", True])
                if "brainstem" in g and "spinal_cord" in g and "external" in g: summed.append(["spinal_cord", "brainstem", "external"])
                if "spc_muscle" in g and "mpc_muscle" in g and "external" in g: summed.append(["mpc_muscle", "spc_muscle", "external"])
                if "optic_chiasm" in g and "pituitary_gland" in g and "external" in g: summed.append(["optic_chiasm", "pituitary_gland", "external"])
                out.append({"slice": [[g.index(a) + 1, g.index(b) + 1, d] for a, b, d in slice_rules],
                            "summed": [[g.index(a) + 1, g.index(b) + 1, g.index(c) + 1] for a, b, c in summed],
                            "channels": 32 if k <= 20 else 26})
            print(json.dumps(out))
            """, input: ids) as? [[String: Any]])
        XCTAssertEqual(ids.count, 22)
        XCTAssertEqual(reference.count, 22)
        for (k, expected) in reference.enumerated() {
            let prefix = Array(ids.prefix(k + 1))
            let config = try ModelConfig.load(name: "HeadAndNeckPaper", settings: settings,
                                              overrides: ConfigOverrides.parse(["--ground_truth_ids=" + prefix.joined(separator: ",")]))
            let rules = try InferenceSettings(config: config).labelRules
            let slice = (expected["slice"] as? [[Any]] ?? []).map {
                LabelRules.SliceExclusion(higher: ($0[0] as? Int) ?? -1, lower: ($0[1] as? Int) ?? -1, higherDominates: ($0[2] as? Bool) ?? false)
            }
            let summed = (expected["summed"] as? [[Int]] ?? []).map { LabelRules.SummedProbability(first: $0[0], second: $0[1], external: $0[2]) }
            XCTAssertEqual(rules.sliceExclusion, slice, "num_structures \(k + 1)")
            XCTAssertEqual(rules.summedProbability, summed, "num_structures \(k + 1)")
            XCTAssertEqual(config.featureChannels, [(expected["channels"] as? Int) ?? 0], "num_structures \(k + 1)")
        }
        XCTAssertEqual(try InferenceSettings(config: full).labelRules.sliceExclusion.count, 3)
    }

    func testDisabledRulesAreNotApplied() throws {
        let settings = try InferenceSettings(config: config(["--disable_extra_postprocessing"]))
        XCTAssertEqual(settings.labelRules, LabelRules())
    }
}

import Foundation
import XCTest
import IETestSupport

/// The seed document's Building Models examples, shipped verbatim as configs/segmentation/Prostate.yml and
/// HeadAndNeck.yml (`base: ProstateBase` / `base: HeadAndNeckBase` with only ground_truth_ids and a dataset), train
/// for one epoch and evaluate on a tiny dataset with their structure names (written by nibabel).
final class SeedConfigExamplesTests: XCTestCase {
    /// Writes `datasets/<name>/dataset.csv` with `subjects` CT images of 16x32x32 and one non-overlapping box mask per
    /// structure.
    static func writeDataset(_ runner: ToolRunner, name: String, structures: [String], subjects: Int = 8) throws {
        let script = #"""
import sys, os, numpy as np, nibabel as nib
folder, names, count = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3])
rng = np.random.default_rng(5)
rows = ['subject,filePath,channel']
for s in range(1, count + 1):
    os.makedirs(f'{folder}/{s}', exist_ok=True)
    ct = rng.normal(0, 50, (32, 32, 16)).astype(np.float32)   # x, y, z
    for k, n in enumerate(names):
        m = np.zeros((32, 32, 16), np.uint8)
        x0 = 2 + 6 * k
        m[x0:x0 + 5, 8 + s % 4:20, 4:12] = 1
        ct[m == 1] += 300 + 40 * k
        nib.save(nib.Nifti1Image(m, np.eye(4)), f'{folder}/{s}/{n}.nii.gz')
        rows.append(f'{s},{s}/{n}.nii.gz,{n}')
    nib.save(nib.Nifti1Image(ct, np.eye(4)), f'{folder}/{s}/ct.nii.gz')
    rows.append(f'{s},{s}/ct.nii.gz,ct')
open(f'{folder}/dataset.csv', 'w').write('\n'.join(rows) + '\n')
"""#
        _ = try PythonOracle.run(script, arguments: [runner.path("datasets/" + name), structures.joined(separator: ","), "\(subjects)"])
    }

    func trainOneEpoch(model: String, structures: [String]) throws {
        let runner = try ToolRunner(name: "seed-\(model)")
        defer { runner.remove() }
        try Self.writeDataset(runner, name: model, structures: structures)
        let tiny = ["--num_epochs=1", "--crop_size=16,32,32", "--test_crop_size=16,32,32", "--inference_stride_size=16,32,32",
                    "--feature_channels=4", "--train_batch_size=2"]
        let split = try runner.run("split", ["--model=\(model)"] + tiny)
        XCTAssertEqual(split.status, 0, split.stderr)
        let run = split.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !run.isEmpty else { return }
        let train = try runner.run("train", ["--run=\(run)", "--threads=1"] + tiny)
        XCTAssertEqual(train.status, 0, train.stderr)
        for tool in ["infer", "metrics"] {
            let result = try runner.run(tool, (tool == "infer" ? ["--threads=1"] : ["run"]) + ["--run=\(run)", "--mode=Val"])
            XCTAssertEqual(result.status, 0, "\(tool): \(result.stderr)")
        }
        let metrics = try String(contentsOfFile: run + "/outputs/epoch_001/Val/metrics.csv", encoding: .utf8)
        for s in structures { XCTAssertTrue(metrics.contains(",\(s),"), "\(s) in \(metrics)") }
        // The derived per-structure values reach the run's recorded arguments.
        let args = try String(contentsOfFile: run + "/outputs/args.txt", encoding: .utf8)
        XCTAssertTrue(args.contains("zz_" + structures[0]), args)
    }

    func testProstateExampleTrains() throws {
        try trainOneEpoch(model: "Prostate", structures: ["femur_r", "femur_l", "rectum", "prostate"])
    }

    func testHeadAndNeckExampleTrains() throws {
        try trainOneEpoch(model: "HeadAndNeck", structures: ["parotid_l", "parotid_r", "smg_l", "smg_r", "spinal_cord"])
    }
}

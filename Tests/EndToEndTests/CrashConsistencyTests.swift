import Foundation
import XCTest

/// kill -9 at random moments of every tool that writes into a run (issue 11, "beyond the probes"): after each
/// kill, every file a reader can see under its final name is complete (read back by nibabel, python's csv and
/// json readers, and a PNG chunk walk), and rerunning the same command completes.
final class CrashConsistencyTests: XCTestCase {
    /// Checks every visible file under `folder` (temporary files are hidden: `.name.tmp.*`); prints the problems.
    static let checker = """
        import csv, json, os, struct, sys
        import nibabel as nib
        root = sys.argv[1]
        problems = []
        for folder, dirs, files in os.walk(root):
            for name in files:
                if name.startswith('.'):
                    continue
                path = os.path.join(folder, name)
                try:
                    if name.endswith('.nii.gz') or name.endswith('.nii'):
                        nib.load(path).get_fdata()
                    elif name.endswith('.csv'):
                        with open(path, newline='', encoding='utf-8') as f:
                            rows = list(csv.reader(f))
                        assert rows, 'empty'
                        assert all(len(r) == len(rows[0]) for r in rows), 'a short row'
                    elif name.endswith('.json') or name.endswith('.ipynb'):
                        with open(path, encoding='utf-8') as f:
                            json.load(f)
                    elif name.endswith('.png'):
                        data = open(path, 'rb').read()
                        assert data[:8] == b'\\x89PNG\\r\\n\\x1a\\n', 'signature'
                        at, last = 8, b''
                        while at < len(data):
                            length, kind = struct.unpack('>I4s', data[at:at + 8])
                            at += 12 + length
                            last = kind
                        assert last == b'IEND' and at == len(data), 'truncated'
                    elif name.endswith('.html'):
                        assert open(path, encoding='utf-8').read().rstrip().endswith('</html>'), 'truncated'
                except Exception as e:
                    problems.append(f'{path}: {e!r}')
        print('\\n'.join(problems))
        """

    func testKilledEvaluationToolsLeaveOnlyCompleteFilesAndRerunToCompletion() throws {
        let runner = try ToolRunner(name: "crash")
        defer { runner.remove() }
        let run = try PipelineTests.trainedRun(runner, subjects: 6, epochs: 1)
        let checkpoint = run + "/outputs/checkpoints/epoch_001.ckpt"
        let steps: [(String, [String])] = [
            ("infer", ["--run=\(run)", "--mode=Val", "--threads=1"]),
            ("metrics", ["run", "--run=\(run)", "--mode=Val"]),
            ("ensemble", ["--run=\(run)", "--mode=Test", "--checkpoint=\(checkpoint)", "--checkpoint=\(checkpoint)", "--threads=1"]),
            ("infer", ["--run=\(run)", "--mode=Test", "--threads=1"]),
            ("metrics", ["run", "--run=\(run)", "--mode=Test"]),
            ("report", ["--run=\(run)"]),
        ]
        var generator = SystemRandomNumberGenerator()
        for (tool, arguments) in steps {
            for _ in 0..<3 {
                let process = try runner.start(tool, arguments)
                usleep(UInt32.random(in: 20_000...600_000, using: &generator))
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                let problems = try ToolRunner.python(Self.checker.replacingOccurrences(of: "sys.argv[1]", with: "'\(run)'"))
                XCTAssertEqual(problems.trimmingCharacters(in: .whitespacesAndNewlines), "", "after killing ie-\(tool)")
            }
            let rerun = try runner.run(tool, arguments)
            XCTAssertEqual(rerun.status, 0, "ie-\(tool) after kills: \(rerun.stderr)")
        }
        let info = try HPCTest.json(run + "/run.json")
        XCTAssertEqual(info["status"] as? String, "completed", "\(info["error"] ?? "")")
    }
    /// The cross-validation ensemble step (`ie-crossval ensemble --run=PARENT`, what Slurm's afterok job runs),
    /// killed twice at random moments, leaves only complete files and completes when rerun.
    func testKilledCrossValidationEnsembleStepRerunsToCompletion() throws {
        let bin = try HPCTest.binFolder()
        let project = try HPCTest.makeProject(subjects: 8)
        defer { try? FileManager.default.removeItem(atPath: project) }
        let settings = "--settings=\(project)/settings.yml"
        let parent = try HPCTest.split(project: project, arguments: ["--num_epochs=1", "--crop_size=16,32,32",
                                                                     "--test_crop_size=16,48,48",
                                                                     "--number_of_cross_validation_splits=2"])
        let folds = try HPCTest.run(bin + "/ie-crossval", ["folds", settings, "--run=\(parent)"], in: project)
        XCTAssertEqual(folds.status, 0, folds.stderr)
        for k in 0..<2 {
            let fold = try HPCTest.trainAndEvaluate(run: "\(parent)_\(k)", settings: settings, project: project,
                                                    extra: ["--threads=1", "--quiet"])
            XCTAssertEqual(fold.status, 0, fold.stderr)
        }
        let arguments = ["ensemble", settings, "--run=\(parent)", "--threads=1", "--quiet"]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: bin + "/ie-crossval")
            process.arguments = arguments
            process.currentDirectoryURL = URL(fileURLWithPath: project)
            // gnuplot's scratch folder of a killed step stays in the project, removed with it.
            process.environment = ProcessInfo.processInfo.environment.merging(["TMPDIR": project]) { _, new in new }
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32.random(in: 200_000...3_000_000, using: &generator))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            let problems = try ToolRunner.python(Self.checker.replacingOccurrences(of: "sys.argv[1]", with: "'\(parent)'"))
            XCTAssertEqual(problems.trimmingCharacters(in: .whitespacesAndNewlines), "", "after killing the ensemble step")
        }
        let rerun = try HPCTest.run(bin + "/ie-crossval", arguments, in: project)
        XCTAssertEqual(rerun.status, 0, rerun.stderr)
        XCTAssertEqual(try HPCTest.json(parent + "/run.json")["status"] as? String, "completed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: parent + "/outputs/CrossValResults/MetricsAcrossAllRuns.csv"))
    }
}

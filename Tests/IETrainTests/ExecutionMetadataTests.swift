import XCTest
@testable import IETrain

/// A resume under another convolution precision is warned about like one under another thread count (the
/// end-to-end resume test, PipelineTests, cannot switch precision on a CPU without AVX512_BF16).
final class ExecutionMetadataTests: XCTestCase {
    func testPrecisionChangeOnResumeWarns() {
        let saved = ["precision": "bf16", "threads": "1"]
        let warnings = Trainer.reproducibilityWarnings(saved: saved, now: ["precision": "fp32", "threads": "1"],
                                                       source: "autosave.ckpt")
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains("convolution precision bf16, this run uses fp32") ?? false, "\(warnings)")
        XCTAssertEqual(Trainer.reproducibilityWarnings(saved: saved, now: saved, source: "autosave.ckpt"), [])
        XCTAssertEqual(Trainer.reproducibilityWarnings(saved: ["threads": "1"], now: ["precision": "bf16", "threads": "1"],
                                                       source: "old.ckpt"), [], "checkpoints from before the key: silent")
    }
}

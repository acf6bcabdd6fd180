import XCTest
import IECore
@testable import IETrain

final class TransformsPipelineTests: XCTestCase {
    let augmentations: [TransformRecord] = [
        ["name": .text("RandomResizedCrop"), "size": .numbers([12, 12]), "scale": .numbers([0.5, 1])],
        ["name": .text("RandomAffine"), "p": .number(0.8), "degrees": .number(15), "translate": .numbers([0.1, 0.1]),
         "scale": .numbers([0.9, 1.1]), "shear": .number(5)],
        ["name": .text("RandomHorizontalFlip")],
        ["name": .text("ColorJitter"), "brightness": .number(0.2), "contrast": .number(0.2)],
        ["name": .text("GaussianNoise"), "std": .numbers([0, 0.05])],
        ["name": .text("ElasticDeformation"), "p": .number(0.5), "magnitude": .number(1.5)],
        ["name": .text("RandomErasing")],
    ]

    func testTheSameSeedEpochAndSubjectGiveTheSameOutputWhateverTheOrder() throws {
        let pipeline = try TransformPipeline(records: augmentations, label: "train_transforms")
        let image = distinctImage(channels: 1, height: 16, width: 16)
        let subjects = (0..<8).map { "subject\($0)" }
        func outputs(_ order: [String]) throws -> [String: TransformImage] {
            var result: [String: TransformImage] = [:]
            for s in order { result[s] = try pipeline.apply(image, seed: 42, epoch: 3, subject: s) }
            return result
        }
        let forward = try outputs(subjects)
        // Reversed order, and concurrently: identical per subject.
        XCTAssertEqual(try outputs(subjects.reversed()), forward)
        let lock = NSLock()
        nonisolated(unsafe) var concurrent: [String: TransformImage] = [:]
        DispatchQueue.concurrentPerform(iterations: subjects.count) { i in
            let out = try? pipeline.apply(image, seed: 42, epoch: 3, subject: subjects[i])
            lock.lock(); concurrent[subjects[i]] = out; lock.unlock()
        }
        XCTAssertEqual(concurrent, forward)
        // Different subjects, epochs, seeds or modes give different outputs.
        XCTAssertEqual(Set(forward.values.map { $0.values }).count, subjects.count)
        XCTAssertNotEqual(try pipeline.apply(image, seed: 42, epoch: 4, subject: "subject0"), forward["subject0"])
        XCTAssertNotEqual(try pipeline.apply(image, seed: 43, epoch: 3, subject: "subject0"), forward["subject0"])
        XCTAssertNotEqual(try pipeline.apply(image, seed: 42, epoch: 3, subject: "subject0", mode: "val"), forward["subject0"])
    }

    func testAResumedGeneratorContinuesBitIdentically() throws {
        // A generator restored from its saved state gives the same transforms as one that ran uninterrupted.
        let pipeline = try TransformPipeline(records: augmentations, label: "train_transforms")
        let image = distinctImage(channels: 1, height: 16, width: 16)
        var straight = TransformPipeline.generator(seed: 9, epoch: 0, subject: "a")
        let first = try pipeline.apply(image, using: &straight)
        var restored = try Xoshiro256(state: straight.state)
        XCTAssertEqual(try pipeline.apply(first, using: &restored), try pipeline.apply(first, using: &straight))
    }

    func testChangingOneTransformDoesNotChangeTheDrawsOfTheOthers() throws {
        // Each transform consumes exactly one number of the subject's stream: a different noise level before
        // the flip leaves the flip's decision unchanged.
        let image = distinctImage(channels: 1, height: 6, width: 6)
        var flips = 0
        for s in 0..<10 {
            func run(std: Double) throws -> TransformImage {
                try runPipeline([["name": .text("GaussianNoise"), "std": .numbers([std, std])],
                                 ["name": .text("RandomHorizontalFlip")]], on: image, subject: "s\(s)")
            }
            let flipOnly = try run(std: 0), noisy = try run(std: 0.01)
            for y in 0..<6 { for x in 0..<6 { XCTAssertEqual(noisy[0, y, x], flipOnly[0, y, x], accuracy: 0.1) } }
            if flipOnly != image { flips += 1 }
        }
        XCTAssert(flips > 0 && flips < 10, "\(flips) of 10 flipped")
    }

    func testPipelinesForTrainingAndEvaluationAreSeparate() throws {
        let pipelines = TransformPipelines(
            train: try TransformPipeline(records: [["name": .text("RandomVerticalFlip"), "p": .number(1)]], label: "train_transforms"),
            evaluation: try TransformPipeline(records: [["name": .text("CenterCrop"), "size": .number(2)]], label: "val_transforms"))
        let image = distinctImage(channels: 1, height: 4, width: 4)
        XCTAssertEqual(try pipelines.pipeline(training: true).apply(image, seed: 1, epoch: 0, subject: "a"), image.flipped(axis: 2))
        XCTAssertEqual(try pipelines.pipeline(training: false).apply(image, seed: 1, epoch: 0, subject: "a").shape, [1, 1, 2, 2])
    }

    func testLoadedYAMLRecordsBuildThePipeline() throws {
        let loaded: Any = [["name": "Resize", "size": [8, 6]] as [String: Any],
                           ["name": "RandomAffine", "p": 0.5, "degrees": 10, "shear": [-5, 5, -2, 2],
                            "interpolation": "nearest", "fill": -1] as [String: Any]]
        let pipeline = try TransformPipeline(loaded: loaded, label: "train_transforms")
        XCTAssertEqual(pipeline.transforms.count, 2)
        let affine = try XCTUnwrap(pipeline.transforms[1] as? RandomAffineTransform)
        XCTAssert(affine.degrees == (-10, 10) && affine.shearX == (-5, 5) && affine.shearY == (-2, 2))
        XCTAssert(affine.nearest && affine.fill == -1 && affine.probability == 0.5)
        // Default probabilities: torchvision's 0.5 for the flips and RandomErasing, 1 for the others.
        let defaults = try TransformPipeline(loaded: [["name": "RandomHorizontalFlip"], ["name": "RandomVerticalFlip"],
                                                      ["name": "RandomErasing"], ["name": "GaussianNoise"]],
                                             label: "train_transforms")
        XCTAssertEqual(defaults.transforms.map { $0.probability }, [0.5, 0.5, 0.5, 1])
    }

    func assertConfigError(_ records: [TransformRecord], contains parts: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try TransformPipeline(records: records, label: "train_transforms", file: "m.yml"),
                             file: file, line: line) { error in
            guard let e = error as? IEError else { return XCTFail("not an IEError: \(error)", file: file, line: line) }
            XCTAssertEqual(e.code, .usage, file: file, line: line)
            XCTAssertFalse(e.description.contains("\n"), e.description, file: file, line: line)
            XCTAssert(e.description.hasPrefix("m.yml: "), e.description, file: file, line: line)
            for part in parts { XCTAssert(e.description.contains(part), "'\(part)' not in: \(e.description)", file: file, line: line) }
        }
    }

    func testConfigErrorsNameTheIndexTheTransformAndTheField() {
        let flip: TransformRecord = ["name": .text("RandomHorizontalFlip")]
        assertConfigError([flip, ["name": .text("RandomAfine")]],
                          contains: ["train_transforms[1]", "unknown transform 'RandomAfine'", "did you mean 'RandomAffine'"])
        assertConfigError([["name": .text("RandomAffine"), "degree": .number(5)]],
                          contains: ["train_transforms[0] RandomAffine", "unknown field 'degree'", "did you mean 'degrees'"])
        assertConfigError([flip, flip, ["name": .text("RandomVerticalFlip"), "p": .number(1.5)]],
                          contains: ["train_transforms[2] RandomVerticalFlip", "field 'p' is 1.5", "[0, 1]"])
        assertConfigError([["name": .text("Resize"), "size": .numbers([-3, 4])]],
                          contains: ["train_transforms[0] Resize", "field 'size' is [-3, 4]", "positive integer"])
        assertConfigError([["name": .text("CenterCrop")]], contains: ["train_transforms[0] CenterCrop", "missing field 'size'"])
        assertConfigError([["p": .number(1)]], contains: ["train_transforms[0]", "missing field 'name'"])
        assertConfigError([["name": .text("RandomAffine"), "degrees": .number(-1)]], contains: ["field 'degrees' is -1"])
        assertConfigError([["name": .text("RandomAffine"), "translate": .numbers([0.1, 2])]], contains: ["field 'translate'"])
        assertConfigError([["name": .text("RandomAffine"), "shear": .numbers([1, 2, 3])]], contains: ["field 'shear'"])
        assertConfigError([["name": .text("RandomErasing"), "value": .text("noise")]], contains: ["field 'value' is 'noise'"])
        assertConfigError([["name": .text("RandomResizedCrop"), "size": .number(4), "ratio": .numbers([2, 1])]],
                          contains: ["field 'ratio' is [2, 1]"])
        assertConfigError([["name": .text("ElasticDeformation"), "control_points": .number(2.5)]], contains: ["field 'control_points'"])
    }
}

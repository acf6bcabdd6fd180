import IECore
import XCTest
@testable import IETrain

final class SamplingTests: XCTestCase {
    /// A 12x14x16 subject, 2 channels, classes: background, a box structure and a smaller box; mask = all
    /// but the first 2 z slices.
    func makeSubject(id: String = "s1", withSmallBox: Bool = true) throws -> SegmentationSubject {
        let shape = Shape3D(12, 14, 16)
        let n = shape.count
        var big = [UInt8](repeating: 0, count: n), small = [UInt8](repeating: 0, count: n)
        var mask = [UInt8](repeating: 0, count: n)
        for z in 0..<shape.z { for y in 0..<shape.y { for x in 0..<shape.x {
            let i = shape.index(z, y, x)
            if z >= 2 { mask[i] = 1 }
            if (3..<9).contains(z) && (2..<10).contains(y) && (4..<12).contains(x) { big[i] = 1 }
            if withSmallBox && (9..<11).contains(z) && (10..<12).contains(y) && (1..<3).contains(x) { small[i] = 1 }
        } } }
        let image = (0..<(2 * n)).map { Float($0) }   // voxel value = its flat index: crops are checkable
        return try SegmentationSubject(id: id, shape: shape, channels: 2, image: image, classCount: 3,
                                       labels: SegmentationSubject.oneHot(structures: [big, small], voxelCount: n), mask: mask)
    }

    func testOneHotBackgroundIsTheComplement() {
        let labels = SegmentationSubject.oneHot(structures: [[1, 0, 0], [0, 1, 0]], voxelCount: 3)
        XCTAssertEqual(labels, [0, 0, 1, /* s1 */ 1, 0, 0, /* s2 */ 0, 1, 0])
    }

    func testCropStartFollowsInnerEyeShiftRule() throws {
        let sampler = try CropSampler(cropSize: Shape3D(4, 4, 4))
        let shape = Shape3D(10, 10, 10)
        // centre 9: left 7, right 11 > 10 -> shifted to 6; centre 0: left -2 -> 0; centre 5: 5 - 2 = 3.
        XCTAssertEqual(sampler.cropStart(centre: Shape3D(9, 0, 5), shape: shape), Shape3D(6, 0, 3))
    }

    func testCropsContainTheirCentreClassStayInsideAndCopyTheImage() throws {
        let subject = try makeSubject()
        let sampler = try CropSampler(cropSize: Shape3D(4, 6, 8), classWeights: [0.2, 0.4, 0.4])
        var rng = Xoshiro256(seed: 11)
        for _ in 0..<300 {
            let crop = try sampler.sample(subject, using: &rng)
            let c = crop.centre, s = crop.start
            XCTAssertEqual(subject.mask![subject.shape.index(c.z, c.y, c.x)], 1, "centre inside the mask")
            for a in 0..<3 {
                XCTAssertGreaterThanOrEqual(s[a], 0)
                XCTAssertLessThanOrEqual(s[a] + crop.size[a], subject.shape[a])
                XCTAssert((s[a]...(s[a] + crop.size[a] - 1)).contains(c[a]), "centre inside the crop")
            }
            let local = crop.size.index(c.z - s.z, c.y - s.y, c.x - s.x)
            XCTAssertEqual(crop.labels[crop.chosenClass * crop.size.count + local], 1, "centre voxel has the drawn class")
            XCTAssertEqual(crop.classIndices(classCount: 3)[local], UInt8(crop.chosenClass))
            // Image values are flat indices: channel 1, crop voxel (1, 2, 3).
            let expected = Float(subject.shape.count + subject.shape.index(s.z + 1, s.y + 2, s.x + 3))
            XCTAssertEqual(crop.image[crop.size.count + crop.size.index(1, 2, 3)], expected)
        }
    }

    func testChosenClassesFollowClassWeights() throws {
        let subject = try makeSubject()
        let weights = [0.2, 0.3, 0.5]
        let sampler = try CropSampler(cropSize: Shape3D(4, 4, 4), classWeights: weights)
        var rng = Xoshiro256(seed: 5)
        let draws = 3000
        var counts = [0, 0, 0]
        for _ in 0..<draws { counts[try sampler.sampleCentre(subject, using: &rng).chosenClass] += 1 }
        // Pearson chi-square with 2 degrees of freedom; 13.8 is the 0.999 quantile.
        let chi2 = zip(counts, weights).reduce(0.0) { acc, cw in
            let e = Double(draws) * cw.1
            return acc + (Double(cw.0) - e) * (Double(cw.0) - e) / e
        }
        XCTAssertLessThan(chi2, 13.8, "counts \(counts)")
    }

    func testAbsentClassIsDroppedAndWeightsRenormalised() throws {
        let subject = try makeSubject(withSmallBox: false)
        let sampler = try CropSampler(cropSize: Shape3D(4, 4, 4), classWeights: [0.25, 0.25, 0.5])
        var rng = Xoshiro256(seed: 9)
        var counts = [0, 0, 0]
        for _ in 0..<2000 { counts[try sampler.sampleCentre(subject, using: &rng).chosenClass] += 1 }
        XCTAssertEqual(counts[2], 0)
        // Background and class 1 now have 0.5 each: 1000 +- 4.5 sd (sd = sqrt(2000 * 0.25) ~ 22.4).
        XCTAssertEqual(Double(counts[1]), 1000, accuracy: 100)
        // Only zero-weight classes present: fall back to them instead of failing.
        let onlyAbsent = try CropSampler(cropSize: Shape3D(4, 4, 4), classWeights: [0, 0, 1])
        XCTAssertNoThrow(try onlyAbsent.sampleCentre(subject, using: &rng))
        // Nothing inside the mask at all: a clear error.
        var empty = subject
        empty.mask = [UInt8](repeating: 0, count: subject.shape.count)
        XCTAssertThrowsError(try sampler.sampleCentre(empty, using: &rng))
        XCTAssertThrowsError(try CropSampler(cropSize: Shape3D(4, 4, 4), classWeights: [0.5, 0.6]))
    }

    func testPaddingMatchesNumpyPad() throws {
        // Subject 3x2x5 padded to crop 4x4x8: numpy.pad with ((1,0),(1,1),(2,1)) (ceil(diff/2) before).
        let shape = Shape3D(3, 2, 5)
        let image = (0..<shape.count).map { Float($0 * $0 % 17) }
        let structure = (0..<shape.count).map { UInt8($0 % 3 == 0 ? 1 : 0) }
        let subject = try SegmentationSubject(id: "p", shape: shape, channels: 1, image: image, classCount: 2,
                                              labels: SegmentationSubject.oneHot(structures: [structure], voxelCount: shape.count))
        let script = """
import sys, json, numpy as np
d = json.load(sys.stdin)
a = np.array(d['image']).reshape(3, 2, 5)
out = {}
for mode in ['edge', 'constant', 'reflect', 'symmetric']:
    out[mode] = np.pad(a, ((1, 0), (1, 1), (2, 1)), mode=mode).flatten().tolist()
print(json.dumps(out))
"""
        let ref = try pythonReference(script, input: ["image": image.map(Double.init)]) as! [String: Any]
        for (mode, key) in [(PaddingMode.edge, "edge"), (.zero, "constant"), (.reflect, "reflect"), (.symmetric, "symmetric")] {
            let sampler = try CropSampler(cropSize: Shape3D(4, 4, 8), paddingMode: mode)
            let (padded, offset) = sampler.padded(subject)
            XCTAssertEqual(padded.shape, Shape3D(4, 4, 8))
            XCTAssertEqual(offset, Shape3D(1, 1, 2))
            assertClose(padded.image, doubles(ref[key]), tolerance: 0, key)
            // Labels stay one-hot; with zero padding the padding is background.
            let n = padded.shape.count
            for i in 0..<n { XCTAssertEqual(Int(padded.labels[i]) + Int(padded.labels[n + i]), 1) }
            if mode == .zero { XCTAssertEqual(padded.labels[0], 1) }
            // A crop of the padded subject is the whole padded subject.
            var rng = Xoshiro256(seed: 1)
            let crop = try sampler.sample(subject, using: &rng)
            XCTAssertEqual(crop.image, padded.image)
        }
        var rng = Xoshiro256(seed: 1)
        XCTAssertThrowsError(try CropSampler(cropSize: Shape3D(4, 4, 8), paddingMode: .noPadding).sample(subject, using: &rng))
        XCTAssertEqual(PaddingMode(configValue: "Edge"), .edge)
        XCTAssertEqual(PaddingMode(configValue: "Zero"), .zero)
        XCTAssertEqual(PaddingMode(configValue: "no_padding"), .noPadding)
        XCTAssertNil(PaddingMode(configValue: "wrap"))
    }

    func testValidationCropsAreTheSameEveryEpochAndTrainingCropsVary() throws {
        let subjects = [try makeSubject(id: "a"), try makeSubject(id: "b")]
        let sampler = try CropSampler(cropSize: Shape3D(4, 4, 4), classWeights: [0.1, 0.45, 0.45])
        let epoch1 = try sampler.validationCrops(subjects, seed: 42, cropsPerSubject: 3)
        let epoch2 = try sampler.validationCrops(subjects, seed: 42, cropsPerSubject: 3)
        XCTAssertEqual(epoch1.map(\.start), epoch2.map(\.start))
        XCTAssertEqual(epoch1.map(\.image), epoch2.map(\.image))
        var rng = Xoshiro256(seed: 42)
        let starts = try (0..<20).map { _ in try sampler.sample(subjects[0], using: &rng).start }
        XCTAssertGreaterThan(Set(starts).count, 1)
        // Same seed, same generator state: same crops (reproducible training).
        var r1 = Xoshiro256(seed: 3), r2 = try Xoshiro256(state: Xoshiro256(seed: 3).state)
        XCTAssertEqual(try sampler.sample(subjects[1], using: &r1).start, try sampler.sample(subjects[1], using: &r2).start)
    }
}

final class CropBatchTests: XCTestCase {
    func testBatchStacksCropsInNCDHWOrder() throws {
        let s = Shape3D(1, 1, 2)
        func crop(_ base: Float, _ classes: [Int]) -> Crop {
            var labels = [UInt8](repeating: 0, count: 2 * 2)
            for (i, k) in classes.enumerated() { labels[k * 2 + i] = 1 }
            return Crop(size: s, image: [base, base + 1, base + 2, base + 3], labels: labels, mask: [1, 1],
                        centre: Shape3D(0, 0, 0), start: Shape3D(0, 0, 0), paddingOffset: Shape3D(0, 0, 0), chosenClass: 0)
        }
        let batch = CropBatch([crop(0, [0, 1]), crop(10, [1, 1])], classCount: 2)
        XCTAssertEqual(batch.count, 2)
        XCTAssertEqual(batch.images, [0, 1, 2, 3, 10, 11, 12, 13])
        XCTAssertEqual(batch.labels, [1, 0, 0, 1, /* second crop */ 0, 0, 1, 1])
        XCTAssertEqual(batch.classIndices, [0, 1, 1, 1])
    }
}

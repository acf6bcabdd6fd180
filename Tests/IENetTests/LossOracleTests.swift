import Foundation
import XCTest
import IETestSupport
@testable import IENet

/// The losses against a numpy re-implementation of InnerEye's formulas (ML/models/losses/soft_dice.py,
/// cross_entropy.py, mixture.py, utils/image_util.get_class_weights, utils/supervised_criterion's label smoothing,
/// utils/model_util.create_segmentation_loss_function's mixture renormalisation), in float64. Gradients are
/// checked against central finite differences of that numpy loss (focal pixel weights frozen, as InnerEye computes
/// them under no_grad).
final class LossOracleTests: XCTestCase {
    struct Spec {
        var json: [String: Any]
        var loss: SegmentationLoss
    }

    static func softDice(_ power: Double? = nil) -> Spec {
        Spec(json: ["type": "SoftDice", "power": power.map { $0 as Any } ?? NSNull()], loss: .softDice(classWeightPower: power))
    }
    static func crossEntropy(_ power: Double? = nil, smoothing: Double = 0) -> Spec {
        Spec(json: ["type": "CrossEntropy", "power": power.map { $0 as Any } ?? NSNull(), "smoothing": smoothing],
             loss: .crossEntropy(classWeightPower: power, smoothingEps: smoothing))
    }
    static func focal(_ gamma: Double, _ power: Double? = nil) -> Spec {
        Spec(json: ["type": "Focal", "power": power.map { $0 as Any } ?? NSNull(), "gamma": gamma], loss: .focal(gamma: gamma, classWeightPower: power))
    }
    static func mixture(_ parts: [(Double, Spec)]) -> Spec {
        Spec(json: ["type": "Mixture", "components": parts.map { ["weight": $0.0, "loss": $0.1.json] as [String: Any] }],
             loss: .mixture(parts.map { (weight: $0.0, loss: $0.1.loss) }))
    }

    static let oracle = #"""
import json, sys
import numpy as np

d = json.load(sys.stdin)
shape = d["shape"]
logits0 = np.array(d["logits"], dtype=np.float64).reshape(shape)
target0 = np.array(d["target"], dtype=np.float64).reshape(shape)
spatial = tuple(range(2, len(shape)))

def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))

def get_class_weights(t, power):
    counts = t.sum(axis=(0,) + spatial)
    counts[counts == 0.0] = 1.0
    w = counts ** (-power)
    return w * (w.shape[0] / w.sum())

def smooth(t, eps):
    c = t.shape[1]
    return t * (1.0 - eps) + (1.0 - t) * eps / (c - 1.0)

def soft_dice(x, t, power, eps=1e-10):
    out = softmax(x)
    intersection = np.sum(out * t + eps, axis=spatial)
    if power is not None and power != 0.0:
        intersection = np.einsum("ij,j->ij", intersection, get_class_weights(t, power))
    sum_squares = np.sum(out * out + eps, axis=spatial) + np.sum(t * t + eps, axis=spatial)
    return 1.0 - 2.0 * np.mean(intersection / sum_squares)

def focal_pixel_weights(x, t, gamma):
    assert np.sum(t == 1.0) == t.size / t.shape[1]
    w = np.sum((1 - softmax(x) + 1e-6) ** gamma * t, axis=1)
    return w * (w.size / (np.sum(w) + 1e-6))

def cross_entropy(x, t, power, smoothing, gamma, frozen):
    if smoothing > 0.0:
        t = smooth(t, smoothing)
    w = get_class_weights(t, power) if (power is not None and power != 0.0) else None
    lp = log_softmax(x)
    if smoothing > 0.0:
        loss = -1.0 * lp * t
        if w is not None:
            loss = np.einsum("bc...,c->b...", loss, w)
    else:
        labels = np.argmax(t, axis=1)
        picked = np.take_along_axis(lp, labels[:, None], axis=1)[:, 0]
        loss = -picked * (w[labels] if w is not None else 1.0)
    if gamma is not None:
        loss = loss * frozen
    return np.mean(loss)

def make(spec):
    """A function of the logits (and the frozen focal weights, computed once at the base logits)."""
    kind = spec["type"]
    if kind == "SoftDice":
        return lambda x: soft_dice(x, target0, spec.get("power"))
    if kind in ("CrossEntropy", "Focal"):
        gamma = spec.get("gamma") if kind == "Focal" else None
        frozen = focal_pixel_weights(logits0, target0, gamma) if gamma is not None else None
        return lambda x: cross_entropy(x, target0, spec.get("power"), spec.get("smoothing", 0.0), gamma, frozen)
    if kind == "Mixture":
        total = sum(c["weight"] for c in spec["components"])
        parts = [(c["weight"] / total, make(c["loss"])) for c in spec["components"]]
        return lambda x: sum(w * f(x) for w, f in parts)
    raise SystemExit("unknown loss " + kind)

results = []
h = 1e-5
for spec in d["losses"]:
    f = make(spec)
    grad = np.zeros(logits0.size)
    flat = logits0.reshape(-1)
    for i in range(flat.size):
        plus = flat.copy(); plus[i] += h
        minus = flat.copy(); minus[i] -= h
        grad[i] = (f(plus.reshape(shape)) - f(minus.reshape(shape))) / (2 * h)
    results.append({"value": float(f(logits0)), "grad": grad.tolist()})
print(json.dumps(results))
"""#

    func testLossesMatchANumpyReimplementationOfInnerEyesFormulas() throws {
        // 4 classes; class 3 never occurs (a zero count: weight from count 1), class 2 only in crop 0 (so crop 1
        // has an absent class, whose Dice ratio is eps-only).
        let shape = [2, 4, 3, 4, 5]
        var random = TestRandom(41)
        let logits = random.tensor(shape, scale: 1.5)
        var target = Tensor(zeros: shape)
        let s = 60
        for b in 0..<2 {
            for i in 0..<s {
                let u = random.index(10)
                let label = b == 0 ? (u < 5 ? 0 : u < 8 ? 1 : 2) : (u < 6 ? 0 : 1)
                target.data[(b * 4 + label) * s + i] = 1
            }
        }
        let specs: [(String, Spec)] = [
            ("SoftDice", Self.softDice()),
            ("SoftDice power 1", Self.softDice(1)),
            ("SoftDice power 0.5", Self.softDice(0.5)),
            ("CrossEntropy", Self.crossEntropy()),
            ("CrossEntropy power 1", Self.crossEntropy(1)),
            ("CrossEntropy smoothing 0.1", Self.crossEntropy(smoothing: 0.1)),
            ("CrossEntropy smoothing 0.1 power 0.5", Self.crossEntropy(0.5, smoothing: 0.1)),
            ("Focal gamma 2", Self.focal(2)),
            ("Focal gamma 1 power 1", Self.focal(1, 1)),
            ("Mixture 0.6 SoftDice power 1 + 1.4 Focal gamma 2", Self.mixture([(0.6, Self.softDice(1)), (1.4, Self.focal(2))])),
            ("Mixture 1 CrossEntropy + 1 SoftDice", Self.mixture([(1, Self.crossEntropy()), (1, Self.softDice())])),
        ]
        let request: [String: Any] = [
            "shape": shape,
            "logits": logits.data.map(Double.init),
            "target": target.data.map(Double.init),
            "losses": specs.map { $0.1.json },
        ]
        let input = try JSONSerialization.data(withJSONObject: request)
        let answer = try XCTUnwrap(try PythonOracle.json(Self.oracle, input: input) as? [[String: Any]])
        XCTAssertEqual(answer.count, specs.count)
        for ((label, spec), reference) in zip(specs, answer) {
            let ours = spec.loss.evaluate(logits: logits, target: target)
            let value = try XCTUnwrap(reference["value"] as? Double, label)
            XCTAssertEqual(ours.value, value, accuracy: 2e-6 * max(1, abs(value)), "\(label): loss value")
            let grad = try XCTUnwrap(reference["grad"] as? [Double], label)
            XCTAssertEqual(grad.count, logits.count)
            let largest = grad.map(abs).max() ?? 0
            XCTAssertGreaterThan(largest, 1e-5, "\(label): the reference gradient should not vanish")
            var worst = 0.0, worstIndex = 0
            for i in 0..<grad.count {
                let error = abs(Double(ours.gradLogits.data[i]) - grad[i])
                if error > worst { worst = error; worstIndex = i }
            }
            XCTAssertLessThan(worst, 1e-4 * largest + 1e-9,
                              "\(label): gradient at \(worstIndex): ours \(ours.gradLogits.data[worstIndex]), numpy \(grad[worstIndex])")
        }
    }

    /// Our mixture with weights not summing to 1 differs from the plain weighted sum: the renormalisation matters.
    func testOracleTellsRenormalisedFromPlainMixture() throws {
        let shape = [1, 2, 1, 2, 3]
        var random = TestRandom(43)
        let logits = random.tensor(shape)
        var target = Tensor(zeros: shape)
        for i in 0..<6 { target.data[(i % 2) * 6 + i] = 1 }
        let spec = Self.mixture([(2, Self.softDice()), (2, Self.crossEntropy())])
        let request: [String: Any] = ["shape": shape, "logits": logits.data.map(Double.init),
                                      "target": target.data.map(Double.init), "losses": [spec.json]]
        let answer = try XCTUnwrap(try PythonOracle.json(Self.oracle, input: JSONSerialization.data(withJSONObject: request)) as? [[String: Any]])
        let value = try XCTUnwrap(answer.first?["value"] as? Double)
        let dice = SegmentationLoss.softDice().evaluate(logits: logits, target: target).value
        let ce = SegmentationLoss.crossEntropy().evaluate(logits: logits, target: target).value
        XCTAssertEqual(value, 0.5 * dice + 0.5 * ce, accuracy: 1e-6)
        XCTAssertGreaterThan(abs(value - (2 * dice + 2 * ce)), 0.1)
    }
}

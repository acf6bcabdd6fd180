import Foundation
import IECore

/// What a network keeps in a checkpoint, in PyTorch's state_dict order: plain parameters and BatchNorm layers
/// (weight, bias and running statistics). A model lists its entries; the state_dict, the parameter list and
/// strict loading are defined once here for every model (UNet3D, ImageClassifier).
public enum StateEntry {
    case parameter(Parameter)
    case batchNorm(BatchNorm3d)
}

public protocol StatefulModel: AnyObject {
    /// The entries in state_dict order.
    var stateEntries: [StateEntry] { get }
    /// The architecture in words, for errors about tensors that do not fit.
    var architectureDescription: String { get }
}

extension StatefulModel {
    /// Trainable tensors in state_dict order.
    public var parameters: [Parameter] {
        stateEntries.flatMap { entry -> [Parameter] in
            switch entry {
            case .parameter(let p): return [p]
            case .batchNorm(let bn): return [bn.weight, bn.bias]
            }
        }
    }

    public var batchNorms: [BatchNorm3d] {
        stateEntries.compactMap { if case .batchNorm(let bn) = $0 { return bn } else { return nil } }
    }

    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// The PyTorch state_dict keys, in PyTorch's order.
    public var stateDictNames: [String] { stateDictLayout.map(\.name) }

    /// Each state_dict entry's name and shape, and whether it is the int64 counter num_batches_tracked, in
    /// PyTorch's order (the values are not copied, unlike `stateDict()`).
    var stateDictLayout: [(name: String, shape: [Int], counter: Bool)] {
        stateEntries.flatMap { entry -> [(name: String, shape: [Int], counter: Bool)] in
            switch entry {
            case .parameter(let p):
                return [(p.name, p.shape, false)]
            case .batchNorm(let bn):
                let c = [bn.channels]
                return [(bn.weight.name, c, false), (bn.bias.name, c, false), (bn.name + ".running_mean", c, false),
                        (bn.name + ".running_var", c, false), (bn.name + ".num_batches_tracked", [], true)]
            }
        }
    }

    /// All parameters and BatchNorm buffers as named tensors (PyTorch layout; num_batches_tracked as int64).
    public func stateDict() -> [NamedTensor] {
        stateEntries.flatMap { entry -> [NamedTensor] in
            switch entry {
            case .parameter(let p):
                return [NamedTensor(name: p.name, shape: p.shape, float32: p.value)]
            case .batchNorm(let bn):
                return [NamedTensor(name: bn.weight.name, shape: [bn.channels], float32: bn.weight.value),
                        NamedTensor(name: bn.bias.name, shape: [bn.channels], float32: bn.bias.value),
                        NamedTensor(name: bn.name + ".running_mean", shape: [bn.channels], float32: bn.runningMean),
                        NamedTensor(name: bn.name + ".running_var", shape: [bn.channels], float32: bn.runningVar),
                        NamedTensor(name: bn.name + ".num_batches_tracked", shape: [], int64: [bn.numBatchesTracked])]
            }
        }
    }

    /// Loads a state_dict (a leading `model.` prefix is accepted, as in PyTorch Lightning checkpoints). Strict as
    /// PyTorch's `load_state_dict`: the error names the first missing or wrongly shaped tensor in state_dict
    /// order and the first unexpected one; only a missing BatchNorm `num_batches_tracked` is accepted (PyTorch
    /// fills it in too; it then reads 0). Nothing is changed unless everything matches. `source` names the file.
    public func loadStateDict(_ tensors: [NamedTensor], source: String = "checkpoint") throws {
        var byName: [String: NamedTensor] = [:]
        for t in tensors {
            let name = t.name.hasPrefix("model.") ? String(t.name.dropFirst(6)) : t.name
            byName[name] = t
        }
        let expected = stateDictLayout
        let expectedNames = Set(expected.map(\.name))
        var problems: [String] = []
        for e in expected {
            guard let t = byName[e.name] else {
                if e.name.hasSuffix(".num_batches_tracked") { continue }
                problems.append("tensor \(e.name) is missing (shape \(e.shape) expected)")
                break
            }
            if t.shape != e.shape && !(e.shape.isEmpty && t.shape == [1]) {
                problems.append("tensor \(e.name) has shape \(t.shape), expected \(e.shape)")
                break
            }
            let counter = e.counter
            guard (counter ? ["I64", "I32"] : ["F32", "F64", "F16", "BF16"]).contains(t.dtype) else {
                problems.append("tensor \(e.name) has dtype \(t.dtype), expected \(counter ? "I64" : "F32")")
                break
            }
        }
        let unexpected = tensors.map(\.name).filter {
            !expectedNames.contains($0.hasPrefix("model.") ? String($0.dropFirst(6)) : $0) && !$0.hasPrefix("optimizer/")
        }
        if let first = unexpected.first {
            problems.append("unexpected tensor \(first)" + (unexpected.count > 1 ? " (+\(unexpected.count - 1) more)" : ""))
        }
        if !problems.isEmpty {
            throw IEError.badInput("\(source): state dict does not fit \(architectureDescription): " + problems.joined(separator: "; "))
        }
        func floats(_ name: String) throws -> [Float] {
            guard let t = byName[name] else { throw IEError.badInput("\(source): tensor \(name) is missing") }
            return try t.floatValues(source: source)
        }
        for entry in stateEntries {
            switch entry {
            case .parameter(let p):
                p.value = try floats(p.name)
            case .batchNorm(let bn):
                bn.weight.value = try floats(bn.weight.name)
                bn.bias.value = try floats(bn.bias.name)
                bn.runningMean = try floats(bn.name + ".running_mean")
                bn.runningVar = try floats(bn.name + ".running_var")
                bn.numBatchesTracked = try byName[bn.name + ".num_batches_tracked"]?.int64Values(source: source).first ?? 0
            }
        }
    }
}

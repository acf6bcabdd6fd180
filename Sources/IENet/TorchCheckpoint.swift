import Foundation
import IECore

/// PyTorch's own checkpoint format (`torch.save` since PyTorch 1.6): a ZIP of stored entries
/// `<prefix>/data.pkl` (the pickled object), `<prefix>/byteorder` and `<prefix>/data/<key>` (one raw storage per
/// key). The object is either a state_dict or a PyTorch Lightning checkpoint dict whose `state_dict` key holds
/// it (InnerEye's `.ckpt` files: keys prefixed `model.`); everything else in it (epoch, optimizer_states,
/// hyper_parameters, callbacks, ...) is parsed by the safe unpickler and ignored.
extension Checkpoint {
    /// The first bytes of a pickle written by torch.save before 1.6 (`_use_new_zipfile_serialization=False`):
    /// PROTO 2, then LONG1 of the 10-byte magic number.
    static func isLegacyTorchFile(_ data: Data) -> Bool {
        data.count >= 4 && data.prefix(4).elementsEqual([0x80, 0x02, 0x8A, 0x0A])
    }

    static func loadTorchZip(_ data: Data, source: String) throws -> Checkpoint {
        let archive = try StoredZip(data, source: source)
        let pickles = archive.names.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/", omittingEmptySubsequences: false).count == 2 }
        guard let pickleName = pickles.first, let pickle = archive.entry(pickleName) else {
            throw IEError.badInput("\(source): a ZIP archive without <name>/data.pkl, expected a checkpoint written by torch.save")
        }
        let prefix = String(pickleName.dropLast("data.pkl".count))
        if let order = archive.entry(prefix + "byteorder") {
            let text = String(decoding: order, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard text == "little" else { throw IEError.badInput("\(source): byteorder is \(text), expected little") }
        }
        let unpickler = SafeUnpickler(source: source + ":" + pickleName)
        let root = try unpickler.load(pickle)
        guard var stateDict = unpickler.dictionary(root) else {
            throw IEError.badInput("\(source): torch.save holds a \(root.kind), expected a state_dict or a Lightning checkpoint dict")
        }
        if let weights = stateDict["state_dict"] {
            guard let inner = unpickler.dictionary(weights) else {
                throw IEError.badInput("\(source): state_dict is a \(weights.kind), expected a dict of tensors")
            }
            stateDict = inner
        }
        var tensors: [NamedTensor] = []
        for (key, value) in zip(stateDict.keys, stateDict.values) {
            guard case .string(let name) = key else {
                throw IEError.badInput("\(source): state_dict has a \(key.kind) key, expected tensor names")
            }
            guard case .tensor(let t) = value else {
                throw IEError.badInput("\(source): state_dict entry \(name) is a \(value.kind), expected a tensor "
                                       + "(a Lightning checkpoint keeps its weights under state_dict)")
            }
            tensors.append(try materialise(unpickler.tensors[t], name: name, storages: unpickler.storages, archive: archive,
                                           prefix: prefix, source: source))
        }
        return Checkpoint(tensors: tensors)
    }

    private static func materialise(_ tensor: PickledTensor, name: String, storages: [PickledStorage], archive: StoredZip,
                                     prefix: String, source: String) throws -> NamedTensor {
        let storage = storages[tensor.storage]
        guard let range = archive.entries[prefix + "data/" + storage.key] else {
            throw IEError.badInput("\(source): tensor \(name): storage file \(prefix)data/\(storage.key) is missing")
        }
        guard let size = NamedTensor.elementSize(storage.dtype) else {
            throw IEError.badInput("\(source): tensor \(name) has unknown dtype \(storage.dtype)")
        }
        guard range.count / size == storage.elementCount, range.count % size == 0 else {
            throw IEError.badInput("\(source): tensor \(name): storage \(prefix)data/\(storage.key) holds \(range.count) bytes, "
                                   + "the pickle says \(storage.elementCount) elements of \(storage.dtype)")
        }
        guard tensor.isContiguous else {
            throw IEError.badInput("\(source): tensor \(name) is not contiguous (size \(tensor.shape), stride \(tensor.stride)), "
                                   + "expected a contiguous tensor (save model.state_dict() or call .contiguous())")
        }
        // The unpickler checked that offset + count fits the storage's element count, which equals the file's.
        let count = tensor.shape.reduce(1, *)
        if count == 0 { return NamedTensor(name: name, shape: tensor.shape, dtype: storage.dtype, bytes: Data()) }
        let start = archive.data.startIndex + range.lowerBound + tensor.offset * size
        return NamedTensor(name: name, shape: tensor.shape, dtype: storage.dtype,
                           bytes: archive.data.subdata(in: start..<(start + count * size)))
    }
}

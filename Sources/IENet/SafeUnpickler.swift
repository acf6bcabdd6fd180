import Foundation
import IECore

/// A value of the restricted pickle machine. Containers live in the unpickler's arrays and are referred to by
/// index, so hostile nesting can neither recurse nor build deep ownership chains.
enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes(Int)
    case tuple(Int)     // index into `sequences`
    case list(Int)      // index into `sequences`
    case dict(Int)      // index into `dicts`
    case global(String) // "module name" of an allow-listed class or function
    case storage(Int)   // index into `storages`
    case tensor(Int)    // index into `tensors`

    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let name): return name
        case .storage: return "storage"
        case .tensor: return "tensor"
        }
    }
}

/// A dict in insertion order (Python's), with later SETITEMs of an equal str/int key replacing the value.
struct PickleDict {
    private(set) var keys: [PickleValue] = []
    private(set) var values: [PickleValue] = []
    private var index: [String: Int] = [:]

    mutating func set(_ key: PickleValue, _ value: PickleValue) {
        let hashKey: String?
        switch key {
        case .string(let s): hashKey = "s" + s
        case .int(let i): hashKey = "i\(i)"
        case .bool(let b): hashKey = "i\(b ? 1 : 0)"
        default: hashKey = nil
        }
        if let hashKey, let at = index[hashKey] { values[at] = value; return }
        if let hashKey { index[hashKey] = keys.count }
        keys.append(key)
        values.append(value)
    }

    subscript(key: String) -> PickleValue? { index["s" + key].map { values[$0] } }
}

/// A torch storage named by a persistent id: its file `<prefix>/data/<key>`, dtype (safetensors name) and size.
struct PickledStorage {
    let key: String
    let dtype: String
    let elementCount: Int
}

/// A tensor rebuilt by `torch._utils._rebuild_tensor_v2`: a view of a storage (sizes already checked to fit it).
struct PickledTensor {
    let storage: Int
    let offset: Int
    let shape: [Int]
    let stride: [Int]

    var isContiguous: Bool {
        var expected = 1
        for (size, step) in zip(shape, stride).reversed() where size != 1 {
            if step != expected { return false }
            expected *= size
        }
        return true
    }
}

/// A pickle reader for what `torch.save` writes (protocol 2; the protocol 4 opcodes that carry the same kinds
/// of values are accepted too). It never imports or calls anything: GLOBAL names are checked against an
/// allow-list and stand for the few constructors it models itself (OrderedDict, the tensor and parameter
/// rebuilders, the typed storages, Lightning's AttributeDict and argparse's Namespace as dicts). Any other
/// global, and any opcode outside the subset, is an IEError naming it.
final class SafeUnpickler {
    static let storageTypes: [String: String] = [
        "torch FloatStorage": "F32", "torch DoubleStorage": "F64", "torch HalfStorage": "F16",
        "torch BFloat16Storage": "BF16", "torch LongStorage": "I64", "torch IntStorage": "I32",
        "torch ShortStorage": "I16", "torch CharStorage": "I8", "torch ByteStorage": "U8", "torch BoolStorage": "BOOL",
    ]
    static let dictClasses: Set<String> = [
        "collections OrderedDict", "pytorch_lightning.utilities.parsing AttributeDict",
        "lightning_fabric.utilities.data AttributeDict", "lightning.fabric.utilities.data AttributeDict", "argparse Namespace",
    ]
    static let rebuildTensor = "torch._utils _rebuild_tensor_v2"
    static let rebuildParameter = "torch._utils _rebuild_parameter"
    static var allowedGlobals: Set<String> {
        Set(storageTypes.keys).union(dictClasses).union([rebuildTensor, rebuildParameter])
    }

    private(set) var sequences: [[PickleValue]] = []
    private(set) var dicts: [PickleDict] = []
    private(set) var storages: [PickledStorage] = []
    private(set) var tensors: [PickledTensor] = []
    private(set) var byteStrings: [Data] = []
    private var storageIndex: [String: Int] = [:]
    private let source: String

    init(source: String) { self.source = source }

    private func bad(_ detail: String, at offset: Int) -> IEError {
        IEError.badInput("\(source): unsupported or corrupt pickle at byte \(offset): \(detail)")
    }

    func load(_ data: Data) throws -> PickleValue {
        let bytes = [UInt8](data)
        var position = 0
        var stack: [PickleValue] = []
        var marks: [Int] = []
        var memo: [Int: PickleValue] = [:]
        var opcodeStart = 0

        func take(_ count: Int) throws -> ArraySlice<UInt8> {
            guard count >= 0, count <= bytes.count - position else {
                throw bad("needs \(count) more bytes, \(bytes.count - position) left (truncated?)", at: opcodeStart)
            }
            defer { position += count }
            return bytes[position..<(position + count)]
        }
        func littleEndian(_ count: Int) throws -> UInt64 { try take(count).reversed().reduce(0) { $0 << 8 | UInt64($1) } }
        func length(_ count: Int) throws -> Int {
            let n = try littleEndian(count)
            guard n <= UInt64(bytes.count - position) else {
                throw bad("length \(n) exceeds the \(bytes.count - position) bytes left (truncated?)", at: opcodeStart)
            }
            return Int(n)
        }
        func line() throws -> String {
            guard let end = bytes[position...].firstIndex(of: 0x0A) else { throw bad("unterminated GLOBAL name", at: opcodeStart) }
            defer { position = end + 1 }
            return String(decoding: bytes[position..<end], as: UTF8.self)
        }
        func pop() throws -> PickleValue {
            guard let value = stack.popLast(), stack.count >= (marks.last ?? 0) else { throw bad("stack underflow", at: opcodeStart) }
            return value
        }
        func popToMark() throws -> [PickleValue] {
            guard let mark = marks.popLast(), mark <= stack.count else { throw bad("no MARK", at: opcodeStart) }
            defer { stack.removeSubrange(mark...) }
            return Array(stack[mark...])
        }
        func signed(_ raw: UInt64, bytes count: Int) -> Int64 {
            count >= 8 ? Int64(bitPattern: raw) : (Int64(raw) << (64 - 8 * count)) >> (64 - 8 * count)
        }
        func topDict() throws -> Int {
            guard case .dict(let d)? = stack.last else { throw bad("SETITEM(S) on a \(stack.last?.kind ?? "empty stack")", at: opcodeStart) }
            return d
        }
        func topList() throws -> Int {
            guard case .list(let l)? = stack.last else { throw bad("APPEND(S) on a \(stack.last?.kind ?? "empty stack")", at: opcodeStart) }
            return l
        }
        func global(_ name: String) throws -> PickleValue {
            guard Self.allowedGlobals.contains(name) else {
                throw IEError.badInput("\(source): the pickle refers to \(name.replacingOccurrences(of: " ", with: ".")), "
                    + "which is not allowed: a checkpoint may hold only tensors, numbers, strings, lists, tuples and dicts "
                    + "(no code is ever run while reading it)")
            }
            return .global(name)
        }
        func newSequence(_ items: [PickleValue], list: Bool) -> PickleValue {
            sequences.append(items)
            return list ? .list(sequences.count - 1) : .tuple(sequences.count - 1)
        }
        func newDict() -> PickleValue {
            dicts.append(PickleDict())
            return .dict(dicts.count - 1)
        }

        while true {
            opcodeStart = position
            let opcode = try take(1).first ?? 0
            switch opcode {
            case 0x80: _ = try take(1)                                   // PROTO
            case 0x95: _ = try take(8)                                   // FRAME
            case 0x2E:                                                   // STOP
                guard stack.count == 1, marks.isEmpty else { throw bad("STOP with \(stack.count) values on the stack", at: opcodeStart) }
                return stack[0]
            case 0x28: marks.append(stack.count)                         // MARK
            case 0x7D: stack.append(newDict())                           // EMPTY_DICT
            case 0x5D: stack.append(newSequence([], list: true))         // EMPTY_LIST
            case 0x29: stack.append(newSequence([], list: false))        // EMPTY_TUPLE
            case 0x4E: stack.append(.none)                               // NONE
            case 0x88: stack.append(.bool(true))                         // NEWTRUE
            case 0x89: stack.append(.bool(false))                        // NEWFALSE
            case 0x4B: stack.append(.int(Int64(try littleEndian(1))))    // BININT1
            case 0x4D: stack.append(.int(Int64(try littleEndian(2))))    // BININT2
            case 0x4A: stack.append(.int(signed(try littleEndian(4), bytes: 4)))  // BININT
            case 0x8A, 0x8B:                                             // LONG1, LONG4
                let n = try length(opcode == 0x8A ? 1 : 4)
                guard n <= 8 else { throw bad("integer of \(n) bytes, expected at most 8", at: opcodeStart) }
                stack.append(.int(n == 0 ? 0 : signed(try littleEndian(n), bytes: n)))
            case 0x47:                                                   // BINFLOAT (big-endian)
                stack.append(.float(Double(bitPattern: try take(8).reduce(0) { $0 << 8 | UInt64($1) })))
            case 0x58, 0x8C, 0x8D, 0x54, 0x55:                           // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING
                let n = try length(opcode == 0x8C || opcode == 0x55 ? 1 : opcode == 0x8D ? 8 : 4)
                stack.append(.string(String(decoding: try take(n), as: UTF8.self)))
            case 0x43, 0x42, 0x8E:                                       // SHORT_BINBYTES, BINBYTES, BINBYTES8
                let n = try length(opcode == 0x43 ? 1 : opcode == 0x42 ? 4 : 8)
                byteStrings.append(Data(try take(n)))
                stack.append(.bytes(byteStrings.count - 1))
            case 0x85, 0x86, 0x87:                                       // TUPLE1, TUPLE2, TUPLE3
                let n = Int(opcode - 0x84)
                var items: [PickleValue] = []
                for _ in 0..<n { items.insert(try pop(), at: 0) }
                stack.append(newSequence(items, list: false))
            case 0x74: stack.append(newSequence(try popToMark(), list: false))   // TUPLE
            case 0x6C: stack.append(newSequence(try popToMark(), list: true))    // LIST
            case 0x64:                                                           // DICT
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw bad("DICT with an odd number of items", at: opcodeStart) }
                let value = newDict()
                if case .dict(let d) = value { for i in stride(from: 0, to: items.count, by: 2) { dicts[d].set(items[i], items[i + 1]) } }
                stack.append(value)
            case 0x73:                                                   // SETITEM
                let value = try pop(), key = try pop()
                dicts[try topDict()].set(key, value)
            case 0x75:                                                   // SETITEMS
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw bad("SETITEMS with an odd number of items", at: opcodeStart) }
                let d = try topDict()
                for i in stride(from: 0, to: items.count, by: 2) { dicts[d].set(items[i], items[i + 1]) }
            case 0x61:                                                   // APPEND
                let value = try pop()
                sequences[try topList()].append(value)
            case 0x65:                                                   // APPENDS
                let items = try popToMark()
                sequences[try topList()].append(contentsOf: items)
            case 0x30: _ = try pop()                                     // POP
            case 0x31: _ = try popToMark()                               // POP_MARK
            case 0x32:                                                   // DUP
                guard let top = stack.last else { throw bad("DUP on an empty stack", at: opcodeStart) }
                stack.append(top)
            case 0x71, 0x72, 0x94:                                       // BINPUT, LONG_BINPUT, MEMOIZE
                let key = opcode == 0x94 ? memo.count : Int(try littleEndian(opcode == 0x71 ? 1 : 4))
                guard let top = stack.last else { throw bad("memo store on an empty stack", at: opcodeStart) }
                memo[key] = top
            case 0x68, 0x6A:                                             // BINGET, LONG_BINGET
                let key = Int(try littleEndian(opcode == 0x68 ? 1 : 4))
                guard let value = memo[key] else { throw bad("memo entry \(key) was never stored", at: opcodeStart) }
                stack.append(value)
            case 0x63:                                                   // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module + " " + name))
            case 0x93:                                                   // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw bad("STACK_GLOBAL without two strings", at: opcodeStart)
                }
                stack.append(try global(module + " " + name))
            case 0x51:                                                   // BINPERSID
                stack.append(try persistentLoad(try pop(), at: opcodeStart))
            case 0x52:                                                   // REDUCE
                let arguments = try pop(), callable = try pop()
                stack.append(try reduce(callable, arguments, at: opcodeStart))
            case 0x81:                                                   // NEWOBJ
                _ = try pop()
                guard case .global(let name) = try pop(), Self.dictClasses.contains(name) else {
                    throw bad("NEWOBJ of something other than a dict class", at: opcodeStart)
                }
                stack.append(newDict())
            case 0x62:                                                   // BUILD: object state (attributes), not items
                _ = try pop()
                guard let top = stack.last, case .dict = top else { throw bad("BUILD on a \(stack.last?.kind ?? "empty stack")", at: opcodeStart) }
            default:
                throw bad(String(format: "opcode 0x%02X is outside the subset torch.save writes", opcode), at: opcodeStart)
            }
        }
    }

    func sequence(_ value: PickleValue) -> [PickleValue]? {
        switch value {
        case .tuple(let i), .list(let i): return sequences[i]
        default: return nil
        }
    }

    func dictionary(_ value: PickleValue) -> PickleDict? {
        if case .dict(let d) = value { return dicts[d] }
        return nil
    }

    private func integers(_ value: PickleValue, at offset: Int, what: String) throws -> [Int] {
        guard let items = sequence(value) else { throw bad("\(what) is a \(value.kind), expected a tuple", at: offset) }
        return try items.map {
            guard case .int(let n) = $0, n >= 0, n <= Int64(Int32.max) else { throw bad("\(what) holds \($0), expected sizes", at: offset) }
            return Int(n)
        }
    }

    /// torch.save's persistent id of a storage: ('storage', <torch XStorage>, key, location, element count).
    private func persistentLoad(_ pid: PickleValue, at offset: Int) throws -> PickleValue {
        guard let items = sequence(pid), items.count == 5, case .string("storage") = items[0],
              case .global(let type) = items[1], let dtype = Self.storageTypes[type],
              case .string(let key) = items[2], case .int(let count) = items[4], count >= 0 else {
            throw bad("persistent id is not ('storage', <typed storage>, key, location, size)", at: offset)
        }
        if let existing = storageIndex[key] {
            guard storages[existing].dtype == dtype, storages[existing].elementCount == Int(count) else {
                throw bad("storage \(key) is described twice differently", at: offset)
            }
            return .storage(existing)
        }
        guard count <= Int64(Int.max / 16) else { throw bad("storage \(key) claims \(count) elements", at: offset) }
        storages.append(PickledStorage(key: key, dtype: dtype, elementCount: Int(count)))
        storageIndex[key] = storages.count - 1
        return .storage(storages.count - 1)
    }

    private func reduce(_ callable: PickleValue, _ arguments: PickleValue, at offset: Int) throws -> PickleValue {
        guard case .global(let name) = callable, let args = sequence(arguments), case .tuple = arguments else {
            throw bad("REDUCE of a \(callable.kind) with \(arguments.kind) arguments", at: offset)
        }
        switch name {
        case "collections OrderedDict":
            guard args.isEmpty else { throw bad("OrderedDict with arguments", at: offset) }
            dicts.append(PickleDict())
            return .dict(dicts.count - 1)
        case Self.rebuildParameter:
            guard let first = args.first, case .tensor = first else { throw bad("_rebuild_parameter without a tensor", at: offset) }
            return first
        case Self.rebuildTensor:
            guard args.count >= 4, case .storage(let s) = args[0], case .int(let start) = args[1], start >= 0 else {
                throw bad("_rebuild_tensor_v2 arguments are not (storage, offset, size, stride, ...)", at: offset)
            }
            let shape = try integers(args[2], at: offset, what: "tensor size")
            let stride = try integers(args[3], at: offset, what: "tensor stride")
            guard shape.count == stride.count, shape.count <= 16 else {
                throw bad("tensor size \(shape) and stride \(stride) differ in length", at: offset)
            }
            // The last element reached, computed in 64 bits with overflow checks, must lie inside the storage.
            var last = Int64(start), empty = false
            for (size, step) in zip(shape, stride) {
                if size == 0 { empty = true }
                let (product, overflow) = Int64(max(size - 1, 0)).multipliedReportingOverflow(by: Int64(step))
                let (sum, overflow2) = last.addingReportingOverflow(product)
                guard !overflow, !overflow2 else { throw bad("tensor size \(shape) stride \(stride) overflow", at: offset) }
                last = sum
            }
            let storage = storages[s]
            guard empty || last < Int64(storage.elementCount) else {
                throw bad("tensor of size \(shape), stride \(stride), offset \(start) reaches past the \(storage.elementCount) "
                          + "elements of storage \(storage.key)", at: offset)
            }
            tensors.append(PickledTensor(storage: s, offset: Int(start), shape: shape, stride: stride))
            return .tensor(tensors.count - 1)
        default:
            throw bad("\(name.replacingOccurrences(of: " ", with: ".")) cannot be called", at: offset)
        }
    }
}

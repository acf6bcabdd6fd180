// Transform config records (SPEC §13): one dictionary per transform, `name`, an optional probability `p`, and
// the transform's own fields. The reader checks every field with a one-line error naming the pipeline, the
// transform's index and name and the field, and refuses fields the transform does not know.
import Foundation
import IECore

/// One field value of a transform record, as a YAML or JSON loader gives it.
public enum TransformField: Sendable, Equatable, CustomStringConvertible {
    case number(Double)
    case numbers([Double])
    case text(String)
    case flag(Bool)

    /// Converts what Yams' `load` or JSONSerialization returns (Int, Double, String, Bool, arrays of numbers);
    /// nil for anything else (nested dictionaries, mixed lists).
    public init?(loaded value: Any) {
        switch value {
        case let b as Bool: self = .flag(b)
        case let i as Int: self = .number(Double(i))
        case let d as Double: self = .number(d)
        case let s as String: self = .text(s)
        case let list as [Any]:
            var numbers: [Double] = []
            for item in list {
                guard case .number(let d)? = TransformField(loaded: item) else { return nil }
                numbers.append(d)
            }
            self = .numbers(numbers)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .number(let d): return TransformField.format(d)
        case .numbers(let l): return "[" + l.map(TransformField.format).joined(separator: ", ") + "]"
        case .text(let s): return "'\(s)'"
        case .flag(let b): return b ? "true" : "false"
        }
    }

    static func format(_ d: Double) -> String {
        d.isFinite && d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
    }
}

public typealias TransformRecord = [String: TransformField]

/// Reads and checks one record's fields; `finish` refuses the fields nobody asked for.
public struct TransformFieldReader {
    public let context: String
    public let file: String?
    var fields: TransformRecord
    var used: Set<String> = ["name"]

    init(context: String, file: String?, fields: TransformRecord) {
        self.context = context; self.file = file; self.fields = fields
    }

    func error(_ message: String) -> IEError { IEError.usage("\(context): \(message)", file: file) }

    func bad(_ key: String, _ value: TransformField, expected: String) -> IEError {
        error("field '\(key)' is \(value), expected \(expected)")
    }

    mutating func take(_ key: String) -> TransformField? {
        used.insert(key)
        return fields[key]
    }

    /// A finite number satisfying `valid`.
    public mutating func number(_ key: String, default value: Double, expected: String = "a finite number",
                                _ valid: (Double) -> Bool = { _ in true }) throws -> Double {
        guard let field = take(key) else { return value }
        guard case .number(let d) = field, d.isFinite, valid(d) else { throw bad(key, field, expected: expected) }
        return d
    }

    /// An integer satisfying `valid`.
    public mutating func integer(_ key: String, default value: Int, expected: String, _ valid: (Int) -> Bool) throws -> Int {
        guard let field = take(key) else { return value }
        guard case .number(let d) = field, d.isFinite, d == d.rounded(), abs(d) < 1e9, valid(Int(d)) else {
            throw bad(key, field, expected: expected)
        }
        return Int(d)
    }

    /// A [min, max] range; a single number v means [-v, v] when `symmetric` (then v >= 0 is required), or
    /// [max(0, 1 - v), 1 + v] when `aroundOne` (ColorJitter). Both ends must satisfy `valid` and min <= max.
    public mutating func range(_ key: String, default value: (Double, Double)?, symmetric: Bool = false,
                               aroundOne: Bool = false, expected: String,
                               _ valid: (Double) -> Bool = { _ in true }) throws -> (Double, Double)? {
        guard let field = take(key) else { return value }
        switch field {
        case .number(let v) where v.isFinite && v >= 0 && symmetric: return (-v, v)
        case .number(let v) where v.isFinite && v >= 0 && aroundOne: return (max(0, 1 - v), 1 + v)
        case .numbers(let l) where l.count == 2 && l.allSatisfy({ $0.isFinite && valid($0) }) && l[0] <= l[1]:
            return (l[0], l[1])
        default: throw bad(key, field, expected: expected)
        }
    }

    /// A size: one positive integer or a list of `counts` positive integers.
    public mutating func sizes(_ key: String, counts: Set<Int>, required: Bool = true) throws -> [Int]? {
        let expected = "a positive integer or a list of " + counts.sorted().map(String.init).joined(separator: " or ")
            + " positive integers"
        guard let field = take(key) else {
            if required { throw error("missing field '\(key)', expected \(expected)") }
            return nil
        }
        let list: [Double]
        switch field {
        case .number(let d): list = [d]
        case .numbers(let l) where counts.contains(l.count): list = l
        default: throw bad(key, field, expected: expected)
        }
        guard list.allSatisfy({ $0.isFinite && $0 == $0.rounded() && $0 >= 1 && $0 < 1e6 }) else {
            throw bad(key, field, expected: expected)
        }
        return list.map { Int($0) }
    }

    /// One of `choices`.
    public mutating func choice(_ key: String, default value: String, _ choices: [String]) throws -> String {
        guard let field = take(key) else { return value }
        guard case .text(let s) = field, choices.contains(s) else {
            throw bad(key, field, expected: "one of " + choices.joined(separator: ", "))
        }
        return s
    }

    /// The raw field, for values of several kinds (RandomErasing's value).
    public mutating func raw(_ key: String) -> TransformField? { take(key) }

    /// Refuses the first unknown field (in sorted order, so the message is stable).
    public func finish() throws {
        if let unknown = fields.keys.sorted().first(where: { !used.contains($0) }) {
            var hint = ""
            if let near = closestMatch(unknown, in: used.sorted().filter { $0 != "name" }) { hint = " (did you mean '\(near)'?)" }
            throw error("unknown field '\(unknown)'\(hint), expected " + used.sorted().joined(separator: ", "))
        }
    }
}

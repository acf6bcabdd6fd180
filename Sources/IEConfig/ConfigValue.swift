import Foundation
import IECore
import Yams

/// A parameter value after type checking. Lists keep the element type of their parameter.
public enum ConfigValue: Equatable, Sendable, CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case strings([String])
    case ints([Int])
    case floats([Double])

    /// The text written to args.txt and accepted back by `--name=value`.
    public var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let d): return ConfigValue.format(d)
        case .string(let s): return s
        case .strings(let l): return l.joined(separator: ",")
        case .ints(let l): return l.map(String.init).joined(separator: ",")
        case .floats(let l): return l.map(ConfigValue.format).joined(separator: ",")
        }
    }

    /// Shortest text that reads back to the same Double (Swift's description does exactly that).
    static func format(_ d: Double) -> String {
        if d == d.rounded(), abs(d) < 1e15 { return String(format: "%.1f", d) }
        return "\(d)"
    }

    public var isNone: Bool { if case .none = self { return true } else { return false } }
}

/// Boolean spellings accepted exactly as InnerEye's command line (SPEC §1.3; generic_parsing.py's parse_bool):
/// on, t, true, y, yes, 1 and off, f, false, n, no, 0, in any letter case.
public enum BooleanSpelling {
    public static let trueWords: Set<String> = ["on", "t", "true", "y", "yes", "1"]
    public static let falseWords: Set<String> = ["off", "f", "false", "n", "no", "0"]

    public static func parse(_ text: String) -> Bool? {
        let word = text.lowercased()
        if trueWords.contains(word) { return true }
        if falseWords.contains(word) { return false }
        return nil
    }
}

/// The values InnerEye's enums have on its command line (generic_parsing.py builds an enum from its value, e.g.
/// `PaddingMode("constant")`) and the member names of its configs where they differ from ours, each with the name
/// we keep (SPEC §1.4, §13.1). A choice accepts these besides its own names, in any letter case.
public enum ChoiceAliases {
    public static let canonical: [String: String] = [
        // PaddingMode values.
        "constant": "Zero", "no_padding": "NoPadding",
        // PhotometricNormalizationMethod values, and its member Unchanged (value "None").
        "CT Window": "CtWindow", "MRI Window": "MriWindow", "Simple Norm": "SimpleNorm", "Trimmed Norm": "TrimmedNorm",
        "Unchanged": "None",
        // ScalarLoss values (= its member names).
        "BinaryCrossEntropyWithLogits": "BCEWithLogits", "WeightedCrossEntropyWithLogits": "WeightedCrossEntropy",
        "MeanSquaredError": "MSE",
    ]

    static let byLowercased: [String: String] = Dictionary(uniqueKeysWithValues: canonical.map { ($0.key.lowercased(), $0.value) })

    /// The aliases of `name`, sorted, for messages.
    public static func aliases(of name: String) -> [String] { canonical.filter { $0.value == name }.map(\.key).sorted() }

    /// The choice among `options` that `text` names: an option itself or an alias of one, in any letter case.
    static func match(_ text: String, in options: [String]) -> String? {
        let lower = text.lowercased()
        if let option = options.first(where: { $0.lowercased() == lower }) { return option }
        if let option = byLowercased[lower], options.contains(option) { return option }
        return nil
    }

    /// `Zero (constant)`: an option with its aliases, for the list of what a choice accepts.
    static func describe(_ option: String) -> String {
        let aliases = aliases(of: option)
        return aliases.isEmpty ? option : "\(option) (\(aliases.map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: ", ")))"
    }
}

/// The type of a parameter; decides how text (from YAML scalars or the command line) is converted.
public enum ParameterType: Equatable, Sendable {
    case bool
    case int
    case float
    case string
    /// One of a fixed set of names, matched case-insensitively (InnerEye's enum values too: ChoiceAliases) and
    /// stored in the canonical spelling.
    case choice([String])
    case names
    /// Names that become file or folder names (subjects, structures, channels): `names` that also pass `SafeName`.
    case fileNames
    case ints
    case floats
    /// A fixed-length tuple, e.g. a (Z, Y, X) size triple (ints) or an (a, b) float pair.
    case intTuple(Int)
    case floatTuple(Int)
    /// `name=value` entries, e.g. comparison_runs `Baseline=exp:run_id`.
    case namedEntries
    /// Entries of colon-separated fields with these names, e.g. slice_exclusion_rules
    /// `brainstem:spinal_cord:False` (YAML: nested lists or mappings with the field names).
    case records([String])
    /// A list of mappings (transform pipelines), kept as compact JSON text with sorted keys; YAML flow text
    /// such as `[{name: RandomHorizontalFlip, p: 0.5}]` on the command line.
    case transforms

    var isRecords: Bool { if case .records = self { return true } else { return false } }

    public var expectation: String {
        switch self {
        case .bool: return "a boolean (true/false, t/f, yes/no, y/n, on/off, 1/0, any letter case)"
        case .int: return "an integer"
        case .float: return "a finite number"
        case .string: return "a string"
        case .choice(let c): return "one of " + c.map(ChoiceAliases.describe).joined(separator: ", ")
        case .names: return "a comma-separated list of names"
        case .fileNames: return "a comma-separated list of names usable as file names (no '/', '..' or control characters)"
        case .ints: return "a comma-separated list of integers"
        case .floats: return "a comma-separated list of finite numbers"
        case .intTuple(3): return "a (Z,Y,X) triple of integers such as 64,224,224"
        case .intTuple(let n): return "\(n) comma-separated integers"
        case .floatTuple(3): return "a (Z,Y,X) triple of numbers such as 2.0,2.0,3.0"
        case .floatTuple(let n): return "\(n) comma-separated numbers"
        case .namedEntries: return "a comma-separated list of name=value entries"
        case .records(let fields): return "a comma-separated list of \(fields.joined(separator: ":")) entries"
        case .transforms: return "a list of mappings such as [{name: RandomHorizontalFlip, p: 0.5}]"
        }
    }

    /// Converts command-line or YAML text. Lists are comma separated; brackets/parentheses around them are
    /// tolerated so that `(64, 224, 224)` and `[64,224,224]` both work.
    public func parse(_ raw: String) -> ConfigValue? {
        let text = raw.trimmingCharacters(in: .whitespaces)
        switch self {
        case .bool:
            return BooleanSpelling.parse(text).map(ConfigValue.bool)
        case .int:
            return ParameterType.parseInt(text).map(ConfigValue.int)
        case .float:
            return ParameterType.parseFloat(text).map(ConfigValue.float)
        case .string:
            return .string(text)
        case .choice(let options):
            return ChoiceAliases.match(text, in: options).map(ConfigValue.string)
        case .names:
            let items = ParameterType.items(text)
            guard items.allSatisfy({ !$0.isEmpty }) else { return nil }
            return .strings(items)
        case .fileNames:
            guard case .strings(let items)? = ParameterType.names.parse(text),
                  items.allSatisfy({ SafeName.problem($0) == nil }) else { return nil }
            return .strings(items)
        case .ints:
            let items = ParameterType.items(text).map(ParameterType.parseInt)
            guard items.allSatisfy({ $0 != nil }) else { return nil }
            return .ints(items.map { $0! })
        case .floats:
            let items = ParameterType.items(text).map(ParameterType.parseFloat)
            guard items.allSatisfy({ $0 != nil }) else { return nil }
            return .floats(items.map { $0! })
        case .intTuple(let n):
            guard case .ints(let l)? = ParameterType.ints.parse(text), l.count == n else { return nil }
            return .ints(l)
        case .floatTuple(let n):
            guard case .floats(let l)? = ParameterType.floats.parse(text), l.count == n else { return nil }
            return .floats(l)
        case .namedEntries:
            let items = ParameterType.items(text)
            for item in items {
                guard let eq = item.firstIndex(of: "="), eq != item.startIndex,
                      item.index(after: eq) != item.endIndex else { return nil }
            }
            return .strings(items)
        case .transforms:
            return ParameterType.canonicalMappingList(text).map(ConfigValue.string)
        case .records(let fields):
            var entries: [String] = []
            for item in ParameterType.items(text) {
                let parts = item.split(separator: ":", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == fields.count, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
                entries.append(parts.joined(separator: ":"))
            }
            return .strings(entries)
        }
    }

    /// A YAML (or JSON) list of mappings as compact JSON with sorted keys, nil when the text is anything else.
    static func canonicalMappingList(_ text: String) -> String? {
        // Deep nesting would crash Yams and aliases could expand without bound (YAMLGuard); callers that can
        // say why run YAMLGuard themselves first.
        guard YAMLGuard.problem(in: text) == nil, let loaded = try? Yams.load(yaml: text), let list = loaded as? [Any],
              list.allSatisfy({ $0 is [String: Any] }), JSONSerialization.isValidJSONObject(list),
              let data = try? JSONSerialization.data(withJSONObject: list, options: [.sortedKeys]) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }

    static func items(_ text: String) -> [String] {
        var t = text
        if let f = t.first, let l = t.last, (f == "[" && l == "]") || (f == "(" && l == ")") {
            t = String(t.dropFirst().dropLast())
        }
        if t.trimmingCharacters(in: .whitespaces).isEmpty { return [] }
        return t.split(separator: ",", omittingEmptySubsequences: false).map {
            var s = $0.trimmingCharacters(in: .whitespaces)
            // Quoted names inside a flow list written as text: 'ct' or "ct".
            if s.count >= 2, let f = s.first, f == s.last, f == "'" || f == "\"" { s = String(s.dropFirst().dropLast()) }
            return s
        }
    }

    static func parseInt(_ s: String) -> Int? {
        if let i = Int(s) { return i }
        // YAML/Python writers sometimes produce 64.0 for an integer value.
        if let d = Double(s), d == d.rounded(), abs(d) < 1e15 { return Int(d) }
        return nil
    }

    static func parseFloat(_ s: String) -> Double? {
        // Every float parameter is a finite number: `--l_rate=inf` or `.nan` would train to NaN weights.
        guard let d = Double(s), d.isFinite else { return nil }
        return d
    }
}

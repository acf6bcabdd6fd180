import Foundation

/// Exit codes of SPEC §1.3.
public enum ExitCode: Int32, Sendable {
    case success = 0
    case failure = 1
    case usage = 2        // bad command line or config
    case badInput = 3     // bad input data: dataset, image, checkpoint
}

/// The one error type every tool reports: printed as
/// `ie-<tool>: error: <file>[:<line>]: <what>, <what was expected>`.
public struct IEError: Error, CustomStringConvertible, Sendable {
    public var code: ExitCode
    public var file: String?
    public var line: Int?
    public var message: String

    public init(_ code: ExitCode, file: String? = nil, line: Int? = nil, _ message: String) {
        self.code = code
        self.file = file
        self.line = line
        self.message = message
    }

    public static func usage(_ message: String, file: String? = nil, line: Int? = nil) -> IEError {
        IEError(.usage, file: file, line: line, message)
    }
    public static func badInput(_ message: String, file: String? = nil, line: Int? = nil) -> IEError {
        IEError(.badInput, file: file, line: line, message)
    }
    public static func failure(_ message: String, file: String? = nil, line: Int? = nil) -> IEError {
        IEError(.failure, file: file, line: line, message)
    }

    /// The location-and-message part, without the tool prefix.
    public var description: String {
        var location = ""
        if let file {
            location = file
            if let line { location += ":\(line)" }
            location += ": "
        }
        return location + message
    }
}

/// Prints `ie-<tool>: error: ...` to stderr and exits with the error's code.
/// Any other error is reported with exit code 1.
public func exitWithError(tool: String, _ error: Error) -> Never {
    let code: ExitCode
    let text: String
    if let e = error as? IEError {
        code = e.code
        text = e.description
    } else {
        code = .failure
        text = "\(error)"
    }
    StandardStream.writeBestEffort("\(tool): error: \(text)\n")
    exit(code.rawValue)
}

/// Runs a tool body, turning thrown errors into the SPEC's one-line message and exit code.
public func runTool(_ tool: String, _ body: () throws -> Void) -> Never {
    do {
        try body()
        exit(0)
    } catch {
        exitWithError(tool: tool, error)
    }
}

/// The Levenshtein-closest candidate, used for "did you mean" hints on unknown keys.
public func closestMatch(_ word: String, in candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
    let w = Array(word.lowercased())
    return candidates.min { distance(w, Array($0.lowercased())) < distance(w, Array($1.lowercased())) }
}

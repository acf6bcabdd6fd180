/// The one rule for names that become file or folder names (subjects, structures, channels, runs, models): not
/// empty, not `.` or `..`, no `/`, no control characters. A subject id such as `../../escape/a` would otherwise
/// make a tool write outside the run folder.
public enum SafeName {
    /// Why `name` is not safe, or nil when it is.
    public static func problem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name == "." || name == ".." { return "is '\(name)'" }
        if name.contains("/") { return "contains '/'" }
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) { return "contains a control character" }
        return nil
    }

    /// `root/c1/c2/...` for a writer, every component checked by the rule, so that no name from a file or a
    /// command line can make the path resolve outside `root` (the second line of defence behind the checks
    /// where names enter).
    public static func path(in root: String, _ components: String...) throws -> String {
        for component in components { try require(component, what: "file name component", badInput: true) }
        return ([root] + components).joined(separator: "/")
    }

    /// Throws `IEError.badInput` (data) naming the file and line when `name` is not a safe file name.
    public static func require(_ name: String, what: String, file: String? = nil, line: Int? = nil,
                               badInput: Bool = true) throws {
        guard let problem = problem(name) else { return }
        let shown = String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? "?" : Character($0) })
        let message = "\(what) '\(shown)' \(problem), expected a name usable as a file name (no '/', '..' or control characters)"
        throw badInput ? IEError.badInput(message, file: file, line: line) : IEError.usage(message, file: file, line: line)
    }
}

import Foundation
import IECore

/// Checks YAML text before Yams sees it, for the two inputs Yams cannot survive: Yams composes (and serialises)
/// nodes recursively, so a few thousand nested brackets overflow the stack (a segfault, not an error), and it
/// expands aliases, so nine nested anchors of ten aliases each ("billion laughs") never finish. Model configs,
/// settings.yml and `--*_transforms=` values all go through `problem(in:)` first.
///
/// The scan follows libyaml's tokeniser (Yams' CYaml scanner.c): quoted, plain and block scalars, comments,
/// tags, document markers, and the block indentation stack, so that brackets inside strings and comments do
/// not count and nesting written with indentation or `- - -` does.
enum YAMLGuard {
    /// Nesting levels allowed: block mappings and sequences (libyaml's indentation levels) plus flow brackets.
    /// Real configs use fewer than 6; Yams still works at a few thousand.
    static let maxDepth = 64

    struct Problem: Equatable {
        /// 1-based line of the offending token.
        var line: Int
        /// `<what>, expected <what instead>`, for an IEError message.
        var message: String
    }

    /// Throws a usage error naming `file` and the line when `text` nests too deeply or uses an alias.
    static func check(_ text: String, file: String) throws {
        if let p = problem(in: text) { throw IEError.usage(p.message, file: file, line: p.line) }
    }

    /// The first reason to refuse `text`, or nil when Yams may compose it.
    static func problem(in text: String, maxDepth: Int = maxDepth) -> Problem? {
        let b = Array(text.utf8)
        let n = b.count
        // Line and column (in characters, as libyaml counts them) of every byte; breaks as libyaml's IS_BREAK.
        var lineOf = [Int32](repeating: 0, count: n + 1), columnOf = [Int32](repeating: 0, count: n + 1)
        var isBreakStart = [Bool](repeating: false, count: n + 1)
        do {
            var i = 0, line: Int32 = 1, column: Int32 = 0
            while i < n {
                let length = breakLength(b, i)
                if length > 0 {
                    isBreakStart[i] = true
                    for k in i..<(i + length) { lineOf[k] = line; columnOf[k] = column }
                    i += length; line += 1; column = 0
                    continue
                }
                lineOf[i] = line; columnOf[i] = column
                if b[i] & 0xC0 != 0x80 { column += 1 }   // UTF-8 continuation bytes do not start a character
                i += 1
            }
            lineOf[n] = line; columnOf[n] = column
        }
        func isBreak(_ i: Int) -> Bool { i < n && isBreakStart[i] }
        func isBlank(_ i: Int) -> Bool { i < n && (b[i] == 0x20 || b[i] == 0x09) }
        /// libyaml's IS_BLANKZ: blank, break or end of input.
        func isBlankZ(_ i: Int) -> Bool { i >= n || isBlank(i) || isBreak(i) }
        func isAlpha(_ c: UInt8) -> Bool {
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x5F || c == 0x2D
        }
        func isFlowIndicator(_ c: UInt8) -> Bool { c == 0x2C || c == 0x5B || c == 0x5D || c == 0x7B || c == 0x7D }
        func isDocumentMarker(_ i: Int) -> Bool {
            guard i + 2 < n, columnOf[i] == 0 else { return false }
            let dashes = b[i] == 0x2D && b[i + 1] == 0x2D && b[i + 2] == 0x2D
            let dots = b[i] == 0x2E && b[i + 1] == 0x2E && b[i + 2] == 0x2E
            return (dashes || dots) && isBlankZ(i + 3)
        }

        var flow = 0
        // libyaml's indentation stack: one entry per open block collection (its column).
        var indents: [Int] = []
        // Where the node that may turn out to be a simple key (`key: value`) began.
        var keyStart: (line: Int32, column: Int)?
        func tooDeep(_ i: Int) -> Problem {
            Problem(line: Int(lineOf[min(i, n)]),
                    message: "YAML nested too deeply (more than \(maxDepth) levels), expected at most \(maxDepth) levels of lists and mappings")
        }
        /// libyaml's roll_indent: a block collection opens at `column`.
        func roll(_ column: Int) -> Bool {
            if column > (indents.last ?? -1) { indents.append(column) }
            return indents.count + flow <= maxDepth
        }

        var i = 0
        while i < n {
            let c = b[i]
            if c == 0x20 || c == 0x09 { i += 1; continue }
            if isBreak(i) { i += breakLength(b, i); continue }
            let column = Int(columnOf[i]), line = lineOf[i]
            // libyaml's unroll_indent on every token of the block context.
            if flow == 0 { while let t = indents.last, t > column { indents.removeLast() } }
            func noteKey() { if flow == 0, keyStart?.line != line { keyStart = (line, column) } }
            if isDocumentMarker(i) {
                indents.removeAll(); keyStart = nil
                i += 3
                continue
            }
            if column == 0 && c == 0x25 {   // %directive: the rest of the line
                while i < n && !isBreak(i) { i += 1 }
                continue
            }
            switch c {
            case 0x23:   // '#' comment
                while i < n && !isBreak(i) { i += 1 }
            case 0x5B, 0x7B:   // '[' '{'
                noteKey()
                flow += 1
                if indents.count + flow > maxDepth { return tooDeep(i) }
                i += 1
            case 0x5D, 0x7D:   // ']' '}'
                if flow > 0 { flow -= 1 }
                i += 1
            case 0x2C:   // ','
                i += 1
            case 0x2D where isBlankZ(i + 1), 0x3F where flow > 0 || isBlankZ(i + 1):   // '- ' block entry, '? ' key
                if flow == 0, !roll(column) { return tooDeep(i) }
                keyStart = nil
                i += 1
            case 0x3A where flow > 0 || isBlankZ(i + 1):   // ': ' value
                if flow == 0 {
                    let k = keyStart.flatMap { $0.line == line ? $0.column : nil } ?? column
                    if !roll(k) { return tooDeep(i) }
                }
                keyStart = nil
                i += 1
            case 0x2A:   // '*' alias
                var end = i + 1
                while end < n && isAlpha(b[end]) { end += 1 }
                let name = String(decoding: b[i..<end], as: UTF8.self)
                return Problem(line: Int(line),
                               message: "YAML alias '\(name)' is not supported (aliases can expand without bound), expected every value written out")
            case 0x26:   // '&' anchor
                noteKey()
                i += 1
                while i < n && isAlpha(b[i]) { i += 1 }
            case 0x21:   // '!' tag
                noteKey()
                i += 1
                if i < n && b[i] == 0x3C {   // verbatim !<...>
                    while i < n && b[i] != 0x3E && !isBlankZ(i) { i += 1 }
                    if i < n && b[i] == 0x3E { i += 1 }
                } else {
                    while i < n && (isAlpha(b[i]) || uriPunctuation.contains(b[i])) { i += 1 }
                }
            case 0x7C where flow == 0, 0x3E where flow == 0:   // '|' '>' block scalar
                i = skipBlockScalar(b, from: i + 1, parentIndent: indents.last ?? -1, isBreak: isBreak)
                keyStart = nil
            case 0x27:   // single-quoted: '' is a quote
                noteKey()
                i += 1
                while i < n {
                    if b[i] == 0x27 {
                        if i + 1 < n && b[i + 1] == 0x27 { i += 2; continue }
                        i += 1
                        break
                    }
                    i += 1
                }
            case 0x22:   // double-quoted: backslash escapes
                noteKey()
                i += 1
                while i < n {
                    if b[i] == 0x5C { i += 2; continue }
                    if b[i] == 0x22 { i += 1; break }
                    i += 1
                }
            default:
                // A plain scalar (libyaml's scan_plain_scalar): it ends at ': ', ' #', a document marker, in
                // the flow context at , [ ] { }, and in the block context at a line indented no deeper than
                // the enclosing collection.
                noteKey()
                let indent = (indents.last ?? -1) + 1
                scalar: while i < n {
                    if isDocumentMarker(i) || b[i] == 0x23 { break }
                    while i < n && !isBlankZ(i) {
                        if b[i] == 0x3A && (isBlankZ(i + 1) || (flow > 0 && isFlowIndicator(b[i + 1]))) { break scalar }
                        if flow > 0 && isFlowIndicator(b[i]) { break scalar }
                        i += 1
                    }
                    var j = i
                    while j < n && isBlankZ(j) { j += isBreak(j) ? breakLength(b, j) : 1 }
                    if j >= n { i = j; break }
                    if flow == 0 && lineOf[j] != lineOf[i] && Int(columnOf[j]) < indent { i = j; break }
                    i = j
                }
            }
        }
        return nil
    }

    /// The punctuation libyaml accepts in a tag (yaml_parser_scan_tag_uri), beside letters, digits, '-' and '_'.
    static let uriPunctuation: Set<UInt8> = Set(";/?:@&=+$.%!~*'()".utf8)

    /// libyaml's IS_BREAK at byte `i`: CR LF, CR, LF, NEL, LS, PS; the number of bytes, or 0.
    static func breakLength(_ b: [UInt8], _ i: Int) -> Int {
        let n = b.count
        switch b[i] {
        case 0x0A: return 1
        case 0x0D: return i + 1 < n && b[i + 1] == 0x0A ? 2 : 1
        case 0xC2: return i + 1 < n && b[i + 1] == 0x85 ? 2 : 0
        case 0xE2: return i + 2 < n && b[i + 1] == 0x80 && (b[i + 2] == 0xA8 || b[i + 2] == 0xA9) ? 3 : 0
        default: return 0
        }
    }

    /// Skips a block scalar's header and content (libyaml's scan_block_scalar); returns the index of the first
    /// line that is not content. A line counts as content only where libyaml also takes it as content.
    static func skipBlockScalar(_ b: [UInt8], from start: Int, parentIndent: Int, isBreak: (Int) -> Bool) -> Int {
        let n = b.count
        var i = start
        var increment = 0
        for _ in 0..<2 where i < n {
            if b[i] == 0x2B || b[i] == 0x2D { i += 1 } else if b[i] >= 0x31 && b[i] <= 0x39 { increment = Int(b[i] - 0x30); i += 1 }
        }
        while i < n && !isBreak(i) { i += 1 }
        var indent = increment > 0 ? max(parentIndent, 0) + increment : 0
        var maxIndent = 0
        while i < n {
            let lineStart = i + breakLength(b, i)
            var j = lineStart
            while j < n && b[j] == 0x20 { j += 1 }
            let spaces = j - lineStart
            let empty = j >= n || isBreak(j)
            if indent == 0 {
                if empty { maxIndent = max(maxIndent, spaces); i = j; continue }
                indent = max(maxIndent, spaces, parentIndent + 1, 1)
            }
            if empty { i = j; continue }
            if spaces < indent { return lineStart }
            i = j
            while i < n && !isBreak(i) { i += 1 }
        }
        return i
    }
}

import Foundation
import IECore

/// A report as a list of blocks, rendered both as a Jupyter notebook (nbformat 4) and as one self-contained HTML
/// page (images embedded as base64). In the notebook every table, plot and text block is a code cell whose python
/// recomputes it from the run's files, saved with our rendering as its outputs: it opens rendered with no kernel,
/// and "Run All" redraws it.
public struct ReportDocument: Sendable {
    public enum Block: Sendable {
        /// Markdown text: headings (`#`, `##`, `###`) and paragraphs. Rendered by Jupyter; in HTML, headings
        /// and paragraphs (inline markup is escaped, not interpreted).
        case markdown(String)
        /// A table with a header row; `python` displays the same table (text/html and text/plain) recomputed.
        case table(caption: String, header: [String], rows: [[String]], python: String)
        /// A plot; `python` draws it again (matplotlib).
        case image(caption: String, png: Data, python: String)
        /// Monospaced text (InnerEye's text result files); `python` prints it again.
        case preformatted(caption: String, text: String, python: String)
        /// Notebook only: a code cell and the text it prints (the notebook's setup cell). Not in the HTML.
        case code(python: String, output: String)
    }

    public var title: String
    public var blocks: [Block] = []

    public init(title: String) { self.title = title }

    public mutating func add(_ block: Block) { blocks.append(block) }

    // MARK: notebook

    /// nbformat 4.4 JSON with keys in a fixed order, so equal reports give equal bytes.
    public func notebookJSON() -> String {
        var cells: [String] = []
        for block in blocks {
            switch block {
            case .markdown(let text):
                cells.append(cell(type: "markdown", source: text, outputs: nil))
            case .table(let caption, let header, let rows, let python):
                let output = displayData([("text/html", htmlTable(header: header, rows: rows)),
                                          ("text/plain", plainTable(header: header, rows: rows))])
                cells.append(cell(type: "code", source: "# \(caption)\n\(python)", outputs: [output]))
            case .image(let caption, let png, let python):
                let output = displayData([("image/png", png.base64EncodedString()), ("text/plain", "<\(caption)>")],
                                         splitLines: false)
                cells.append(cell(type: "code", source: "# \(caption)\n\(python)", outputs: [output]))
            case .preformatted(let caption, let text, let python):
                cells.append(cell(type: "code", source: "# \(caption)\n\(python)", outputs: [stream(text)]))
            case .code(let python, let output):
                cells.append(cell(type: "code", source: python, outputs: output.isEmpty ? [] : [stream(output)]))
            }
        }
        return """
            {
             "cells": [
            \(cells.joined(separator: ",\n"))
             ],
             "metadata": {
              "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
              "language_info": {"name": "python"},
              "title": \(jsonString(title))
             },
             "nbformat": 4,
             "nbformat_minor": 4
            }

            """
    }

    private func cell(type: String, source: String, outputs: [String]?) -> String {
        var fields = ["  \"cell_type\": \(jsonString(type))"]
        if let outputs {
            fields.append("  \"execution_count\": null")
            fields.append("  \"metadata\": {}")
            fields.append("  \"outputs\": [\n" + outputs.map { "   " + $0 }.joined(separator: ",\n") + "\n  ]")
        } else {
            fields.append("  \"metadata\": {}")
        }
        fields.append("  \"source\": \(jsonLines(source))")
        return "  {\n" + fields.joined(separator: ",\n") + "\n  }"
    }

    private func stream(_ text: String) -> String {
        "{\"name\": \"stdout\", \"output_type\": \"stream\", \"text\": \(jsonLines(text))}"
    }

    private func displayData(_ items: [(String, String)], splitLines: Bool = true) -> String {
        let data = items.map { mime, value in
            "\(jsonString(mime)): " + (splitLines && mime != "image/png" ? jsonLines(value) : jsonString(value))
        }.joined(separator: ", ")
        return "{\"data\": {\(data)}, \"metadata\": {}, \"output_type\": \"display_data\"}"
    }

    /// A multi-line string as nbformat's list of lines, each but the last ending in a newline.
    private func jsonLines(_ text: String) -> String {
        var lines: [String] = []
        var current = ""
        for ch in text {
            current.append(ch)
            if ch == "\n" { lines.append(current); current = "" }
        }
        if !current.isEmpty { lines.append(current) }
        return "[" + lines.map(jsonString).joined(separator: ", ") + "]"
    }

    // MARK: HTML

    public func html(generatedAt: String) -> String {
        var body = ""
        for block in blocks {
            switch block {
            case .markdown(let text):
                for paragraph in text.components(separatedBy: "\n\n") where !paragraph.isEmpty {
                    var level = 0
                    for ch in paragraph { if ch == "#" { level += 1 } else { break } }
                    if level > 0 && level <= 6 {
                        let heading = paragraph.dropFirst(level).trimmingCharacters(in: .whitespaces)
                        body += "<h\(level)>\(escapeHTML(heading))</h\(level)>\n"
                    } else {
                        body += "<p>\(escapeHTML(paragraph))</p>\n"
                    }
                }
            case .table(let caption, let header, let rows, _):
                body += "<figure>\n<figcaption>\(escapeHTML(caption))</figcaption>\n\(htmlTable(header: header, rows: rows))</figure>\n"
            case .image(let caption, let png, _):
                body += "<figure>\n<img alt=\"\(escapeHTML(caption))\" src=\"data:image/png;base64,\(png.base64EncodedString())\">\n"
                    + "<figcaption>\(escapeHTML(caption))</figcaption>\n</figure>\n"
            case .preformatted(let caption, let text, _):
                body += "<figure>\n<figcaption>\(escapeHTML(caption))</figcaption>\n<pre>\(escapeHTML(text))</pre>\n</figure>\n"
            case .code:
                break
            }
        }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(escapeHTML(title))</title>
            <style>
            body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
            table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; font-size: 0.9em; }
            th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: right; }
            th:first-child, td.t { text-align: left; }
            th { background: #eee; }
            figure { margin: 1em 0; }
            figcaption { font-weight: bold; margin-bottom: 0.3em; }
            img { max-width: 100%; border: 1px solid #ddd; }
            pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
            .generated { color: #777; font-size: 0.8em; }
            </style>
            </head>
            <body>
            \(body)<p class="generated">Generated \(escapeHTML(generatedAt)) by ie-report.</p>
            </body>
            </html>

            """
    }

    func htmlTable(header: [String], rows: [[String]]) -> String {
        var s = "<table>\n<thead><tr>" + header.map { "<th>\(escapeHTML($0))</th>" }.joined() + "</tr></thead>\n<tbody>\n"
        for row in rows {
            // Numbers right-aligned, text left-aligned.
            s += "<tr>" + row.map { isNumberCell($0) ? "<td>\(escapeHTML($0))</td>" : "<td class=\"t\">\(escapeHTML($0))</td>" }.joined() + "</tr>\n"
        }
        return s + "</tbody>\n</table>\n"
    }

    /// A cell printed as a number: `-?digits[.digits]` or `inf`/`-inf` (the notebook's python uses the same rule).
    func isNumberCell(_ text: String) -> Bool {
        var rest = Substring(text)
        if rest.first == "-" { rest = rest.dropFirst() }
        if rest == "inf" { return true }
        let parts = rest.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        return parts.allSatisfy { !$0.isEmpty && $0.allSatisfy { $0.isASCII && $0.isNumber } }
    }

    func plainTable(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { c in all.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { c, v in
                c == 0 ? v.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                       : String(repeating: " ", count: max(0, widths[c] - v.count)) + v
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

func escapeHTML(_ s: String) -> String {
    var out = ""
    for ch in s {
        switch ch {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        default: out.append(ch)
        }
    }
    return out
}

func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}

import Glibc

/// Human output on a terminal: a progress line redrawn in place (only when stderr is a
/// terminal, so logs and pipes stay clean) and aligned tables.
enum Terminal {
    static var standardErrorIsTerminal: Bool { isatty(2) == 1 }

    static func standardError(_ text: String) {
        var text = text
        text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    }

    /// One line on stdout at once, unbuffered: a reader of JSON lines through a pipe sees each
    /// decision as it is made, not when a buffer fills.
    static func standardOutputLine(_ text: String) {
        var line = text + "\n"
        line.withUTF8 { _ = write(1, $0.baseAddress, $0.count) }
    }

    /// Redraws the progress line in place.
    static func progress(_ text: String) {
        guard standardErrorIsTerminal else { return }
        standardError("\r\u{1B}[K" + text)
    }

    /// Clears the progress line before ordinary output.
    static func endProgress() {
        guard standardErrorIsTerminal else { return }
        standardError("\r\u{1B}[K")
    }

    /// Rows of cells with every column padded to its widest cell; with a header (a data
    /// table) numbers align right, without one (a key/value list) everything aligns left.
    static func table(_ rows: [[String]], header: [String]? = nil) -> String {
        let all = (header.map { [$0] } ?? []) + rows
        guard let columns = all.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in all { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ row: [String]) -> String {
            row.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                let numeric = header != nil && i > 0 && cell.first.map { $0.isNumber || $0 == "-" } == true
                return numeric ? pad + cell : (i == row.count - 1 ? cell : cell + pad)
            }.joined(separator: "  ")
        }
        var out = ""
        if let header {
            out += line(header) + "\n"
            out += widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ") + "\n"
        }
        for row in rows { out += line(row) + "\n" }
        return out
    }
}

/// JSON text that is not a value: where (the byte offset in the message) and what was expected.
public struct JSONSyntaxError: Error, CustomStringConvertible, Sendable, Equatable {
    public let offset: Int
    public let message: String
    public var description: String { "\(message) at byte \(offset)" }
}

/// A strict RFC 8259 parser for one message. Nesting is limited (QEMU's parser stops at 1024
/// levels too) so that a hostile peer cannot exhaust the stack.
public struct JSONParser {
    public static let maxDepth = 1024

    private let bytes: [UInt8]
    private var at = 0

    /// Parses `bytes` as exactly one JSON value, with only whitespace around it.
    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == bytes.count else { throw parser.error("expected the end of the message") }
        return value
    }

    public static func parse(_ text: String) throws(JSONSyntaxError) -> JSONValue { try parse(Array(text.utf8)) }

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ message: String) -> JSONSyntaxError { JSONSyntaxError(offset: at, message: message) }

    private var current: UInt8? { at < bytes.count ? bytes[at] : nil }

    private mutating func skipSpace() {
        while let b = current, b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { at += 1 }
    }

    private mutating func expect(_ literal: String, _ value: JSONValue) throws(JSONSyntaxError) -> JSONValue {
        let start = at
        for b in literal.utf8 {
            guard current == b else { throw JSONSyntaxError(offset: start, message: "expected '\(literal)'") }
            at += 1
        }
        return value
    }

    private mutating func value(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        guard depth < JSONParser.maxDepth else { throw error("nesting deeper than \(JSONParser.maxDepth) levels") }
        guard let c = current else { throw error("expected a value, got the end of the message") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try expect("true", .bool(true))
        case UInt8(ascii: "f"): return try expect("false", .bool(false))
        case UInt8(ascii: "n"): return try expect("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw error("expected a value")
        }
    }

    private mutating func object(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        at += 1
        var members: [(key: String, value: JSONValue)] = []
        skipSpace()
        if current == UInt8(ascii: "}") { at += 1; return .object(members) }
        while true {
            skipSpace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a member name in quotes") }
            let key = try string()
            skipSpace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
            at += 1
            skipSpace()
            members.append((key: key, value: try value(depth: depth + 1)))
            skipSpace()
            switch current {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "}"): at += 1; return .object(members)
            default: throw error("expected ',' or '}' in an object")
            }
        }
    }

    private mutating func array(depth: Int) throws(JSONSyntaxError) -> JSONValue {
        at += 1
        var items: [JSONValue] = []
        skipSpace()
        if current == UInt8(ascii: "]") { at += 1; return .array(items) }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch current {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "]"): at += 1; return .array(items)
            default: throw error("expected ',' or ']' in an array")
            }
        }
    }

    private mutating func hexDigit() throws(JSONSyntaxError) -> UInt32 {
        guard let b = current else { throw error("expected a hex digit") }
        let v: UInt32
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): v = UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): v = UInt32(b - UInt8(ascii: "A") + 10)
        default: throw error("expected a hex digit")
        }
        at += 1
        return v
    }

    private mutating func escapedUnit() throws(JSONSyntaxError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 { v = v << 4 | (try hexDigit()) }
        return v
    }

    private mutating func string() throws(JSONSyntaxError) -> String {
        at += 1
        var utf8: [UInt8] = []
        while true {
            guard let b = current else { throw error("unterminated string") }
            switch b {
            case UInt8(ascii: "\""):
                at += 1
                // Invalid UTF-8 from a peer is replaced, never trusted.
                return String(decoding: utf8, as: UTF8.self)
            case UInt8(ascii: "\\"):
                at += 1
                guard let e = current else { throw error("unterminated string") }
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(e)
                case UInt8(ascii: "b"): utf8.append(0x08)
                case UInt8(ascii: "f"): utf8.append(0x0C)
                case UInt8(ascii: "n"): utf8.append(0x0A)
                case UInt8(ascii: "r"): utf8.append(0x0D)
                case UInt8(ascii: "t"): utf8.append(0x09)
                case UInt8(ascii: "u"):
                    var unit = try escapedUnit()
                    if (0xD800..<0xDC00).contains(unit), current == UInt8(ascii: "\\"), at + 1 < bytes.count, bytes[at + 1] == UInt8(ascii: "u") {
                        at += 2
                        let low = try escapedUnit()
                        unit = (0xDC00..<0xE000).contains(low) ? 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00) : 0xFFFD
                    }
                    utf8.append(contentsOf: Array(String(Unicode.Scalar(unit).map(Character.init) ?? "\u{FFFD}").utf8))
                default: at -= 1; throw error("unknown escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            case 0..<0x20: throw error("control character in a string")
            default:
                utf8.append(b)
                at += 1
            }
        }
    }

    private mutating func number() throws(JSONSyntaxError) -> JSONValue {
        let start = at
        if current == UInt8(ascii: "-") { at += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.at
            while let b = p.current, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) { p.at += 1 }
            return p.at - s
        }
        guard digits(&self) > 0 else { throw error("expected a digit") }
        var integral = true
        if current == UInt8(ascii: ".") {
            at += 1
            integral = false
            guard digits(&self) > 0 else { throw error("expected a digit after '.'") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            at += 1
            integral = false
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw error("expected a digit in the exponent") }
        }
        let text = String(decoding: bytes[start..<at], as: UTF8.self)
        if integral, let i = Int64(text) { return .integer(i) }
        guard let d = Double(text) else { at = start; throw error("number out of range") }
        return .number(d)
    }
}

import Migration
import Yams

/// A YAML document composed into nodes with their places, and everything wrong found so far.
/// Shared by the policy loader and the parameter-space parser.
struct YAMLDocument {
    let file: String
    /// The top node; nil for an empty document or one that could not be composed.
    let root: Node?
    /// Syntax errors and duplicate keys.
    var errors: [PolicyError]
    /// Keys renamed in the text so that composition could go on past a duplicate: placeholder →
    /// (the key as written, the line it was first given on).
    let duplicates: [String: (key: String, firstLine: Int)]

    /// Composes `text`. libyaml stops at the first syntax error, and Yams at the first mapping with
    /// a duplicate key: a duplicate found in block style is renamed in a copy of the text and
    /// composition tried again, so that the other errors of the file are still reported.
    init(_ text: String, file: String) {
        self.file = file
        var text = text
        var errors: [PolicyError] = []
        var duplicates: [String: (key: String, firstLine: Int)] = [:]
        var root: Node? = nil
        compose: while true {
            do {
                root = try Yams.compose(yaml: text)
                break compose
            } catch let error as YamlError {
                switch error {
                case .duplicatedKeysInMapping(let keys, let context):
                    let key = keys.first ?? "?"
                    let first = context.mark
                    let placeholder = "__duplicate_\(duplicates.count + 1)__"
                    guard duplicates.count < 100,
                          let renamed = Self.renamingRepeat(of: key, after: first, in: text, to: placeholder) else {
                        errors.append(PolicyError(file: file, line: first.line, column: first.column, field: key,
                                                  message: "duplicate key in one mapping"))
                        break compose
                    }
                    duplicates[placeholder] = (key, first.line)
                    text = renamed
                case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                     .composer(let context, let problem, let mark, _):
                    let during = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
                    errors.append(PolicyError(file: file, line: mark.line, column: mark.column, field: "",
                                              message: "YAML syntax error: \(problem)\(during)"))
                    break compose
                default:
                    errors.append(PolicyError(file: file, line: 1, column: 1, field: "", message: "cannot read YAML: \(error)"))
                    break compose
                }
            } catch {
                errors.append(PolicyError(file: file, line: 1, column: 1, field: "", message: "cannot read YAML: \(error)"))
                break compose
            }
        }
        self.root = root
        self.errors = errors
        self.duplicates = duplicates
    }

    /// The text with the next repeat of `key` in the block mapping whose first such key stands at
    /// `first` renamed to `placeholder`; nil when no repeat is found that way (flow style).
    static func renamingRepeat(of key: String, after first: Mark, in text: String, to placeholder: String) -> String? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array(String($0).unicodeScalars) }
        let indent = first.column - 1
        let spellings = [key, "\"\(key)\"", "'\(key)'"].map { Array($0.unicodeScalars) }
        var index = first.line
        while index < lines.count {
            let line = lines[index]
            let content = line.firstIndex { $0 != " " }
            if let content, line[content] != "#" {
                if content < indent { return nil }
                if content == indent {
                    for spelling in spellings where line[content...].starts(with: spelling) {
                        let rest = line[(content + spelling.count)...].drop { $0 == " " }
                        if rest.first == ":" {
                            lines[index].replaceSubrange(content..<(content + spelling.count), with: placeholder.unicodeScalars)
                            return lines.map { String(String.UnicodeScalarView($0)) }.joined(separator: "\n")
                        }
                    }
                }
            }
            index += 1
        }
        return nil
    }
}

/// Walks YAML nodes against what is expected, collecting every error with its place.
struct NodeReader {
    let document: YAMLDocument
    var errors: [PolicyError] = []

    init(_ document: YAMLDocument) { self.document = document }

    mutating func error(at mark: Mark?, _ field: String, _ message: String) {
        errors.append(PolicyError(file: document.file, line: mark?.line ?? 1, column: mark?.column ?? 1,
                                  field: field, message: message))
    }

    /// Every error, of the document and of the walk, in the order of their places.
    var allErrors: [PolicyError] {
        (document.errors + errors).enumerated().sorted { a, b in
            (a.element.line ?? 0, a.element.column ?? 0, a.offset) < (b.element.line ?? 0, b.element.column ?? 0, b.offset)
        }.map(\.element)
    }

    /// The entries of a mapping whose keys are among `allowed`. Unknown keys (with the closest
    /// allowed key, or where the key belongs instead), non-string keys and duplicates are
    /// reported and left out.
    mutating func entries(of mapping: Node.Mapping, at path: String, allowed: [String],
                          elsewhere: [String] = []) -> [(key: String, keyNode: Node, value: Node)] {
        var result: [(key: String, keyNode: Node, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                error(at: keyNode.mark, path, "expected a key, got \(Self.describe(keyNode))")
                continue
            }
            let key = scalar.string
            if let duplicate = document.duplicates[key] {
                error(at: keyNode.mark, Self.join(path, duplicate.key),
                      "duplicate key; it is first given at line \(duplicate.firstLine)")
                continue
            }
            guard allowed.contains(key) else {
                error(at: keyNode.mark, Self.join(path, key), Self.unknownKey(key, at: path, allowed: allowed, elsewhere: elsewhere))
                continue
            }
            result.append((key, keyNode, value))
        }
        return result
    }

    static func unknownKey(_ key: String, at path: String, allowed: [String], elsewhere: [String]) -> String {
        let list = "(allowed here: \(allowed.joined(separator: ", ")))"
        if let near = closest(to: key, among: allowed) { return "unknown key; did you mean '\(near)'? \(list)" }
        if let home = elsewhere.first(where: { $0.split(separator: ".").last.map(String.init) == key }) {
            return "unknown key here; '\(key)' belongs at '\(home)' \(list)"
        }
        return "unknown key \(list)"
    }

    /// A value of `kind` from a node, or nil after reporting what was wrong. `null` is an
    /// unset value where the field is nullable.
    mutating func value(of node: Node, kind: FieldKind, nullable: Bool, at path: String) -> PolicyValue? {
        if Self.isNull(node) {
            if nullable { return .null }
            error(at: node.mark, path, "expected \(kind.expected), got null")
            return nil
        }
        if case .channels = kind { return channels(node, at: path) }
        guard case .scalar(let scalar) = node else {
            error(at: node.mark, path, "expected \(kind.expected), got \(Self.describe(node))")
            return nil
        }
        switch Self.decode(scalar, node: node, kind: kind) {
        case .success(let value):
            if let problem = kind.problem(with: value) {
                error(at: node.mark, path, problem)
                return nil
            }
            return value
        case .failure(let problem):
            error(at: node.mark, path, problem.message)
            return nil
        }
    }

    /// A list of channel URIs, each checked; an error for each one that is not.
    private mutating func channels(_ node: Node, at path: String) -> PolicyValue? {
        guard case .sequence(let sequence) = node else {
            error(at: node.mark, path, "expected \(FieldKind.channels.expected), got \(Self.describe(node))")
            return nil
        }
        var uris: [String] = []
        var ok = true
        for (i, item) in sequence.enumerated() {
            let itemPath = "\(path)[\(i)]"
            guard case .scalar(let scalar) = item, !Self.isNull(item) else {
                error(at: item.mark, itemPath, "expected a channel URI (tcp:HOST:PORT, unix:PATH or exec:COMMAND), got \(Self.describe(item))")
                ok = false
                continue
            }
            if let problem = ChannelURI.problem(scalar.string) {
                error(at: item.mark, itemPath, problem)
                ok = false
            }
            uris.append(scalar.string)
        }
        return ok ? .list(uris) : nil
    }

    struct Problem: Error { let message: String }

    /// A scalar read as `kind`, before its range is checked.
    private static func decode(_ scalar: Node.Scalar, node: Node, kind: FieldKind) -> Result<PolicyValue, Problem> {
        let text = scalar.string
        let got = describe(node)
        let expected = "expected \(kind.expected), got \(got)"
        switch kind {
        case .text, .choice:
            return .success(.text(text))
        case .duration:
            do { return .success(.duration(try TimeSpan(parsing: text))) } catch { return .failure(Problem(message: error.description)) }
        case .integer:
            guard tag(of: node) == Tag.Name.int.rawValue, let i = node.int else { return .failure(Problem(message: expected)) }
            return .success(.integer(i))
        case .number:
            guard [Tag.Name.int.rawValue, Tag.Name.float.rawValue].contains(tag(of: node)), let x = node.float, x.isFinite
            else { return .failure(Problem(message: expected)) }
            return .success(.number(x))
        case .boolean:
            guard tag(of: node) == Tag.Name.bool.rawValue, let b = node.bool else { return .failure(Problem(message: expected)) }
            return .success(.boolean(b))
        case .bandwidthSource:
            if text == "measured" || text == "predicted" { return .success(.text(text)) }
            if text.first?.isNumber == true {
                do { return .success(.bandwidth(try Bandwidth(parsing: text))) } catch { return .failure(Problem(message: error.description)) }
            }
            let near = closest(to: text, among: ["measured", "predicted"]).map { "; did you mean '\($0)'?" } ?? ""
            return .failure(Problem(message: expected + near))
        case .channels:
            return .failure(Problem(message: expected))
        }
    }

    static func tag(of node: Node) -> String { node.tag.rawValue }

    static func isNull(_ node: Node) -> Bool { tag(of: node) == Tag.Name.null.rawValue }

    /// What a node is, for "got …": a number, boolean or null as written, a string quoted, or
    /// the kind of a collection.
    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar):
            if isNull(node) { return "null" }
            let plainKinds = [Tag.Name.int, .float, .bool].map(\.rawValue)
            return plainKinds.contains(tag(of: node)) ? scalar.string : "'\(scalar.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    static func join(_ path: String, _ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The candidate nearest to `word` when it is near enough to be a typo.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(word.lowercased(), $0.lowercased())) }
        guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
        return best.1 <= max(2, best.0.count / 4) && best.1 < best.0.count ? best.0 : nil
    }

    /// Levenshtein distance, adjacent transpositions counting one.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { current[j] = min(current[j], previous2[j - 2] + 1) }
            }
            previous2 = previous
            previous = current
        }
        return previous[b.count]
    }
}

extension FieldKind {
    /// What is wrong with a value of the right type: out of range, not among the choices.
    func problem(with value: PolicyValue) -> String? {
        switch (self, value) {
        case (.text(let nonEmpty), .text(let s)):
            return nonEmpty && s.isEmpty ? "expected \(expected), got ''" : nil
        case (.choice(let values), .text(let s)):
            if values.contains(s) { return nil }
            let near = NodeReader.closest(to: s, among: values).map { "; did you mean '\($0)'?" } ?? ""
            return "expected \(expected), got '\(s)'\(near)"
        case (.duration(.positive), .duration(let d)):
            return d.nanoseconds > 0 ? nil : "expected a duration > 0, got \(d)"
        case (.integer(let minimum), .integer(let i)):
            return i >= minimum ? nil : "expected \(expected), got \(i)"
        case (.number(let minimum), .number(let x)):
            return x >= minimum ? nil : "expected \(expected), got \(PolicyValue.format(x))"
        case (.channels, .list(let uris)):
            return uris.lazy.compactMap(ChannelURI.problem).first
        default:
            return nil
        }
    }
}

/// The channels migpilot can recover over (DESIGN.md "Transports").
enum ChannelURI {
    /// What is wrong with a channel URI, or nil when it is one.
    static func problem(_ uri: String) -> String? {
        let expected = "expected a channel URI (tcp:HOST:PORT, unix:PATH or exec:COMMAND), got '\(uri)'"
        guard let colon = uri.firstIndex(of: ":") else { return expected }
        let rest = uri[uri.index(after: colon)...]
        switch uri[..<colon] {
        case "tcp":
            guard let portColon = rest.lastIndex(of: ":") else { return "expected tcp:HOST:PORT, got '\(uri)'" }
            let host = rest[..<portColon], port = rest[rest.index(after: portColon)...]
            if host.isEmpty || host == "[]" { return "expected a host in tcp:HOST:PORT, got '\(uri)'" }
            guard let number = Int(port), (1...65535).contains(number) else {
                return "expected a port 1–65535 in tcp:HOST:PORT, got '\(uri)'"
            }
            return nil
        case "unix": return rest.isEmpty ? "expected a socket path in unix:PATH, got '\(uri)'" : nil
        case "exec": return rest.allSatisfy({ $0 == " " }) ? "expected a command in exec:COMMAND, got '\(uri)'" : nil
        case "file": return "a file: channel only saves a stream one way; recovery needs a two-way channel (tcp:, unix: or exec:), got '\(uri)'"
        default: return expected
        }
    }
}

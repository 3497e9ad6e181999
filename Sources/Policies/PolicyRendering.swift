import Yams

/// A policy with every default filled in, written in the policy file's own schema: what
/// `migpilot policy show` prints. The YAML loads back to the same policy.
public struct EffectivePolicy: Sendable, Equatable {
    public let policy: Policy

    /// Every field in schema order, unset optional fields and an absent `downtime_steps` as
    /// `null`.
    public var yaml: String { Rendered.of(policy).yaml(indent: 0) }

    /// The same as one JSON object (durations and bandwidths as the strings YAML uses).
    public var json: String { Rendered.of(policy).json() + "\n" }
}

extension Policy {
    /// This policy with its defaults filled in, ready to print as YAML or JSON.
    public var effective: EffectivePolicy { EffectivePolicy(policy: self) }
}

/// A tree of keys and values in schema order.
enum Rendered {
    case value(PolicyValue)
    case mapping([(key: String, value: Rendered)])

    static func of(_ policy: Policy) -> Rendered {
        func walk(_ entries: [SchemaEntry]) -> Rendered {
            .mapping(entries.map { entry in
                switch entry {
                case .field(let f): (f.key, .value(f.get(policy)))
                case .section(let s):
                    if let presence = s.optional, !presence.isPresent(policy) { (s.key, .value(.null)) }
                    else { (s.key, walk(s.entries)) }
                }
            })
        }
        return walk(PolicySchema.root)
    }

    func yaml(indent: Int) -> String {
        guard case .mapping(let entries) = self else { return "" }
        let pad = String(repeating: " ", count: indent)
        var out = ""
        for (key, value) in entries {
            switch value {
            case .mapping: out += "\(pad)\(key):\n" + value.yaml(indent: indent + 2)
            case .value(.list(let items)) where !items.isEmpty:
                out += "\(pad)\(key):\n" + items.map { "\(pad)  - \(Self.yamlScalar($0))\n" }.joined()
            case .value(.list): out += "\(pad)\(key): []\n"
            case .value(.text(let s)): out += "\(pad)\(key): \(Self.yamlScalar(s))\n"
            case .value(let v): out += "\(pad)\(key): \(v)\n"
            }
        }
        return out
    }

    func json() -> String {
        switch self {
        case .mapping(let entries):
            return "{" + entries.map { "\(Self.jsonString($0.key)): \($0.value.json())" }.joined(separator: ", ") + "}"
        case .value(let v):
            switch v {
            case .integer, .number, .boolean, .null: return v.description
            case .list(let items): return "[" + items.map(Self.jsonString).joined(separator: ", ") + "]"
            case .text, .duration, .bandwidth: return Self.jsonString(v.description)
            }
        }
    }

    /// A string as a plain YAML scalar when it reads back as the same string, else double-quoted.
    static func yamlScalar(_ s: String) -> String {
        let safe = s.unicodeScalars.allSatisfy { c in
            (c.properties.isAlphabetic || c.properties.numericType != nil || "_-./:+()@= ".unicodeScalars.contains(c))
        }
        let plain = safe && !s.isEmpty && s.first != " " && s.last != " " && s.last != ":" && !s.contains(": ")
            && !"-:?".contains(s.first!) && Resolver.default.resolveTag(of: Node(s)) == .str
        return plain ? s : jsonString(s)
    }

    /// A double-quoted string, valid both as JSON and as YAML.
    static func jsonString(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            case _ where c.value < 0x20 || c.value == 0x7F:
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }
}

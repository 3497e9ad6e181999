import Migration

/// The value of one policy field, typed as the policy file writes it: what `PolicyLoader` reads,
/// what `policy show` prints and what a `ParameterSpace` point assigns.
public enum PolicyValue: Sendable, Equatable, CustomStringConvertible {
    /// A string, or the name of an enum case (`force-complete`, `measured`).
    case text(String)
    case duration(TimeSpan)
    case integer(Int)
    case number(Double)
    case boolean(Bool)
    case bandwidth(Bandwidth)
    /// A list of strings (channel URIs).
    case list([String])
    /// An optional field left unset.
    case null

    /// As a policy file writes it (`300ms`, `force-complete`, `2`, `true`, `null`).
    public var description: String {
        switch self {
        case .text(let s): s
        case .duration(let d): d.description
        case .integer(let i): "\(i)"
        case .number(let x): Self.format(x)
        case .boolean(let b): b ? "true" : "false"
        case .bandwidth(let b): Self.format(b)
        case .list(let items): "[" + items.joined(separator: ", ") + "]"
        case .null: "null"
        }
    }

    /// A number the way it reads back exactly: `2`, not `2.0`; `1.5`.
    static func format(_ x: Double) -> String {
        if x.isFinite, x == x.rounded(), abs(x) < 1e15 { return "\(Int64(x))" }
        return "\(x)"
    }

    /// A bandwidth the way it reads back exactly: in bits per second as links are named when that
    /// is exact (`10Gbit/s`), else in bytes per second (`1073741824B/s`).
    static func format(_ b: Bandwidth) -> String {
        let named = b.description
        if let back = try? Bandwidth(parsing: named), back == b { return named }
        return "\(format(b.bytesPerSecond))B/s"
    }
}

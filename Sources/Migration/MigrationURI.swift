/// Where a migration stream goes, written as QEMU and migpilot users write it:
/// `tcp:HOST:PORT`, `unix:PATH`, `exec:COMMAND`, `file:PATH`, or `stdio` (the destination's
/// own standard input and output).
public enum MigrationURI: Equatable, Sendable, CustomStringConvertible {
    case tcp(host: String, port: UInt16)
    case unix(path: String)
    case exec(command: String)
    case file(path: String)
    case stdio

    public init(parsing text: String) throws(QuantityError) {
        func failure(_ why: String) -> QuantityError {
            QuantityError(expected: "\(why) (tcp:HOST:PORT, unix:PATH, exec:COMMAND, file:PATH or stdio)", given: text)
        }
        if text == "stdio" {
            self = .stdio
            return
        }
        guard let colon = text.firstIndex(of: ":") else { throw failure("a URI with a scheme") }
        let scheme = text[..<colon], rest = String(text[text.index(after: colon)...])
        switch scheme {
        case "tcp":
            // The port follows the last colon, so IPv6 works bracketed: tcp:[::1]:4444.
            guard let portColon = rest.lastIndex(of: ":") else { throw failure("tcp:HOST:PORT") }
            var host = String(rest[..<portColon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty, let port = UInt16(rest[rest.index(after: portColon)...]), port > 0 else {
                throw failure("tcp:HOST:PORT with a port in 1...65535")
            }
            self = .tcp(host: host, port: port)
        case "unix":
            guard !rest.isEmpty else { throw failure("unix:PATH") }
            self = .unix(path: rest)
        case "exec":
            guard !rest.trimmingSpaces().isEmpty else { throw failure("exec:COMMAND") }
            self = .exec(command: rest)
        case "file":
            guard !rest.isEmpty else { throw failure("file:PATH") }
            self = .file(path: rest)
        default:
            throw failure("a known scheme, not '\(scheme)'")
        }
    }

    public var description: String {
        switch self {
        case let .tcp(host, port): host.contains(":") ? "tcp:[\(host)]:\(port)" : "tcp:\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        case .exec(let command): "exec:\(command)"
        case .file(let path): "file:\(path)"
        case .stdio: "stdio"
        }
    }
}

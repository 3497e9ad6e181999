import Synchronization

/// The JSON type a command's parameter takes, named as QEMU's errors name it
/// ("Invalid parameter type for 'uri', expected: string").
public enum QMPParameterType: String, Sendable {
    case string
    case boolean
    case integer
    case number
    case object
    case array
    /// Anything (QAPI's `any`).
    case any

    /// Whether `value` is of this type. An integer is a number too, as in QAPI.
    public func admits(_ value: JSONValue) -> Bool {
        switch (self, value) {
        case (.any, _), (.string, .string), (.boolean, .bool), (.object, .object), (.array, .array): true
        case (.integer, _): value.integerValue != nil
        case (.number, .integer), (.number, .number): true
        default: false
        }
    }
}

/// One parameter of a command: its name, type and whether it may be left out.
public struct QMPParameter: Sendable {
    public let name: String
    public let type: QMPParameterType
    public let optional: Bool

    public init(_ name: String, _ type: QMPParameterType, optional: Bool = false) {
        self.name = name
        self.type = type
        self.optional = optional
    }
}

/// A command the server dispatches to. Its arguments are checked against `parameters` before
/// `handler` runs (missing, unexpected and mistyped members get QEMU's errors), so a handler
/// reads them without checking their top-level types again. A handler returns the `return`
/// member's value (`{}` for none) or throws a `QMPError`; it must return promptly — commands
/// that take time (a migration) start work elsewhere and return, as QEMU's do.
public struct QMPCommand: Sendable {
    public typealias Handler = @Sendable (_ arguments: JSONValue) throws(QMPError) -> JSONValue

    public let name: String
    public let parameters: [QMPParameter]
    /// The command may come as `exec-oob` (QEMU's `allow-oob`): it then runs at once on the
    /// connection's reader, even while an in-band command is running.
    public let allowsOutOfBand: Bool
    public let handler: Handler

    public init(_ name: String, parameters: [QMPParameter] = [], allowsOutOfBand: Bool = false, handler: @escaping Handler) {
        self.name = name
        self.parameters = parameters
        self.allowsOutOfBand = allowsOutOfBand
        self.handler = handler
    }

    /// Checks `arguments` (an object) against the parameters in their order, as QEMU's input
    /// visitor does, then runs the handler.
    func run(_ arguments: JSONValue) throws(QMPError) -> JSONValue {
        let members = arguments.objectValue ?? []
        for p in parameters {
            guard let value = arguments[p.name] else {
                if p.optional { continue }
                throw QMPError(.genericError, "Parameter '\(p.name)' is missing")
            }
            guard p.type.admits(value) else {
                throw QMPError(.genericError, "Invalid parameter type for '\(p.name)', expected: \(p.type.rawValue)")
            }
        }
        if let extra = members.first(where: { m in !parameters.contains { $0.name == m.key } }) {
            throw QMPError(.genericError, "Parameter '\(extra.key)' is unexpected")
        }
        return try handler(arguments)
    }
}

/// The commands a server answers, registered by the layer above (the QMP module knows no
/// engine). Commands may be registered while the server runs.
public final class QMPCommandRegistry: Sendable {
    private let commands = Mutex<[String: QMPCommand]>([:])

    public init() {}

    /// Adds `command`, replacing one of the same name.
    public func register(_ command: QMPCommand) {
        commands.withLock { $0[command.name] = command }
    }

    public func register(_ name: String, parameters: [QMPParameter] = [], allowsOutOfBand: Bool = false,
                         handler: @escaping QMPCommand.Handler) {
        register(QMPCommand(name, parameters: parameters, allowsOutOfBand: allowsOutOfBand, handler: handler))
    }

    public func command(named name: String) -> QMPCommand? { commands.withLock { $0[name] } }

    /// The names, sorted (for `query-commands`).
    public var names: [String] { commands.withLock { $0.keys.sorted() } }
}

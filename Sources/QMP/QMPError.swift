/// An error in QMP's form: `{"error": {"class": …, "desc": …}}`. The classes are QEMU's
/// (`ErrorClass` in its qapi/error.json); almost everything is a `GenericError`.
public struct QMPError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Class: String, Sendable {
        case genericError = "GenericError"
        case commandNotFound = "CommandNotFound"
        case deviceNotActive = "DeviceNotActive"
        case deviceNotFound = "DeviceNotFound"
        case kvmMissingCap = "KVMMissingCap"
    }

    /// The class as the peer sent it (a client may meet a class this enum does not name).
    public let className: String
    public let desc: String

    public init(_ errorClass: Class = .genericError, _ desc: String) {
        self.className = errorClass.rawValue
        self.desc = desc
    }

    public init(className: String, desc: String) {
        self.className = className
        self.desc = desc
    }

    public var description: String { "\(className): \(desc)" }

    /// The `error` member's value.
    public var json: JSONValue { ["class": .string(className), "desc": .string(desc)] }
}

/// Why a QMP conversation could not go on: the monitor is gone, it did not answer in time, or
/// it said something a QMP client cannot work with. A command the peer refused is a `QMPError`.
public struct QMPConnectionError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The connection ended (EOF, reset, the peer exited) or could not be made.
        case closed
        /// No answer within the time allowed.
        case timeout
        /// The peer does not speak QMP as expected (no greeting, a reply of the wrong shape).
        case protocolViolation
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

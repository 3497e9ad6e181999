/// An asynchronous message from a QMP peer: `{"event": NAME, "data": {…}, "timestamp":
/// {"seconds", "microseconds"}}` (QEMU's `MIGRATION`, `MIGRATION_PASS`, `STOP`, `RESUME` …).
public struct QMPEvent: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let data: JSONValue
    /// The peer's wall-clock time of the event, in seconds since 1970 (nil if it sent none).
    public let timestamp: Double?
    /// Where it came in the conversation: messages are numbered as they arrive, so an event
    /// can be told to be older or newer than a command's reply (`QMPClient.executeSequenced`).
    public let sequence: UInt64

    public init(name: String, data: JSONValue = .object([]), timestamp: Double? = nil, sequence: UInt64 = 0) {
        self.name = name
        self.data = data
        self.timestamp = timestamp
        self.sequence = sequence
    }

    /// The event in `message`, or nil when it is not one.
    init?(_ message: JSONValue, sequence: UInt64) {
        guard let name = message["event"]?.stringValue else { return nil }
        self.sequence = sequence
        self.name = name
        data = message["data"] ?? .object([])
        if let t = message["timestamp"], let s = t["seconds"]?.doubleValue, s >= 0 {
            timestamp = s + (t["microseconds"]?.doubleValue ?? 0) / 1e6
        } else {
            timestamp = nil
        }
    }

    public var description: String { "\(name) \(data)" }
}

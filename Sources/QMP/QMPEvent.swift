/// An asynchronous message from a QMP peer: `{"event": NAME, "data": {…}, "timestamp":
/// {"seconds", "microseconds"}}` (QEMU's `MIGRATION`, `MIGRATION_PASS`, `STOP`, `RESUME` …).
public struct QMPEvent: Sendable, Equatable, CustomStringConvertible {
    public let name: String
    public let data: JSONValue
    /// The peer's wall-clock time of the event, in seconds since 1970 (nil if it sent none).
    public let timestamp: Double?

    public init(name: String, data: JSONValue = .object([]), timestamp: Double? = nil) {
        self.name = name
        self.data = data
        self.timestamp = timestamp
    }

    /// The event in `message`, or nil when it is not one.
    init?(_ message: JSONValue) {
        guard let name = message["event"]?.stringValue else { return nil }
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

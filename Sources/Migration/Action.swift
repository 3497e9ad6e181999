/// What a policy asks the migration to do. JSON names are kebab-case:
/// `{"action": "start-postcopy"}`, `{"action": "set-downtime-limit", "seconds": 0.5}`.
public enum Action: Codable, Sendable, Equatable {
    /// Nothing to change.
    case `continue`
    /// Sync the dirty bitmap and stop-and-copy if at most `maxPendingPages` are then pending;
    /// nil forces the stop whatever is pending (Nova's "pause the guest so that it completes").
    case complete(maxPendingPages: UInt64?)
    case startPostcopy
    case setDowntimeLimit(seconds: Double)
    /// nil removes the cap.
    case setBandwidth(bytesPerSecond: Double?)
    /// Slow the guest's vCPUs by this percentage (QEMU's cpu-throttle-percentage).
    case throttle(percent: Int)
    /// Pause a postcopy migration's channel (QEMU migrate-pause).
    case pause
    /// After `afterSeconds`, resume a paused postcopy migration over the channel `uri`.
    case recover(uri: String, afterSeconds: Double)
    case abort(reason: String)

    public var name: String {
        switch self {
        case .continue: "continue"
        case .complete: "complete"
        case .startPostcopy: "start-postcopy"
        case .setDowntimeLimit: "set-downtime-limit"
        case .setBandwidth: "set-bandwidth"
        case .throttle: "throttle"
        case .pause: "pause"
        case .recover: "recover"
        case .abort: "abort"
        }
    }

    private enum CodingKeys: String, CodingKey {
        case action, seconds, percent, uri, reason
        case maxPendingPages = "max_pending_pages"
        case bytesPerSecond = "bytes_per_s"
        case afterSeconds = "after_s"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .action)
        switch self {
        case .continue, .startPostcopy, .pause: break
        case .complete(let max): try c.encode(max, forKey: .maxPendingPages)
        case .setDowntimeLimit(let s): try c.encode(s, forKey: .seconds)
        case .setBandwidth(let b): try c.encode(b, forKey: .bytesPerSecond)
        case .throttle(let p): try c.encode(p, forKey: .percent)
        case let .recover(uri, after):
            try c.encode(uri, forKey: .uri)
            try c.encode(after, forKey: .afterSeconds)
        case .abort(let reason): try c.encode(reason, forKey: .reason)
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .action) {
        case "continue": self = .continue
        case "complete": self = .complete(maxPendingPages: try c.decodeIfPresent(UInt64.self, forKey: .maxPendingPages))
        case "start-postcopy": self = .startPostcopy
        case "set-downtime-limit": self = .setDowntimeLimit(seconds: try c.decode(Double.self, forKey: .seconds))
        case "set-bandwidth": self = .setBandwidth(bytesPerSecond: try c.decodeIfPresent(Double.self, forKey: .bytesPerSecond))
        case "throttle": self = .throttle(percent: try c.decode(Int.self, forKey: .percent))
        case "pause": self = .pause
        case "recover": self = .recover(uri: try c.decode(String.self, forKey: .uri), afterSeconds: try c.decode(Double.self, forKey: .afterSeconds))
        case "abort": self = .abort(reason: try c.decode(String.self, forKey: .reason))
        case let other: throw DecodingError.dataCorruptedError(forKey: .action, in: c, debugDescription: "unknown action '\(other)'")
        }
    }
}

/// What happened that made the backend report (besides time passing).
public enum MigrationEvent: Codable, Sendable, Equatable {
    /// A precopy pass ended: the dirty bitmap was synced and a new pass begins.
    case passCompleted
    /// What is left of the current pass fits the downtime limit at the measured bandwidth
    /// (QEMU checks this continuously and then syncs exactly).
    case pendingBelowThreshold
    /// A completion was asked for, but after the exact sync more was pending than allowed.
    case completionRefused(pendingPages: UInt64)
    /// The migration channel broke (error, EOF or silence).
    case channelBroken(reason: String)
    /// A recovery attempt failed; the migration is paused again.
    case recoveryFailed(reason: String)
    /// A recovery handshake succeeded; postcopy goes on.
    case recovered
    case stateChanged

    private enum CodingKeys: String, CodingKey { case event, pendingPages = "pending_pages", reason }

    /// The dirty bitmap was synced: a pass ended, or a completion was refused after the exact
    /// sync. A new period of dirtying starts.
    public var isSync: Bool {
        switch self {
        case .passCompleted, .completionRefused: true
        default: false
        }
    }

    public var name: String {
        switch self {
        case .passCompleted: "pass-completed"
        case .pendingBelowThreshold: "pending-below-threshold"
        case .completionRefused: "completion-refused"
        case .channelBroken: "channel-broken"
        case .recoveryFailed: "recovery-failed"
        case .recovered: "recovered"
        case .stateChanged: "state-changed"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .event)
        switch self {
        case .completionRefused(let pages): try c.encode(pages, forKey: .pendingPages)
        case .channelBroken(let reason), .recoveryFailed(let reason): try c.encode(reason, forKey: .reason)
        default: break
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        switch try c.decode(String.self, forKey: .event) {
        case "pass-completed": self = .passCompleted
        case "pending-below-threshold": self = .pendingBelowThreshold
        case "completion-refused": self = .completionRefused(pendingPages: try c.decode(UInt64.self, forKey: .pendingPages))
        case "channel-broken": self = .channelBroken(reason: try c.decode(String.self, forKey: .reason))
        case "recovery-failed": self = .recoveryFailed(reason: try c.decode(String.self, forKey: .reason))
        case "recovered": self = .recovered
        case "state-changed": self = .stateChanged
        case let other: throw DecodingError.dataCorruptedError(forKey: .event, in: c, debugDescription: "unknown event '\(other)'")
        }
    }
}

/// What a policy sees at one moment: the status, and the events since the last observation.
public struct Observation: Codable, Sendable, Equatable {
    public var status: MigrationStatus
    public var events: [MigrationEvent]
    /// Recovery attempts made since the channel last broke.
    public var recoveryAttempts: Int

    public init(status: MigrationStatus, events: [MigrationEvent] = [], recoveryAttempts: Int = 0) {
        self.status = status
        self.events = events
        self.recoveryAttempts = recoveryAttempts
    }

    enum CodingKeys: String, CodingKey {
        case status, events
        case recoveryAttempts = "recovery_attempts"
    }
}

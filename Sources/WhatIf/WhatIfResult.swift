import Migration

/// What one policy does to one trace on one link: the figures `migpilot whatif` prints.
public struct WhatIfResult: Codable, Sendable, Equatable {
    public var policy: String
    public var trace: String
    public var bandwidthBytesPerSecond: Double
    public var completed: Bool
    /// Finished by precopy alone (no postcopy).
    public var converged: Bool
    public var totalTimeSeconds: Double
    public var downtimeSeconds: Double?
    public var bytes: UInt64
    public var passes: Int
    public var switchAtSeconds: Double?
    public var remainingPagesAtSwitch: UInt64?
    public var postcopyTimeSeconds: Double?
    public var remoteFaults: UInt64
    public var pausedSeconds: Double
    public var recoveries: Int
    /// The final state, with QEMU's name.
    public var state: MigrationState
    /// Why it did not complete or converge, in words.
    public var reason: String?

    enum CodingKeys: String, CodingKey {
        case policy, trace, completed, converged, bytes, passes, recoveries, reason
        case state = "status"
        case bandwidthBytesPerSecond = "bandwidth_bytes_per_s"
        case totalTimeSeconds = "total_time_s"
        case downtimeSeconds = "downtime_s"
        case switchAtSeconds = "switch_at_s"
        case remainingPagesAtSwitch = "remaining_pages_at_switch"
        case postcopyTimeSeconds = "postcopy_time_s"
        case remoteFaults = "remote_faults"
        case pausedSeconds = "paused_s"
    }

    // Every key is written, null included: a reader can rely on the set of fields.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(policy, forKey: .policy)
        try c.encode(trace, forKey: .trace)
        try c.encode(bandwidthBytesPerSecond, forKey: .bandwidthBytesPerSecond)
        try c.encode(completed, forKey: .completed)
        try c.encode(converged, forKey: .converged)
        try c.encode(totalTimeSeconds, forKey: .totalTimeSeconds)
        try c.encode(downtimeSeconds, forKey: .downtimeSeconds)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(passes, forKey: .passes)
        try c.encode(switchAtSeconds, forKey: .switchAtSeconds)
        try c.encode(remainingPagesAtSwitch, forKey: .remainingPagesAtSwitch)
        try c.encode(postcopyTimeSeconds, forKey: .postcopyTimeSeconds)
        try c.encode(remoteFaults, forKey: .remoteFaults)
        try c.encode(pausedSeconds, forKey: .pausedSeconds)
        try c.encode(recoveries, forKey: .recoveries)
        try c.encode(state, forKey: .state)
        try c.encode(reason, forKey: .reason)
    }
}

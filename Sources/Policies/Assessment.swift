import Migration

/// What the convergence model says at one observation, reduced to what a policy decides on.
/// The driver fills it in (the `estimate` step); the engine only reads it.
public struct Assessment: Codable, Sendable, Equatable {
    /// Bandwidth the model predicts for the rest of the migration, bytes per second.
    public var bandwidthBytesPerSecond: Double
    /// Will precopy reach a stop-and-copy under the downtime limit within the policy's budget?
    /// nil while the model has too few samples to say.
    public var converges: Bool?
    /// Predicted seconds until precopy completes from now (nil when it does not converge).
    public var predictedRemainingSeconds: Double?
    public var predictedDowntimeSeconds: Double?
    /// Seconds to finish if postcopy started now: what is pending, pushed at the bandwidth.
    public var postcopyRemainingSeconds: Double?
    /// Dirty rate (pages/s) and writable working set (pages) the prediction came from.
    public var dirtyRatePagesPerSecond: Double?
    public var workingSetPages: Double?
    /// Why the model says what it says (e.g. "dirty rate 52,000 pages/s outruns the link").
    public var reason: String

    public init(bandwidthBytesPerSecond: Double, converges: Bool? = nil, predictedRemainingSeconds: Double? = nil,
                predictedDowntimeSeconds: Double? = nil, postcopyRemainingSeconds: Double? = nil, dirtyRatePagesPerSecond: Double? = nil, workingSetPages: Double? = nil,
                reason: String = "") {
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.converges = converges
        self.predictedRemainingSeconds = predictedRemainingSeconds
        self.predictedDowntimeSeconds = predictedDowntimeSeconds
        self.postcopyRemainingSeconds = postcopyRemainingSeconds
        self.dirtyRatePagesPerSecond = dirtyRatePagesPerSecond
        self.workingSetPages = workingSetPages
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case converges, reason
        case bandwidthBytesPerSecond = "bandwidth_bytes_per_s"
        case predictedRemainingSeconds = "predicted_remaining_s"
        case predictedDowntimeSeconds = "predicted_downtime_s"
        case postcopyRemainingSeconds = "postcopy_remaining_s"
        case dirtyRatePagesPerSecond = "dirty_rate_pages_per_s"
        case workingSetPages = "working_set_pages"
    }
}

/// One decision: an action and why.
public struct Decision: Codable, Sendable, Equatable {
    public var action: Action
    public var reason: String
    public init(_ action: Action, _ reason: String) {
        self.action = action
        self.reason = reason
    }
}

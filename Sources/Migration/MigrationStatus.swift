/// A snapshot of a migration, as QEMU's `query-migrate` reports it, plus the two figures the
/// convergence model fits (distinct pages dirtied since the last bitmap sync, and how long ago
/// that sync was).
public struct MigrationStatus: Codable, Sendable, Equatable {
    public var state: MigrationState
    /// Seconds since the migration started.
    public var elapsedSeconds: Double
    /// Precopy pass: QEMU's dirty-sync-count (1 during the first full copy).
    public var pass: Int
    public var pageSize: Int
    public var totalPages: UInt64
    /// Pages still to send in the current pass (QEMU's ram.remaining, an estimate until the next sync).
    public var remainingPages: UInt64
    public var transferredBytes: UInt64
    /// Distinct pages the guest dirtied since the last sync.
    public var dirtyPagesSinceSync: UInt64
    public var secondsSinceSync: Double
    /// Pages dirtied per second over the last complete pass (QEMU's dirty-pages-rate).
    public var dirtyPagesRate: Double
    /// Transfer rate measured over the recent past, bytes per second.
    public var bandwidthBytesPerSecond: Double
    /// Seconds a stop-and-copy would take now: remaining bytes over bandwidth.
    public var expectedDowntimeSeconds: Double
    public var downtimeLimitSeconds: Double
    /// Pages the destination requested because the guest touched them first (postcopy).
    public var postcopyRequests: UInt64
    /// Once completed: from the guest's stop on the source to its start on the destination.
    public var downtimeSeconds: Double?

    public init(state: MigrationState, elapsedSeconds: Double = 0, pass: Int = 0, pageSize: Int = 4096, totalPages: UInt64 = 0,
                remainingPages: UInt64 = 0, transferredBytes: UInt64 = 0, dirtyPagesSinceSync: UInt64 = 0,
                secondsSinceSync: Double = 0, dirtyPagesRate: Double = 0, bandwidthBytesPerSecond: Double = 0,
                expectedDowntimeSeconds: Double = 0, downtimeLimitSeconds: Double = 0.3, postcopyRequests: UInt64 = 0,
                downtimeSeconds: Double? = nil) {
        self.state = state
        self.elapsedSeconds = elapsedSeconds
        self.pass = pass
        self.pageSize = pageSize
        self.totalPages = totalPages
        self.remainingPages = remainingPages
        self.transferredBytes = transferredBytes
        self.dirtyPagesSinceSync = dirtyPagesSinceSync
        self.secondsSinceSync = secondsSinceSync
        self.dirtyPagesRate = dirtyPagesRate
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.expectedDowntimeSeconds = expectedDowntimeSeconds
        self.downtimeLimitSeconds = downtimeLimitSeconds
        self.postcopyRequests = postcopyRequests
        self.downtimeSeconds = downtimeSeconds
    }

    enum CodingKeys: String, CodingKey {
        case state = "status"
        case elapsedSeconds = "time_s"
        case pass
        case pageSize = "page_size"
        case totalPages = "total_pages"
        case remainingPages = "remaining_pages"
        case transferredBytes = "transferred_bytes"
        case dirtyPagesSinceSync = "dirty_pages_since_sync"
        case secondsSinceSync = "seconds_since_sync"
        case dirtyPagesRate = "dirty_pages_rate"
        case bandwidthBytesPerSecond = "bandwidth_bytes_per_s"
        case expectedDowntimeSeconds = "expected_downtime_s"
        case downtimeLimitSeconds = "downtime_limit_s"
        case postcopyRequests = "postcopy_requests"
        case downtimeSeconds = "downtime_s"
    }
}

/// What a backend shows of the pages dirtied since the last sync.
public enum DirtyCountVisibility: String, Sendable, CaseIterable {
    /// The distinct pages, at any moment (the embedded engine's dirty log, a trace).
    case exact
    /// Only at a sync, as a rate over the period that ended (QEMU's `dirty-pages-rate`: it
    /// reads its dirty bitmap at a sync only). Between syncs the count is derived from that
    /// rate, and before the first sync it is unknown.
    case atSyncOnly = "at-sync"

    /// The count and time since the sync such a backend reports: `rate` × the time since the
    /// sync (at most the guest's pages) once there is a rate, nothing (0 and 0 s) before.
    public static func derived(pass: Int, rate: Double, secondsSinceSync: Double, totalPages: UInt64) -> (pages: UInt64, seconds: Double) {
        guard pass > 1 else { return (0, 0) }
        return (UInt64(max(0, min(Double(totalPages), rate * secondsSinceSync))), secondsSinceSync)
    }
}

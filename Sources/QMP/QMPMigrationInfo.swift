import Migration

/// QEMU's answer to `query-migrate` (qapi/migration.json `MigrationInfo`), the fields a policy
/// needs, in QEMU's units: times in milliseconds, sizes in bytes, `mbps` in megabits (10⁶) per
/// second. Absent fields (QEMU leaves out what does not apply to a state) read as zero or nil.
public struct QMPMigrationInfo: Sendable, Equatable {
    public var status: MigrationState
    /// The name as QEMU sent it (it has states migpilot does not, e.g. `colo`, `wait-unplug`).
    public var rawStatus: String
    public var totalTimeMilliseconds: Double?
    public var downtimeMilliseconds: Double?
    public var expectedDowntimeMilliseconds: Double?
    public var transferred: UInt64 = 0
    public var remaining: UInt64 = 0
    public var total: UInt64 = 0
    public var dirtySyncCount = 0
    public var dirtyPagesRate = 0.0
    public var mbps = 0.0
    public var postcopyRequests: UInt64 = 0
    public var pageSize = 4096
    public var errorDesc: String?

    public init(_ v: JSONValue) throws(QMPMigrationError) {
        guard v.objectValue != nil else { throw QMPMigrationError("query-migrate returned \(v.typeName), not an object") }
        rawStatus = v["status"]?.stringValue ?? "none"
        status = Self.state(rawStatus)
        totalTimeMilliseconds = v["total-time"]?.doubleValue
        downtimeMilliseconds = v["downtime"]?.doubleValue
        expectedDowntimeMilliseconds = v["expected-downtime"]?.doubleValue
        errorDesc = v["error-desc"]?.stringValue
        if let ram = v["ram"] {
            func count(_ key: String) -> UInt64 { UInt64(max(0, ram[key]?.integerValue ?? 0)) }
            transferred = count("transferred")
            remaining = count("remaining")
            total = count("total")
            dirtySyncCount = Int(count("dirty-sync-count"))
            dirtyPagesRate = ram["dirty-pages-rate"]?.doubleValue ?? 0
            mbps = ram["mbps"]?.doubleValue ?? 0
            postcopyRequests = count("postcopy-requests")
            if let size = ram["page-size"]?.integerValue, size > 0 { pageSize = Int(size) }
        }
    }

    /// QEMU's state names are migpilot's, but for two it has and migpilot has not: `colo` (a
    /// COLO pair keeps checkpointing: still moving pages) and `wait-unplug` (waiting for a
    /// failover device to go, before the first page).
    static func state(_ name: String) -> MigrationState {
        if let known = MigrationState(rawValue: name) { return known }
        switch name {
        case "colo": return .active
        case "wait-unplug": return .setup
        default: return .active
        }
    }

    /// Bytes per second, from `mbps`.
    public var bandwidthBytesPerSecond: Double { mbps * 1e6 / 8 }
}

import Foundation
import Migration

/// A migration between two QMP peers (a QEMU pair, or any pair that answers QEMU's migration
/// commands) as a `MigrationControl`, so that the policy driver drives QEMU exactly as it
/// drives the embedded engine. QEMU moves the pages; this reads `query-migrate` and the
/// `MIGRATION`/`MIGRATION_PASS` events, turns them into observations, and turns the policy's
/// actions into QEMU's commands (docs/qmp.md, "Driving QEMU: QMPMigration"):
///
/// - `start`: capabilities `events` (and `postcopy-ram` when the policy may switch) on both
///   sides, `migrate-incoming` on the destination, the bandwidth caps, `migrate` on the source;
/// - `setDowntimeLimit`, `setBandwidth`: `migrate-set-parameters` (`downtime-limit` in ms,
///   `max-bandwidth` in precopy, `max-postcopy-bandwidth` in postcopy);
/// - `complete`: QEMU stops the guest by itself once what is pending fits bandwidth ×
///   downtime-limit (after an exact sync). A page budget above what QEMU's limit allows raises
///   `downtime-limit` to cover it until the next sync; no budget (force) raises it to QEMU's
///   maximum so that the next check stops the guest whatever is pending. A sync that leaves
///   the migration active is the refusal (`completion-refused`);
/// - `startPostcopy`, `pause`: `migrate-start-postcopy`, `migrate-pause`;
/// - `recover(uri:after:)`: after the wait, `migrate-recover` out of band on the destination
///   (its main thread may be blocked on a missing page) to listen on the channel, then
///   `migrate` with `resume: true` on the source to it;
/// - `cancel`: `migrate_cancel` (refused in postcopy: the guest runs on the destination).
public final class QMPMigration: MigrationControl, @unchecked Sendable {
    // @unchecked: driven from one thread (the driver's), as MigrationControl is; the clients
    // are thread-safe on their own.
    public let source: QMPClient
    public let destination: QMPClient
    /// Where the source sends the stream, and where the destination listens for it (the same
    /// URI unless something, a proxy or NAT, sits between them).
    public let to: String
    public let incoming: String
    public let postcopyAllowed: Bool
    public let bandwidthCap: Double?
    /// How long a single QMP command may take to be answered.
    public let commandTimeout: Double

    /// QEMU's ceiling for downtime-limit (MAX_MIGRATE_DOWNTIME_SECONDS, 2000 s).
    static let maxDowntimeLimitMilliseconds: Int64 = 2_000_000
    /// `setBandwidth(nil)` in precopy: QEMU has no "no cap" for max-bandwidth (its default is
    /// 128 MiB/s), so a cap no link here reaches.
    static let uncappedBytesPerSecond: Int64 = 100_000_000_000

    private var startedAt: Date?
    private var info: QMPMigrationInfo?
    private var state = MigrationState.none
    private var destinationState = MigrationState.none
    private var syncCount = 0
    /// Where the last query-migrate reply came: MIGRATION events before it are older news.
    private var lastQuery: UInt64 = 0
    private var lastSyncAt = Date()
    private var thresholdReported = false
    private var policyDowntimeLimit = 0.3
    /// A completion asked for: the sync count then, and whether downtime-limit was raised for it.
    private var completion: (syncCount: Int, raised: Bool)?
    /// When a sync after the completion request was first seen with the migration still active.
    private var refusalSeen: Date?
    private var pendingEvents: [MigrationEvent] = []
    private var recoveryDue: (uri: String, at: Date)?
    private var recoveryInFlight = false
    private var postcopyFrom: Date?
    private var postcopyEnd: Date?
    private var pausedSince: Date?
    private var pausedTotal = 0.0

    /// Recovery handshakes that brought postcopy back.
    public private(set) var recoveries = 0
    /// Every command sent (polls aside), when and to which side: what a replay by hand would
    /// send (Benchmarks/qemu-driver-overhead.sh).
    public private(set) var commandLog: [(at: Date, side: String, command: String, arguments: JSONValue?)] = []
    /// When `migrate` was sent.
    public var migrateSentAt: Date? { startedAt }

    public init(source: QMPClient, destination: QMPClient, to: String, incoming: String? = nil, postcopyAllowed: Bool,
                bandwidthCap: Double? = nil, commandTimeout: Double = 10) {
        self.source = source
        self.destination = destination
        self.to = to
        self.incoming = incoming ?? to
        self.postcopyAllowed = postcopyAllowed
        self.bandwidthCap = bandwidthCap
        self.commandTimeout = commandTimeout
    }

    /// From the switch to postcopy to its end; nil when the migration stayed in precopy.
    public var postcopySeconds: Double? { postcopyFrom.map { (postcopyEnd ?? Date()).timeIntervalSince($0) } }
    /// Seconds spent in postcopy-paused and postcopy-recover.
    public var pausedSeconds: Double { pausedTotal + (pausedSince.map { Date().timeIntervalSince($0) } ?? 0) }
    /// The last `query-migrate` answer of the source.
    public var lastInfo: QMPMigrationInfo? { info }

    // MARK: MigrationControl

    public func start() throws {
        let before = try QMPMigrationInfo(try command(source, "source", "query-migrate"))
        guard [.none, .completed, .failed, .cancelled].contains(before.status) else {
            throw QMPMigrationError("the source is already migrating (query-migrate: \(before.rawStatus))")
        }
        let status = try command(destination, "destination", "query-status")["status"]?.stringValue
        guard status == "inmigrate" else {
            throw QMPMigrationError("the destination is not waiting for a migration (query-status: \(status ?? "?"); start it with -incoming defer)")
        }
        var capabilities: [JSONValue] = [["capability": "events", "state": true]]
        if postcopyAllowed { capabilities.append(["capability": "postcopy-ram", "state": true]) }
        for (client, side) in [(source, "source"), (destination, "destination")] {
            try command(client, side, "migrate-set-capabilities", ["capabilities": .array(capabilities)])
        }
        do {
            try command(destination, "destination", "migrate-incoming", ["uri": .string(incoming)])
        } catch let e as QMPError where e.desc.contains("already been started") || e.desc.contains("-incoming defer") {
            // Started with -incoming URI rather than defer: it listens already, where it was told.
        }
        if let cap = bandwidthCap {
            try command(source, "source", "migrate-set-parameters",
                        ["max-bandwidth": .integer(Self.integer(cap)), "max-postcopy-bandwidth": .integer(Self.integer(cap))])
        }
        startedAt = Date()
        lastSyncAt = startedAt!
        try command(source, "source", "migrate", ["uri": .string(to)])
        state = .setup
        pendingEvents.append(.stateChanged)
    }

    public func nextObservation(within seconds: Double) throws -> Observation {
        let end = Date().addingTimeInterval(max(0, seconds))
        if let due = recoveryDue {
            if due.at > end {
                try sourceEvents(until: end)
            } else {
                let wait = due.at.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1e6)) }
                recoveryDue = nil
                recover(over: due.uri)
            }
        } else {
            try sourceEvents(until: end)
        }
        var now = try query()
        // QEMU says `completed` a moment before it has computed total-time and downtime.
        let settle = Date().addingTimeInterval(1)
        while now.status == .completed, (now.totalTimeMilliseconds ?? 0) == 0, Date() < settle {
            usleep(10_000)
            now = try query()
        }
        transition(to: now.status, error: now.errorDesc)
        info = now
        if now.dirtySyncCount > syncCount {
            if syncCount > 0, now.status == .active { pendingEvents.append(.passCompleted) }
            syncCount = now.dirtySyncCount
            lastSyncAt = Date()
            thresholdReported = false
        }
        try checkCompletion(now)
        if now.status == .active, !thresholdReported, now.bandwidthBytesPerSecond > 0,
           Double(now.remaining) <= now.bandwidthBytesPerSecond * policyDowntimeLimit {
            thresholdReported = true
            pendingEvents.append(.pendingBelowThreshold)
        }
        defer { pendingEvents.removeAll() }
        return Observation(status: status(now), events: pendingEvents)
    }

    public func complete(maxPendingPages: UInt64?) throws -> Bool {
        guard state == .active else { throw QMPMigrationError("'complete' is not allowed in state '\(state.rawValue)'") }
        var raised = false
        if let max = maxPendingPages {
            let bandwidth = info?.bandwidthBytesPerSecond ?? 0, pageSize = Double(info?.pageSize ?? 4096)
            let needed = bandwidth > 0 ? Double(max) * pageSize / bandwidth : 0
            if needed > policyDowntimeLimit {
                try setLimit(milliseconds: Self.integer((needed * 1000).rounded(.up)))
                raised = true
            }
        } else {
            try setLimit(milliseconds: Self.maxDowntimeLimitMilliseconds)
            raised = true
        }
        completion = (syncCount, raised)
        refusalSeen = nil
        // QEMU decides the moment itself: the stop shows as `device` then `completed`.
        return false
    }

    /// QEMU syncs only when its estimate fits, and stops the guest right after the sync if the
    /// exact figure fits too; a sync seen while still `active` may be a stop a moment away. So
    /// a refusal is a sync after the request with the migration still `active` 0.2 s later.
    private func checkCompletion(_ now: QMPMigrationInfo) throws {
        guard let c = completion else { return }
        guard now.status == .active else {
            completion = nil
            refusalSeen = nil
            return
        }
        guard now.dirtySyncCount > c.syncCount else { return }
        guard let seen = refusalSeen else {
            refusalSeen = Date()
            return
        }
        guard Date().timeIntervalSince(seen) >= Self.stopGraceSeconds else { return }
        completion = nil
        refusalSeen = nil
        pendingEvents.append(.completionRefused(pendingPages: now.remaining / UInt64(now.pageSize)))
        if c.raised { try setDowntimeLimit(seconds: policyDowntimeLimit) }
    }

    /// How long after its sync QEMU may take to stop the guest (a few ms here under TCG).
    static let stopGraceSeconds = 0.2

    public func startPostcopy() throws {
        guard postcopyAllowed else {
            throw QMPMigrationError("'start-postcopy': postcopy-ram was not enabled before migrate (the policy does not allow postcopy)")
        }
        guard state == .active else { throw QMPMigrationError("'start-postcopy' is not allowed in state '\(state.rawValue)'") }
        try command(source, "source", "migrate-start-postcopy")
    }

    public func setDowntimeLimit(seconds: Double) throws {
        try setLimit(milliseconds: Self.integer((seconds * 1000).rounded()))
        policyDowntimeLimit = seconds
    }

    /// A figure for QEMU's integer parameters: never negative, never past Int64 (a conversion
    /// that would trap), NaN as 0.
    static func integer(_ x: Double) -> Int64 {
        guard x.isFinite else { return x == .infinity ? Int64.max : 0 }
        return x <= 0 ? 0 : x >= 9.2e18 ? Int64.max : Int64(x)
    }

    private func setLimit(milliseconds: Int64) throws {
        try command(source, "source", "migrate-set-parameters", ["downtime-limit": .integer(min(milliseconds, Self.maxDowntimeLimitMilliseconds))])
    }

    public func setBandwidth(bytesPerSecond: Double?) throws {
        if state.isPostcopy {
            // 0: no cap, in QEMU's own terms for max-postcopy-bandwidth.
            try command(source, "source", "migrate-set-parameters", ["max-postcopy-bandwidth": .integer(bytesPerSecond.map(Self.integer) ?? 0)])
        } else {
            try command(source, "source", "migrate-set-parameters", ["max-bandwidth": .integer(bytesPerSecond.map(Self.integer) ?? Self.uncappedBytesPerSecond)])
        }
    }

    public func throttle(percent: Int) throws {
        // QEMU throttles only through its own auto-converge capability, which must be set
        // before migrate and then follows QEMU's schedule, not a policy's percentage.
        throw QMPMigrationError("'throttle \(percent)%': QEMU has no command that sets the vCPU throttle (it comes from the auto-converge capability)")
    }

    public func pause() throws {
        guard state == .postcopyActive else { throw QMPMigrationError("'pause' is only allowed in state 'postcopy-active', not '\(state.rawValue)'") }
        try command(source, "source", "migrate-pause")
    }

    public func recover(uri: String, after seconds: Double) throws {
        guard state == .postcopyPaused else { throw QMPMigrationError("'recover' is only allowed in state 'postcopy-paused', not '\(state.rawValue)'") }
        guard recoveryDue == nil, !recoveryInFlight else { throw QMPMigrationError("a recovery is already under way") }
        recoveryDue = (uri, Date().addingTimeInterval(max(0, seconds)))
    }

    public func cancel(reason: String) throws {
        guard !state.isPostcopy else {
            throw QMPMigrationError("a migration in postcopy cannot be cancelled: the guest runs on the destination, which still needs the rest of its pages")
        }
        guard !state.isFinished else { return }
        try command(source, "source", "migrate_cancel")
    }

    // MARK: after the end

    /// Waits (at most `timeout` seconds) until the destination reports the migration
    /// `completed` and its guest `running`; what it reports last.
    public func destinationOutcome(timeout: Double = 10) -> (completed: Bool, running: Bool, detail: String) {
        let end = Date().addingTimeInterval(timeout)
        var migration = "?", run = "?"
        repeat {
            migration = (try? destination.execute("query-migrate", timeout: commandTimeout))?["status"]?.stringValue ?? migration
            run = (try? destination.execute("query-status", timeout: commandTimeout))?["status"]?.stringValue ?? run
            if migration == "completed", run == "running" { break }
            usleep(20_000)
        } while Date() < end
        return (migration == "completed", run == "running", "the destination reports migration \(migration), guest \(run)")
    }

    // MARK: observing

    /// Waits for source events until `end`, and follows both sides' `MIGRATION` events so that
    /// no state is missed between two polls.
    private func sourceEvents(until end: Date) throws {
        let events = try source.events(waiting: max(0, end.timeIntervalSinceNow))
        for e in events where e.name == "MIGRATION" && e.sequence > lastQuery {
            if let s = e.data["status"]?.stringValue { transition(to: QMPMigrationInfo.state(s), error: nil) }
        }
        followDestination()
    }

    private func followDestination() {
        guard let events = try? destination.events(waiting: 0) else { return }
        for e in events where e.name == "MIGRATION" {
            if let s = e.data["status"]?.stringValue { destinationState = QMPMigrationInfo.state(s) }
        }
    }

    /// The events a change of the source's state means.
    private func transition(to next: MigrationState, error: String?) {
        guard next != state else { return }
        let previous = state
        state = next
        pendingEvents.append(.stateChanged)
        let now = Date()
        if next == .postcopyActive, postcopyFrom == nil { postcopyFrom = now }
        if next.isFinished, postcopyFrom != nil, postcopyEnd == nil { postcopyEnd = now }
        let paused = next == .postcopyPaused || next == .postcopyRecover
        if paused, pausedSince == nil { pausedSince = now }
        if !paused, let since = pausedSince {
            pausedTotal += now.timeIntervalSince(since)
            pausedSince = nil
        }
        switch (previous, next) {
        case (.postcopyActive, .postcopyPaused):
            pendingEvents.append(.channelBroken(reason: "QEMU's source went postcopy-paused\(error.map { ": \($0)" } ?? "")"))
        case (.postcopyRecover, .postcopyPaused):
            recoveryInFlight = false
            pendingEvents.append(.recoveryFailed(reason: "QEMU's source went back to postcopy-paused\(error.map { ": \($0)" } ?? "")"))
        case (.postcopyPaused, .postcopyActive), (.postcopyRecover, .postcopyActive):
            recoveryInFlight = false
            recoveries += 1
            pendingEvents.append(.recovered)
        default:
            break
        }
    }

    /// One recovery attempt: the destination listens on the channel, the source resumes to it.
    /// A refusal on either side is the attempt's failure, and the policy tries again.
    private func recover(over uri: String) {
        let listen = uri.isEmpty ? incoming : uri, connect = uri.isEmpty ? to : uri
        // migrate-recover is refused until the destination has seen the break itself.
        let end = Date().addingTimeInterval(2)
        followDestination()
        while destinationState != .postcopyPaused, Date() < end {
            usleep(10_000)
            followDestination()
        }
        do {
            try command(destination, "destination", "migrate-recover", ["uri": .string(listen)], outOfBand: destination.oob)
            try command(source, "source", "migrate", ["uri": .string(connect), "resume": true])
            recoveryInFlight = true
        } catch {
            pendingEvents.append(.recoveryFailed(reason: "\(error)"))
        }
    }

    private func query() throws -> QMPMigrationInfo {
        let (value, sequence) = try source.executeSequenced("query-migrate", timeout: commandTimeout)
        lastQuery = sequence
        return try QMPMigrationInfo(value)
    }

    /// QEMU's figures as a `MigrationStatus`.
    private func status(_ i: QMPMigrationInfo) -> MigrationStatus {
        let pageSize = UInt64(i.pageSize)
        let sinceSync = Date().timeIntervalSince(lastSyncAt)
        let elapsed = i.totalTimeMilliseconds.map { $0 / 1000 } ?? startedAt.map { Date().timeIntervalSince($0) } ?? 0
        let totalPages = i.total / pageSize
        // QEMU does not count distinct pages dirtied since the last sync (its bitmap is read
        // only at a sync): derived from its dirty-pages-rate, a straight line within a pass, so
        // the model sees the working set saturate across passes only; unknown in pass 1.
        let dirty = i.status == .active
            ? DirtyCountVisibility.derived(pass: i.dirtySyncCount, rate: i.dirtyPagesRate, secondsSinceSync: sinceSync, totalPages: totalPages)
            : (pages: 0, seconds: 0)
        return MigrationStatus(
            state: i.status, elapsedSeconds: elapsed, pass: i.dirtySyncCount, pageSize: i.pageSize, totalPages: totalPages,
            remainingPages: i.remaining / pageSize, transferredBytes: i.transferred, dirtyPagesSinceSync: dirty.pages,
            secondsSinceSync: dirty.seconds, dirtyPagesRate: i.dirtyPagesRate,
            bandwidthBytesPerSecond: i.bandwidthBytesPerSecond,
            expectedDowntimeSeconds: (i.expectedDowntimeMilliseconds ?? 0) / 1000, downtimeLimitSeconds: policyDowntimeLimit,
            postcopyRequests: i.postcopyRequests, downtimeSeconds: i.status == .completed ? i.downtimeMilliseconds.map { $0 / 1000 } : nil)
    }

    @discardableResult
    private func command(_ client: QMPClient, _ side: String, _ name: String, _ arguments: JSONValue? = nil,
                         outOfBand: Bool = false) throws -> JSONValue {
        commandLog.append((Date(), side, name, arguments))
        return outOfBand ? try client.executeOOB(name, arguments, timeout: commandTimeout)
                         : try client.execute(name, arguments, timeout: commandTimeout)
    }
}

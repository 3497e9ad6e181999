import Foundation
import Migration
import MigrationEngine
import QMP
import Synchronization
import Transport

/// The source side of a guest driven over QMP, as a QEMU behaves with nobody but the QMP
/// client deciding: `migrate` starts precopy, which passes until what is pending fits
/// downtime-limit at the measured bandwidth and then stops for the final copy; postcopy only
/// on `migrate-start-postcopy`; a broken link in postcopy leaves the migration
/// `postcopy-paused` until `migrate` with `resume: true`; a broken link in precopy fails it
/// and the guest runs on here. The engine is `EmbeddedMigration`, driven by a small loop that
/// turns its observations into QEMU's events (`MIGRATION`, `MIGRATION_PASS`, `STOP`, `RESUME`).
final class GuestQMPSource: Sendable {
    let guest: Guest
    let tracker: any DirtyTracker
    let settings: GuestQMPSettings
    let emit: @Sendable (String, JSONValue?) -> Void

    private struct Run {
        var engine: EmbeddedMigration?
        var state = MigrationState.none
        var error: String?
        var startedAt = Date()
        var setupMs: Int64 = 0
        var totalMs: Int64?
        var postcopyAsked = false
        var cancelAsked = false
        var last: MigrationStatus?
    }
    private let run = Mutex(Run())

    init(guest: Guest, tracker: any DirtyTracker, settings: GuestQMPSettings, emit: @escaping @Sendable (String, JSONValue?) -> Void) {
        self.guest = guest
        self.tracker = tracker
        self.settings = settings
        self.emit = emit
    }

    var state: MigrationState { run.withLock { $0.state } }

    /// A migration is under way: it owns the dirty tracker and the guest's run state.
    static func inProgress(_ s: MigrationState) -> Bool { !s.isFinished && s != .none }

    /// QEMU's run state of this guest (query-status).
    var runState: String {
        switch state {
        case .device, .preSwitchover, .postcopyActive, .postcopyPaused, .postcopyRecover: "finish-migrate"
        case .completed: "postmigrate"
        default: guest.isPaused ? "paused" : "running"
        }
    }

    func register(_ commands: QMPCommandRegistry) {
        commands.register("migrate", parameters: [QMPParameter("uri", .string), QMPParameter("resume", .boolean, optional: true),
                                                  QMPParameter("detach", .boolean, optional: true), QMPParameter("blk", .boolean, optional: true),
                                                  QMPParameter("inc", .boolean, optional: true)]) { [self] args throws(QMPError) in
            try migrate(uri: args["uri"]!.stringValue!, resume: args["resume"]?.boolValue ?? false)
            return [:]
        }
        commands.register("migrate-start-postcopy") { [self] _ throws(QMPError) in
            try startPostcopy()
            return [:]
        }
        commands.register("migrate-pause", allowsOutOfBand: true) { [self] _ throws(QMPError) in
            let (s, engine) = run.withLock { ($0.state, $0.engine) }
            guard s == .postcopyActive || s == .postcopyRecover, let engine else {
                throw QMPError(.genericError, "migrate-pause is currently only supported during postcopy-active or postcopy-recover state")
            }
            do { try engine.pause() } catch { throw QMPError(.genericError, "\(error)") }
            return [:]
        }
        commands.register("migrate_cancel") { [self] _ throws(QMPError) in
            let (s, engine) = run.withLock { r -> (MigrationState, EmbeddedMigration?) in
                if r.state == .setup, r.engine == nil { r.cancelAsked = true }  // still connecting: cancelled once connected
                return (r.state, r.engine)
            }
            guard Self.inProgress(s), let engine else { return [:] }  // QEMU: nothing to cancel is not an error
            do { try engine.cancel(reason: "migrate_cancel") } catch { throw QMPError(.genericError, "\(error)") }
            return [:]
        }
        commands.register("query-migrate") { [self] _ in queryMigrate() }
    }

    /// `migrate-set-parameters` during a migration applies at once, as in QEMU:
    /// max-postcopy-bandwidth while in postcopy, max-bandwidth before.
    func apply(_ v: GuestQMPSettings.Values, changed: JSONValue) {
        let (s, engine) = run.withLock { ($0.state, $0.engine) }
        guard Self.inProgress(s), let engine else { return }
        if changed["downtime-limit"] != nil { try? engine.setDowntimeLimit(seconds: Double(v.downtimeLimitMs) / 1000) }
        let postcopy = s.isPostcopy
        if postcopy, changed["max-postcopy-bandwidth"] != nil {
            try? engine.setBandwidth(bytesPerSecond: v.maxPostcopyBandwidth > 0 ? Double(v.maxPostcopyBandwidth) : nil)
        } else if !postcopy, changed["max-bandwidth"] != nil {
            try? engine.setBandwidth(bytesPerSecond: v.maxBandwidth > 0 ? Double(v.maxBandwidth) : nil)
        }
    }

    private func migrate(uri text: String, resume: Bool) throws(QMPError) {
        let target: MigrationURI
        do { target = try MigrationURI(parsing: text) } catch { throw QMPError(.genericError, "unknown migration protocol: \(text) (\(error))") }
        if resume {
            let (s, engine) = run.withLock { ($0.state, $0.engine) }
            guard s == .postcopyPaused, let engine else { throw QMPError(.genericError, "Cannot resume if there is no paused migration") }
            do { try engine.recover(uri: target.description, after: 0) } catch { throw QMPError(.genericError, "\(error)") }
            return
        }
        try run.withLock { (r: inout Run) throws(QMPError) in
            if Self.inProgress(r.state) { throw QMPError(.genericError, "There's a migration process in progress") }
            if r.state == .completed {
                throw QMPError(.genericError, "This guest has migrated already (its memory is at the destination); migpilot's guest migrates once")
            }
            r = Run(state: .setup)
        }
        emit("MIGRATION", ["status": "setup"])
        Thread.detachNewThread { [self] in drive(target) }
    }

    private func startPostcopy() throws(QMPError) {
        guard settings.postcopyRAM else {
            throw QMPError(.genericError, "Enable postcopy with migrate_set_capability before the start of migration")
        }
        let (s, engine) = try run.withLock { (r: inout Run) throws(QMPError) -> (MigrationState, EmbeddedMigration?) in
            guard r.state != .none else { throw QMPError(.genericError, "Postcopy must be started after migration has been started") }
            // Asking twice is no error in QEMU either: the switch happens once.
            r.postcopyAsked = true
            return (r.state, r.engine)
        }
        // In setup the switch is asked for as soon as precopy runs (the loop does it).
        if s == .active, let engine { try? engine.startPostcopy() }
    }

    /// The migration's thread: connect, start, then observe until it ends.
    private func drive(_ target: MigrationURI) {
        let engine: EmbeddedMigration
        do {
            let channel = try Transport.connect(target)
            engine = EmbeddedMigration(guest: guest, tracker: tracker, channel: channel, postcopy: settings.postcopyRAM, reconnect: { uri in
                try Transport.connect(try MigrationURI(parsing: uri))
            })
            let v = settings.current
            try engine.setDowntimeLimit(seconds: Double(v.downtimeLimitMs) / 1000)
            try engine.setBandwidth(bytesPerSecond: v.maxBandwidth > 0 ? Double(v.maxBandwidth) : nil)
            guard !run.withLock({ r -> Bool in
                r.engine = engine
                return r.cancelAsked
            }) else {
                channel.close()
                finish(.cancelled, error: nil)
                return
            }
            try engine.start()
        } catch {
            finish(.failed, error: "\(error)")
            return
        }
        var seen = MigrationState.setup, pass = 0, stopped = false, broke: String?
        while true {
            // The engine's observations do not fail; if one did, retrying would only spin.
            guard let o = try? engine.nextObservation(within: 0.1) else { break }
            let s = o.status
            for case .channelBroken(let reason) in o.events { broke = reason }
            let askPostcopy = run.withLock { r -> Bool in
                r.last = s
                if r.setupMs == 0, s.state != .setup { r.setupMs = Int64(Date().timeIntervalSince(r.startedAt) * 1000) }
                return r.postcopyAsked
            }
            // QEMU sends one at every sync of the dirty bitmap, the final one included.
            while pass < s.pass {
                pass += 1
                emit("MIGRATION_PASS", ["pass": .integer(Int64(pass))])
            }
            if s.state != seen {
                // The guest stopped here for the final copy or the switch (a short stop-and-copy
                // may be over before it is seen: `completed` means it happened).
                if [.device, .postcopyActive, .completed].contains(s.state), !stopped {
                    stopped = true
                    emit("STOP", nil)
                }
                if s.state == .postcopyActive, seen != .postcopyRecover, seen != .postcopyPaused {
                    // QEMU applies max-postcopy-bandwidth at the switch (0: no limit).
                    let b = settings.current.maxPostcopyBandwidth
                    try? engine.setBandwidth(bytesPerSecond: b > 0 ? Double(b) : nil)
                }
                if s.state.isFinished { break }
                run.withLock { $0.state = s.state }
                emit("MIGRATION", ["status": .string(s.state.rawValue)])
                seen = s.state
            }
            if s.state == .active {
                if askPostcopy { try? engine.startPostcopy() }
                // QEMU's convergence check: what is pending fits downtime-limit at the measured
                // bandwidth; the exact sync inside `complete` checks again before stopping.
                else if o.events.contains(.pendingBelowThreshold) {
                    let pages = s.bandwidthBytesPerSecond * s.downtimeLimitSeconds / Double(s.pageSize)
                    _ = try? engine.complete(maxPendingPages: UInt64(max(0, pages)))
                }
            }
        }
        let final = engine.status
        if final.state != .completed, stopped, !guest.isPaused { emit("RESUME", nil) }
        finish(final.state, error: final.state == .failed ? (broke ?? "the migration failed") : nil, status: final)
    }

    private func finish(_ state: MigrationState, error: String?, status: MigrationStatus? = nil) {
        run.withLock { r in
            r.state = state
            r.error = error
            r.totalMs = Int64(Date().timeIntervalSince(r.startedAt) * 1000)
            if let status { r.last = status }
        }
        emit("MIGRATION", ["status": .string(state.rawValue)])
    }

    /// QEMU's `query-migrate` on a source: the members QEMU has in each state.
    private func queryMigrate() -> JSONValue {
        let r = run.withLock { $0 }
        var m: [(key: String, value: JSONValue)] = []
        switch r.state {
        case .none:
            return [:]
        case .setup:
            m.append(("status", "setup"))
        case .failed:
            m.append(("status", "failed"))
            if let e = r.error { m.append(("error-desc", .string(e))) }
        case .cancelled:
            m.append(("status", "cancelled"))
        default:
            let s = r.last ?? (r.engine?.status ?? MigrationStatus(state: r.state))
            m.append(("status", .string(r.state.rawValue)))
            m.append(("setup-time", .integer(r.setupMs)))
            if r.state == .completed {
                m.append(("total-time", .integer(r.totalMs ?? 0)))
                m.append(("downtime", .integer(Int64((s.downtimeSeconds ?? 0) * 1000))))
            } else {
                m.append(("total-time", .integer(Int64(Date().timeIntervalSince(r.startedAt) * 1000))))
                m.append(("expected-downtime", .integer(Int64(s.expectedDowntimeSeconds * 1000))))
            }
            let pageSize = Int64(s.pageSize)
            // The engine counts bytes on the wire, not pages by kind: `normal` is what those
            // bytes would carry (frames' headers aside), zero pages are not told apart.
            let normal = Int64(s.transferredBytes) / pageSize
            m.append(("ram", [
                "transferred": .integer(Int64(s.transferredBytes)),
                "remaining": .integer(r.state == .completed ? 0 : Int64(s.remainingPages) * pageSize),
                "total": .integer(Int64(s.totalPages) * pageSize),
                "duplicate": 0,
                "skipped": 0,
                "normal": .integer(normal),
                "normal-bytes": .integer(normal * pageSize),
                "dirty-pages-rate": .integer(Int64(s.dirtyPagesRate)),
                "mbps": .number(s.bandwidthBytesPerSecond * 8 / 1e6),
                "dirty-sync-count": .integer(Int64(s.pass)),
                "postcopy-requests": .integer(Int64(s.postcopyRequests)),
                "page-size": .integer(pageSize),
            ]))
        }
        return .object(m)
    }
}

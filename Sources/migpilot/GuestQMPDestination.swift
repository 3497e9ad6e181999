import Foundation
import Migration
import MigrationEngine
import QMP
import Synchronization
import Transport

/// The destination side of a guest driven over QMP, as a QEMU started with `-incoming defer`:
/// `migrate-incoming` says where to listen; the migration is received by
/// `MigrationDestination`; when the link breaks in postcopy the destination waits
/// `postcopy-paused` for `migrate-recover URI` (a new channel to listen on, for the source's
/// `migrate` with `resume: true`). `query-migrate` has QEMU's destination members (the status)
/// and, once completed, migpilot's own check of every page's stamp as `x-migpilot-verified`
/// and `x-migpilot-verification`.
final class GuestQMPDestination: Sendable {
    let destination: MigrationDestination
    let emit: @Sendable (String, JSONValue?) -> Void

    private struct Incoming {
        var state = MigrationState.none
        var listening = false
        /// The channel in use (what `migrate-pause` breaks).
        var channel: (any ByteChannel)?
        /// `migrate-recover`'s listener, waiting for `reconnect` to take it.
        var recovery: Listener?
        var report: DestinationReport?
        var error: String?
        var guestStarted = false
    }
    private let incoming = Mutex(Incoming())
    private let wake = NSCondition()
    /// Signalled once the migration has ended (completed or failed).
    let finished = DispatchSemaphore(value: 0)

    init(destination: MigrationDestination, emit: @escaping @Sendable (String, JSONValue?) -> Void) {
        self.destination = destination
        self.emit = emit
        destination.onStateChange = { [self] state in changed(state) }
    }

    var state: MigrationState { incoming.withLock { $0.state } }
    var report: DestinationReport? { incoming.withLock { $0.report } }
    var error: String? { incoming.withLock { $0.error } }

    /// QEMU's run state here: `inmigrate` until the guest runs (the switch to postcopy, or
    /// the end of precopy).
    var runState: String { incoming.withLock { $0.guestStarted } ? "running" : "inmigrate" }

    func register(_ commands: QMPCommandRegistry) {
        commands.register("migrate-incoming", parameters: [QMPParameter("uri", .string)]) { [self] args throws(QMPError) in
            try listen(args["uri"]!.stringValue!)
            return [:]
        }
        commands.register("migrate-recover", parameters: [QMPParameter("uri", .string)], allowsOutOfBand: true) { [self] args throws(QMPError) in
            try recover(args["uri"]!.stringValue!)
            return [:]
        }
        commands.register("migrate-pause", allowsOutOfBand: true) { [self] _ throws(QMPError) in
            let (s, channel) = incoming.withLock { ($0.state, $0.channel) }
            guard s == .postcopyActive || s == .postcopyRecover, let channel else {
                throw QMPError(.genericError, "migrate-pause is currently only supported during postcopy-active or postcopy-recover state")
            }
            channel.abort()
            return [:]
        }
        commands.register("query-migrate") { [self] _ in
            let i = incoming.withLock { $0 }
            guard i.state != .none else { return [:] }
            var m: [(key: String, value: JSONValue)] = [("status", .string(i.state.rawValue))]
            if let report = i.report {
                m.append(("x-migpilot-verified", .bool(report.verified)))
                m.append(("x-migpilot-verification", .string(report.detail)))
            }
            if i.state == .failed, let e = i.error { m.append(("error-desc", .string(e))) }
            return .object(m)
        }
    }

    /// `migrate-incoming` (or `--incoming URI`): listens now, receives on a thread of its own.
    func listen(_ text: String) throws(QMPError) {
        let uri: MigrationURI
        do { uri = try MigrationURI(parsing: text) } catch { throw QMPError(.genericError, "unknown migration protocol: \(text) (\(error))") }
        try incoming.withLock { (i: inout Incoming) throws(QMPError) in
            guard !i.listening else { throw QMPError(.genericError, "The incoming migration has already been started") }
            i.listening = true
        }
        let listener: Listener
        do { listener = try Transport.listen(uri) } catch {
            incoming.withLock { $0.listening = false }
            throw QMPError(.genericError, "\(error)")
        }
        changed(.setup)
        Thread.detachNewThread { [self] in receive(listener) }
    }

    private func receive(_ listener: Listener) {
        do {
            let channel = try listener.accept()
            // QEMU stops listening once its source is there: a recovery names a new channel.
            listener.close()
            incoming.withLock { $0.channel = channel }
            let report = try destination.run(channel: channel) { [self] in try waitForRecovery() }
            incoming.withLock { i in
                i.report = report
                i.state = .completed
                i.guestStarted = i.guestStarted || report.verified
            }
            if !report.postcopy, report.verified { emit("RESUME", nil) }
            emit("MIGRATION", ["status": "completed"])
        } catch {
            listener.close()
            incoming.withLock { i in
                i.error = "\(error)"
                i.state = .failed
            }
            emit("MIGRATION", ["status": "failed"])
        }
        finished.signal()
    }

    /// `migrate-recover`: only while paused, and once per pause.
    private func recover(_ text: String) throws(QMPError) {
        let uri: MigrationURI
        do { uri = try MigrationURI(parsing: text) } catch { throw QMPError(.genericError, "unknown migration protocol: \(text) (\(error))") }
        try incoming.withLock { (i: inout Incoming) throws(QMPError) in
            guard i.state == .postcopyPaused else { throw QMPError(.genericError, "Migrate recover can only be run when postcopy is paused.") }
            guard i.recovery == nil else { throw QMPError(.genericError, "Migrate recovery is triggered already") }
        }
        let listener: Listener
        do { listener = try Transport.listen(uri) } catch { throw QMPError(.genericError, "\(error)") }
        incoming.withLock { $0.recovery = listener }
        wake.lock()
        wake.broadcast()
        wake.unlock()
    }

    /// The destination's `reconnect`: waits for `migrate-recover`, then for the source on it.
    private func waitForRecovery() throws -> any ByteChannel {
        wake.lock()
        while incoming.withLock({ $0.recovery == nil }) { wake.wait() }
        wake.unlock()
        let listener = incoming.withLock { $0.recovery! }
        defer {
            listener.close()
            incoming.withLock { $0.recovery = nil }
        }
        let channel = try listener.accept()
        incoming.withLock { $0.channel = channel }
        return channel
    }

    private func changed(_ state: MigrationState) {
        // `completed` and `failed` are told once `run` has returned (with the verdict).
        guard state != .completed, state != .failed else { return }
        let firstRun = incoming.withLock { i -> Bool in
            i.state = state
            defer { if state == .postcopyActive { i.guestStarted = true } }
            return state == .postcopyActive && !i.guestStarted
        }
        emit("MIGRATION", ["status": .string(state.rawValue)])
        if firstRun { emit("RESUME", nil) }
    }
}

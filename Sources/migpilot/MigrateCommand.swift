import ArgumentParser
import Dispatch
import Foundation
import Migration
import MigrationEngine
import Policies
import Transport

/// `migpilot migrate`: a policy drives a real migration of a local guest.
struct MigrateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Migrate a running guest, driven by a policy.",
        discussion: """
            Starts a guest (anonymous memory and workload threads that stamp every
            write) and migrates it with the embedded engine, driven by the policy:
            precopy passes, stop-and-copy, or a switch to postcopy (the destination
            runs the guest at once and faults in what has not arrived). With no
            --to, a destination guest with the same workloads is started here, over
            loopback tcp, and its workload runs on after the migration; with --to,
            a `migpilot incoming` or `migpilot guest --incoming` receives it
            (`exec:CMD` runs CMD with the stream on its stdin and the return path on
            its stdout). Every page is verified against the source's final stamps.

            Examples:
              migpilot migrate --memory 256MiB --workload uniform:rate=60000 \\
                  --bandwidth 1Gbit/s
              migpilot migrate --policy policies/precopy.yaml --memory 256MiB \\
                  --workload uniform:rate=20000 --bandwidth 1Gbit/s --json
              migpilot guest --incoming tcp:127.0.0.1:4444 --memory 256MiB \\
                  --workload uniform:rate=20000 &
              migpilot migrate --to tcp:127.0.0.1:4444 --memory 256MiB \\
                  --workload uniform:rate=20000
              migpilot migrate --to "exec:ssh host migpilot incoming stdio --memory 256MiB" \\
                  --memory 256MiB
              migpilot migrate --memory 64MiB --workload uniform:rate=40000 \\
                  --bandwidth 200Mbit/s --inject cut:after=postcopy+0.3s,every=0.7s,count=4

            With --source-qmp and --dest-qmp the backend is a QEMU pair (or any
            QMP pair) instead: QEMU moves the pages and the policy drives it with
            QEMU's own commands (docs/qmp.md). The destination must be waiting
            (-incoming defer: migpilot sends migrate-incoming on --incoming, by
            default the --to URI); --bandwidth caps max-bandwidth and
            max-postcopy-bandwidth; postcopy-ram is enabled when the policy allows
            postcopy. A recovery channel in the policy is where the destination
            listens (migrate-recover) and the source resumes to.
              migpilot migrate --source-qmp /run/src.qmp --dest-qmp /run/dst.qmp \\
                  --to tcp:10.1.0.2:4444 --policy policies/adaptive.yaml --json

            In postcopy a broken link (an error, EOF, a damaged frame, 0.8 s of
            silence) pauses both sides with every page kept, and the policy's
            recovery section reconnects. When its retries run out the migration
            stays postcopy-paused in this process, which prints its control socket:
            `migpilot recover CONTROL` resumes it by hand (within --recovery-window).

            Exit codes: 0 completed and verified; 1 did not complete; 65
            verification failed (with QMP: the destination did not report
            completed and running); 69 the guest or the destination could not be
            set up (with QMP: a monitor cannot be reached); 75 ended
            postcopy-paused (nobody recovered it in time).
            """
    )

    @Option(help: "Policy file.") var policy = "policies/adaptive.yaml"
    // Optional with the default applied in `run`, so that a flag the QMP backend cannot use is
    // refused when given, not when it merely has a default.
    @Option(help: "Guest memory, e.g. 256MiB (default 256MiB).", transform: Parse.byteCount) var memory: ByteCount?
    @Option(help: "Workload (repeatable): fill:SIZE, uniform|hotset|zipf|sweep:rate=N, trace:FILE[,speed=X] (default uniform:rate=20000).")
    var workload: [String] = []
    @Option(help: "Bandwidth cap, e.g. 1Gbit/s (none by default).", transform: Parse.bandwidth) var bandwidth: Bandwidth?
    @Option(help: "Override the policy's downtime limit.", transform: Parse.timeSpan) var downtimeLimit: TimeSpan?
    @Option(help: "Destination URI (default: a local destination over loopback tcp; with --source-qmp, where the source QEMU sends the stream).") var to: String?
    @OptionGroup(title: "Driving a QEMU pair over QMP") var qmp: QMPMigrateOptions
    @Option(help: "Give up after this long.", transform: Parse.timeSpan) var timeout = TimeSpan(nanoseconds: 600_000_000_000)
    @Option(help: "When the policy's recovery retries run out, wait this long for `migpilot recover` (then end paused, exit 75).",
            transform: Parse.timeSpan) var recoveryWindow = TimeSpan(nanoseconds: 3_600_000_000_000)
    @Option(help: "The control socket for `migpilot recover` (default: /tmp/migpilot-migrate-PID.sock).") var control: String?
    @Option(help: "Inject link cuts (repeatable): cut:after=postcopy+0.3s,every=0.7s,count=4 or cut:during=recover,count=1.")
    var inject: [String] = []
    @Flag(help: "Under --bandwidth, stop the guest for the final copy with its pending pages still to send, as QEMU does (by default they go uncapped just before the stop, the guest still running, and the downtime carries only what it writes meanwhile).")
    var noFlushAhead = false
    @OptionGroup(title: "The local destination (without --to)") var destinationMemory: DestinationMemoryOptions
    @Flag(help: "Print JSON lines: decisions, then a final summary (status, verified, total_time_s, downtime_s, downtime_bytes, stop_pages, stop_runs, stop_fresh_pages, flush_s, flush_pages, flush_runs, listen_s, listen_pages, listen_runs, transferred_bytes, passes, postcopy_time_s, remote_faults, recoveries, paused_s, detail).") var json = false

    func validate() throws {
        if try qmp.validate(self) { return }
        if let to { do { _ = try MigrationURI(parsing: to) } catch { throw ValidationError("--to: \(error)") } }
        for w in workload { do { _ = try GuestWorkload(parsing: w) } catch { throw ValidationError("--workload: \(error)") } }
        for i in inject { do { _ = try InjectedCut(parsing: i) } catch { throw ValidationError("--inject: \(error)") } }
        if let given = destinationMemory.given, to != nil { throw ValidationError("\(given) sets up the local destination; with --to, give it to the destination (migpilot incoming \(given))") }
    }

    func run() throws {
        var chosen = try loadPolicy(policy)
        if let downtimeLimit { chosen.downtimeLimit = downtimeLimit }
        if qmp.isGiven { return try runOverQMP(chosen) }
        let memory = memory ?? ByteCount(bytes: 256 << 20)
        let workload = workload.isEmpty ? ["uniform:rate=20000"] : workload
        let source: GuestMemory, guest: Guest, tracker: any DirtyTracker, mechanism: String
        do {
            source = try GuestMemory(bytes: Int(memory.bytes))
            (tracker, mechanism) = try DirtyTracking.best(for: source)
            try tracker.start()
            guest = try Guest(memory: source, workloads: try workload.map { try GuestWorkload(parsing: $0) })
            try guest.start()
        } catch {
            throw fail("cannot start the guest: \(error)", ExitCodes.unavailable)
        }
        defer { guest.stop() }
        Terminal.standardError(mechanism + "\n")
        try waitUntilFilled(guest)

        // The destination: the one named by --to, or a guest started here over loopback tcp.
        let local: LocalDestination?
        let channel: any ByteChannel
        do {
            if let to {
                local = nil
                channel = try Transport.connect(try MigrationURI(parsing: to))
            } else {
                let started = try LocalDestination(try destinationMemory.destination(memory, workloads: guest.workloads))
                local = started
                channel = try Transport.connect(started.uri)
            }
        } catch {
            throw fail("cannot reach the destination: \(error)", ExitCodes.unavailable)
        }
        defer {
            channel.close()
            local?.stop()
        }

        // A recovery reconnects to the channel the policy names, or to where the stream went first.
        let original = to.map { try? MigrationURI(parsing: $0) } ?? local?.uri
        let engine = EmbeddedMigration(guest: guest, tracker: tracker, channel: channel, postcopy: chosen.postcopy.allowed, flushAhead: !noFlushAhead,
                                       reconnect: { uri in
            guard let target = uri.isEmpty ? original : try MigrationURI(parsing: uri) else { throw EngineError("no channel to recover over") }
            return try Transport.connect(target)
        }, cuts: try inject.map { try InjectedCut(parsing: $0) })
        if let bandwidth { try engine.setBandwidth(bytesPerSecond: bandwidth.bytesPerSecond) }
        let drive = PolicyDrive(json: json)
        let encoder = drive.encoder
        var outcome: DriverOutcome
        do { outcome = try drive.run(engine, policy: chosen, memory: memory, timeout: timeout) } catch {
            try? engine.cancel(reason: "\(error)")
            throw fail("the migration stopped: \(error)", ExitCode.failure)
        }
        if [.postcopyPaused, .postcopyRecover, .postcopyActive].contains(outcome.finalStatus.state) {
            // Postcopy cannot be cancelled: the destination runs the guest and needs the rest.
            guard let finished = try waitForManualRecovery(engine, because: outcome.stoppedBecause ?? "the policy stopped", encoder) else {
                throw fail("the migration ended paused: nobody recovered it within \(recoveryWindow); the destination's guest lacks pages that only this process had", ExitCodes.endedPaused)
            }
            outcome.finalStatus = finished
        }
        if outcome.finalStatus.state != .completed {
            try? engine.cancel(reason: outcome.stoppedBecause ?? "stopped")
        }
        engine.waitUntilFinished()
        // A source that failed on its own side sent no abort: the link's end tells the local
        // destination, which would otherwise wait for the next frame.
        if outcome.finalStatus.state != .completed { channel.abort() }
        let destinationReport = local?.outcome()
        let s = outcome.finalStatus
        let verified = engine.destinationVerified == true && (destinationReport.map { (try? $0.get())?.verified == true } ?? true)
        let summary = MigrateSummary(status: s.state.rawValue, verified: verified, totalTimeSeconds: s.elapsedSeconds,
                                     downtimeSeconds: s.downtimeSeconds, transferredBytes: s.transferredBytes, passes: s.pass,
                                     postcopyTimeSeconds: engine.postcopySeconds, remoteFaults: Int(engine.remoteFaults), recoveries: engine.recoveries, pausedSeconds: engine.pausedSeconds,
                                     detail: engine.destinationDetail ?? outcome.stoppedBecause ?? "", stop: engine.stopLoad,
                                     stopFreshPages: (try? destinationReport?.get())?.stopFreshPages, flush: engine.flushLoad, listen: engine.listenLoad)
        // The workload runs on at a local destination: count its writes for a moment.
        let runningOn = s.state == .completed ? local?.destinationWrites(during: 0.25) : nil
        try drive.finish(summary, table: summary.rows(s) + (runningOn.map { [["destination", "the workload runs on: \($0) page writes in 250 ms"]] } ?? []))
        guard s.state == .completed else { throw fail(outcome.stoppedBecause ?? "the migration did not complete", ExitCode.failure) }
        guard verified else { throw fail("verification failed: \(summary.detail)", ExitCodes.dataError) }
    }
}

extension MigrateCommand {
    /// A line on stderr for each decision and each change of state, as they come: what the
    /// policy did and why, above the progress line.
    static func narrate(_ record: DecisionRecord) {
        let s = record.status
        let what = record.action.name == "continue" ? s.state.rawValue : record.action.name
        let time = formatFixed(record.timeSeconds, decimals: 2)
        let why = record.events.compactMap { event -> String? in
            switch event {
            case .channelBroken(let reason): "the link broke: \(reason)"
            case .recoveryFailed(let reason): "the recovery failed: \(reason)"
            default: nil
            }
        }
        Terminal.endProgress()
        for line in why { Terminal.standardError("\(String(repeating: " ", count: max(0, 7 - time.count)))\(time) s  \(line)\n") }
        Terminal.standardError("\(String(repeating: " ", count: max(0, 7 - time.count)))\(time) s  pass \(s.pass)  \(what.padding(toLength: 18, withPad: " ", startingAt: 0)) \(record.reason)\n")
    }

    /// After the policy gave up in postcopy: say how to recover by hand, and wait for it.
    func waitForManualRecovery(_ engine: EmbeddedMigration, because reason: String, _ encoder: JSONEncoder) throws -> MigrationStatus? {
        let path = control ?? "/tmp/migpilot-migrate-\(getpid()).sock"
        let uri = path.hasPrefix("unix:") ? path : "unix:\(path)"
        Terminal.standardError("""
            migrate: \(reason). The migration is postcopy-paused and recoverable: every page is kept here and at
            the destination. Recover it by hand within \(recoveryWindow):  migpilot recover \(uri) [--to URI]\n
            """)
        if json {
            let line: [String: String] = ["status": "postcopy-paused", "awaiting": "migpilot recover", "control": uri, "reason": reason]
            Terminal.standardOutputLine(String(decoding: try encoder.encode(line), as: UTF8.self))
        }
        let status = try ManualRecovery(engine: engine, control: try MigrationURI(parsing: uri), window: recoveryWindow).run()
        Terminal.endProgress()
        return status
    }

    /// A guest is migrated once it holds its data, as a real one that has run for a while:
    /// the `fill:` workloads first write their pages, a `trace:` replay the pages its trace
    /// holds data in at the start (the other workloads run meanwhile).
    func waitUntilFilled(_ guest: Guest) throws {
        let fills = guest.workloads.filter {
            switch $0 {
            case .fill, .trace: true
            case .synthetic: false
            }
        }
        guard !fills.isEmpty else { return }
        while !guest.isFilled {
            if let failure = guest.failure { throw fail("the guest failed: \(failure)", ExitCodes.unavailable) }
            Terminal.progress("guest: filling (\(fills.map(\.description).joined(separator: ", "))), \(guest.pagesWritten) pages written")
            usleep(20_000)
        }
        Terminal.endProgress()
    }

    /// The live line: state, pass, remaining, dirty rate, bandwidth, ETA, and the downtime:
    /// predicted while the guest still runs here, measured once it has stopped (in postcopy the
    /// pages left are pulled by a running guest, and no stop is to come).
    static func progressLine(_ s: MigrationStatus, lastAction: String) -> String {
        let left = ByteCount(bytes: s.remainingPages * UInt64(s.pageSize))
        let eta = s.bandwidthBytesPerSecond > 0 ? "\(formatFixed(Double(s.remainingPages * UInt64(s.pageSize)) / s.bandwidthBytesPerSecond, decimals: 1)) s" : "-"
        let downtime = s.downtimeSeconds.map { "downtime \(formatFixed($0 * 1000, decimals: 1)) ms" }
            ?? "downtime ≈ \(formatFixed(s.expectedDowntimeSeconds * 1000, decimals: 0)) ms"
        return "\(s.state.rawValue)  pass \(s.pass)  \(left) left  dirty \(Int(s.dirtyPagesRate)) pages/s  "
            + "\(Bandwidth(bytesPerSecond: s.bandwidthBytesPerSecond))  ETA \(eta)  \(downtime)  (\(lastAction))"
    }
}

/// The last JSON line of `migrate --json`.
struct MigrateSummary: Encodable {
    var status: String
    var verified: Bool
    var totalTimeSeconds: Double
    var downtimeSeconds: Double?
    var transferredBytes: UInt64
    var passes: Int
    var postcopyTimeSeconds: Double?
    var remoteFaults: Int
    var recoveries: Int
    var pausedSeconds: Double
    var detail: String
    /// What the stop carried (the embedded engine counts it; QEMU 7.2 reports none of it).
    var stop: StopLoad? = nil
    /// Of the stop's pages, those that landed where the local destination held no data yet
    /// (nil with `--to`: the destination is another process).
    var stopFreshPages: UInt64? = nil
    /// What a capped stop-and-copy sent before the guest stopped (the embedded engine counts
    /// it; nil without a cap, with --no-flush-ahead, or after a switch to postcopy).
    var flush: AheadLoad? = nil
    /// What a switch to postcopy dropped before the guest stopped (the embedded engine counts
    /// it; nil without a switch).
    var listen: AheadLoad? = nil

    enum CodingKeys: String, CodingKey {
        case status, verified, passes, recoveries, detail
        case totalTimeSeconds = "total_time_s"
        case downtimeSeconds = "downtime_s"
        case transferredBytes = "transferred_bytes"
        case postcopyTimeSeconds = "postcopy_time_s"
        case remoteFaults = "remote_faults"
        case pausedSeconds = "paused_s"
        case downtimeBytes = "downtime_bytes"
        case stopPages = "stop_pages"
        case stopRuns = "stop_runs"
        case stopFreshPages = "stop_fresh_pages"
        case flushSeconds = "flush_s"
        case flushPages = "flush_pages"
        case flushRuns = "flush_runs"
        case listenSeconds = "listen_s"
        case listenPages = "listen_pages"
        case listenRuns = "listen_runs"
    }

    /// The human table's rows for a migration that ended in `s`.
    func rows(_ s: MigrationStatus) -> [[String]] {
        [
            ["status", s.state.rawValue], ["verified", verified ? "yes: \(detail)" : "NO: \(detail)"],
            ["total time", "\(formatFixed(s.elapsedSeconds, decimals: 2)) s"],
            ["downtime", s.downtimeSeconds.map { "\(formatFixed($0 * 1000, decimals: 1)) ms" } ?? "-"],
            ["flush", flush.map { "\($0.pages) pages in \($0.runs) runs sent before the stop, in \(formatFixed($0.seconds * 1000, decimals: 1)) ms" } ?? "-"],
            ["listen", listen.map { "\($0.pages) stale pages in \($0.runs) runs dropped before the stop, in \(formatFixed($0.seconds * 1000, decimals: 1)) ms" } ?? "-"],
            ["at stop", stop.map { "\($0.pages) pages in \($0.runs) runs" + (stopFreshPages.map { " (\($0) where the destination held no data yet)" } ?? "")
                + ", \(ByteCount(bytes: $0.bytes)) sent while stopped" } ?? "-"],
            ["sent", ByteCount(bytes: s.transferredBytes).description], ["passes", "\(s.pass)"],
            ["postcopy", postcopyTimeSeconds.map { "\(formatFixed($0, decimals: 2)) s, \(remoteFaults) pages faulted in on demand" } ?? "-"],
            ["recoveries", recoveries == 0 ? "-" : "\(recoveries), \(formatFixed(pausedSeconds, decimals: 2)) s paused in all"],
        ]
    }

    // Every key is written, null included: a reader can rely on the set of fields.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(status, forKey: .status)
        try c.encode(verified, forKey: .verified)
        try c.encode(totalTimeSeconds, forKey: .totalTimeSeconds)
        try c.encode(downtimeSeconds, forKey: .downtimeSeconds)
        try c.encode(transferredBytes, forKey: .transferredBytes)
        try c.encode(passes, forKey: .passes)
        try c.encode(postcopyTimeSeconds, forKey: .postcopyTimeSeconds)
        try c.encode(remoteFaults, forKey: .remoteFaults)
        try c.encode(recoveries, forKey: .recoveries)
        try c.encode(pausedSeconds, forKey: .pausedSeconds)
        try c.encode(detail, forKey: .detail)
        try c.encode(stop?.bytes, forKey: .downtimeBytes)
        try c.encode(stop?.pages, forKey: .stopPages)
        try c.encode(stop?.runs, forKey: .stopRuns)
        try c.encode(stopFreshPages, forKey: .stopFreshPages)
        try c.encode(flush?.seconds, forKey: .flushSeconds)
        try c.encode(flush?.pages, forKey: .flushPages)
        try c.encode(flush?.runs, forKey: .flushRuns)
        try c.encode(listen?.seconds, forKey: .listenSeconds)
        try c.encode(listen?.pages, forKey: .listenPages)
        try c.encode(listen?.runs, forKey: .listenRuns)
    }
}

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
            write) and migrates it with the embedded engine, driven by the policy.
            With no --to, the destination is started here, over loopback tcp; with
            --to, a `migpilot incoming` listening there receives it. Every page is
            verified at the end. The embedded engine does precopy and
            stop-and-copy; postcopy is not built yet, so a policy that switches to
            it stops with an error saying so.

            Examples:
              migpilot migrate --policy policies/precopy.yaml --memory 256MiB \\
                  --workload uniform:rate=20000 --bandwidth 1Gbit/s
              migpilot incoming tcp:127.0.0.1:4444 --memory 256MiB &
              migpilot migrate --to tcp:127.0.0.1:4444 --memory 256MiB --json
            """
    )

    @Option(help: "Policy file.") var policy = "policies/precopy.yaml"
    @Option(help: "Guest memory, e.g. 256MiB.", transform: Parse.byteCount) var memory = ByteCount(bytes: 256 << 20)
    @Option(help: "Workload (repeatable): fill:SIZE, uniform|hotset|zipf|sweep:rate=N, trace:FILE.") var workload: [String] = ["uniform:rate=20000"]
    @Option(help: "Bandwidth cap, e.g. 1Gbit/s (none by default).", transform: Parse.bandwidth) var bandwidth: Bandwidth?
    @Option(help: "Override the policy's downtime limit.", transform: Parse.timeSpan) var downtimeLimit: TimeSpan?
    @Option(help: "Destination URI (default: a local destination over loopback tcp).") var to: String?
    @Option(help: "Give up after this long.", transform: Parse.timeSpan) var timeout = TimeSpan(nanoseconds: 600_000_000_000)
    @Flag(help: "Print JSON lines: decisions, then a final summary.") var json = false

    func validate() throws {
        if let to { do { _ = try MigrationURI(parsing: to) } catch { throw ValidationError("--to: \(error)") } }
        for w in workload { do { _ = try GuestWorkload(parsing: w) } catch { throw ValidationError("--workload: \(error)") } }
    }

    func run() throws {
        var chosen = try loadPolicy(policy)
        if let downtimeLimit { chosen.downtimeLimit = downtimeLimit }
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

        // The destination: the one named by --to, or one started here over loopback tcp.
        var local: (listener: Listener, outcome: () -> Result<DestinationReport, any Error>)?
        let uri: MigrationURI
        do {
            if let to {
                uri = try MigrationURI(parsing: to)
            } else {
                let listener = try Transport.listen(.tcp(host: "127.0.0.1", port: 0))
                let destination = try GuestMemory(bytes: Int(memory.bytes))
                nonisolated(unsafe) var result: Result<DestinationReport, any Error>?
                let done = DispatchSemaphore(value: 0)
                DispatchQueue.global().async {
                    result = Result { try PrecopyDestination(memory: destination).run(channel: try listener.accept()) }
                    done.signal()
                }
                local = (listener, { done.wait(); return result! })
                uri = listener.uri
            }
        } catch {
            throw fail("cannot set up the destination: \(error)", ExitCodes.unavailable)
        }
        let channel: any ByteChannel
        do { channel = try Transport.connect(uri) } catch { throw fail("\(error)", ExitCodes.unavailable) }
        defer { channel.close() }

        let engine = EmbeddedMigration(guest: guest, tracker: tracker, channel: channel)
        if let bandwidth { try engine.setBandwidth(bytesPerSecond: bandwidth.bytesPerSecond) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let driver = MigrationDriver(control: engine, engine: PolicyEngine(policy: chosen, memory: memory),
                                     estimator: ModelEstimator(policy: chosen)) { record in
            if json, let line = try? encoder.encode(record) { print(String(decoding: line, as: UTF8.self)) }
            let s = record.status
            Terminal.progress("\(s.state.rawValue) pass \(s.pass), \(s.remainingPages) pages left, \(Bandwidth(bytesPerSecond: s.bandwidthBytesPerSecond)), last: \(record.action.name)")
        }
        let outcome: DriverOutcome
        do { outcome = try driver.run(observeEvery: 0.1, horizonSeconds: timeout.seconds) } catch {
            Terminal.endProgress()
            try? engine.cancel(reason: "\(error)")
            throw fail("the migration stopped: \(error)", ExitCode.failure)
        }
        Terminal.endProgress()
        if outcome.finalStatus.state != .completed {
            try? engine.cancel(reason: outcome.stoppedBecause ?? "stopped")
        }
        engine.waitUntilFinished()
        let destinationReport = local.map { $0.outcome() }
        local?.listener.close()
        let s = outcome.finalStatus
        let verified = engine.destinationVerified == true && (destinationReport.map { (try? $0.get())?.verified == true } ?? true)
        let summary = MigrateSummary(status: s.state.rawValue, verified: verified, totalTimeSeconds: s.elapsedSeconds,
                                     downtimeSeconds: s.downtimeSeconds, transferredBytes: s.transferredBytes, passes: s.pass,
                                     postcopyTimeSeconds: nil, remoteFaults: 0, recoveries: 0,
                                     detail: engine.destinationDetail ?? outcome.stoppedBecause ?? "")
        if json {
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(Terminal.table([
                ["status", s.state.rawValue], ["verified", verified ? "yes: \(summary.detail)" : "NO: \(summary.detail)"],
                ["total time", "\(formatFixed(s.elapsedSeconds, decimals: 2)) s"],
                ["downtime", s.downtimeSeconds.map { "\(formatFixed($0 * 1000, decimals: 1)) ms" } ?? "-"],
                ["sent", ByteCount(bytes: s.transferredBytes).description], ["passes", "\(s.pass)"],
            ]), terminator: "")
        }
        guard s.state == .completed else { throw fail(outcome.stoppedBecause ?? "the migration did not complete", ExitCode.failure) }
        guard verified else { throw fail("verification failed: \(summary.detail)", ExitCodes.dataError) }
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
    var detail: String

    enum CodingKeys: String, CodingKey {
        case status, verified, passes, recoveries, detail
        case totalTimeSeconds = "total_time_s"
        case downtimeSeconds = "downtime_s"
        case transferredBytes = "transferred_bytes"
        case postcopyTimeSeconds = "postcopy_time_s"
        case remoteFaults = "remote_faults"
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
        try c.encode(detail, forKey: .detail)
    }
}

/// `migpilot incoming URI`: the destination of a migration.
struct IncomingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incoming",
        abstract: "Receive a migration (the destination side).",
        discussion: """
            Listens on URI (tcp:HOST:PORT, unix:PATH) or reads the stream on its own
            standard input and answers on its standard output (stdio, for
            exec:ssh host migpilot incoming stdio). Exits 0 once the guest's memory
            arrived and every page's stamp checked out.

            Example:
              migpilot incoming tcp:0.0.0.0:4444 --memory 256MiB
            """
    )

    @Argument(help: "Where to listen: tcp:HOST:PORT, unix:PATH or stdio.") var uri: String
    @Option(help: "Guest memory; must match the source's.", transform: Parse.byteCount) var memory: ByteCount

    func validate() throws {
        do { _ = try MigrationURI(parsing: uri) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let report: DestinationReport
        do {
            let listener = try Transport.listen(try MigrationURI(parsing: uri))
            defer { listener.close() }
            let channel = try listener.accept()
            defer { channel.close() }
            report = try PrecopyDestination(memory: try GuestMemory(bytes: Int(memory.bytes))).run(channel: channel)
        } catch {
            throw fail("\(error)", ExitCodes.dataError)
        }
        Terminal.standardError("incoming: \(report.pagesReceived) pages received; \(report.detail)\n")
        guard report.verified else { throw ExitCodes.dataError }
    }
}

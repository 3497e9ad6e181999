import ArgumentParser
import Glibc
import Migration
import MigrationEngine

/// `migpilot guest`: a guest process — memory and workload threads stamping every write —
/// on its own, or as the destination of a migration that runs on afterwards.
struct GuestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "guest",
        abstract: "Run a guest: anonymous memory and workload threads writing into it.",
        discussion: """
            Every write leaves a stamp (page, sequence), so that a migration's
            destination can prove each page holds its latest content. With
            --incoming, the guest is a migration's destination: it receives the
            memory (serving postcopy faults if the source switches), verifies every
            page, then runs its workloads on from where the source stopped them.
            Give it the same --memory and --workload as the source.

            Workloads: fill:SIZE (write once, then idle), uniform:rate=N,
            hotset:rate=N[,hot=F][,share=F], zipf:rate=N[,s=X], sweep:rate=N (each
            takes seed=N), trace:FILE[,speed=X] (a recorded trace in real time).

            With --qmp, the guest answers QMP on that socket as a QEMU would, as
            the source or (with --incoming) the destination of a migration driven by
            QEMU's own commands: migrate-set-capabilities, migrate-set-parameters,
            migrate, migrate-incoming, migrate-start-postcopy, migrate-pause,
            migrate-recover, query-migrate, query-status, calc-dirty-rate … Nothing
            is decided for the client: a broken postcopy link waits postcopy-paused
            for migrate-recover and migrate resume=true (docs/qmp.md).

            Examples:
              migpilot guest --memory 1GiB --workload zipf:rate=50000 --run-for 10s
              migpilot guest --incoming tcp:0.0.0.0:4444 --memory 256MiB \\
                  --workload uniform:rate=20000
              migpilot guest --qmp unix:/run/src.qmp --memory 256MiB --workload uniform:rate=20000
              migpilot guest --qmp unix:/run/dst.qmp --incoming defer --memory 256MiB \\
                  --workload uniform:rate=20000
              (then, e.g. with qemu.qmp or socat: migrate-incoming {"uri": "tcp:0.0.0.0:4444"}
              on dst.qmp, migrate {"uri": "tcp:HOST:4444"} on src.qmp)
            """
    )

    @Option(help: "Guest memory, e.g. 256MiB.", transform: Parse.byteCount) var memory: ByteCount
    @Option(help: "Workload (repeatable); see above.") var workload: [String]
    @Option(help: "Receive a migration first: tcp:HOST:PORT, unix:PATH or stdio; with --qmp also defer (wait for migrate-incoming).") var incoming: String?
    @Option(help: "Answer QMP (QEMU's monitor protocol) on this socket: unix:PATH or tcp:HOST:PORT.") var qmp: String?
    @OptionGroup var destinationMemory: DestinationMemoryOptions
    @Option(help: "Run this long, then stop (default: until interrupted).", transform: Parse.timeSpan) var runFor: TimeSpan?

    func validate() throws {
        guard !workload.isEmpty else { throw ValidationError("expected at least one --workload, e.g. --workload uniform:rate=20000") }
        for w in workload { do { _ = try GuestWorkload(parsing: w) } catch { throw ValidationError("--workload: \(error)") } }
        if let qmp { do { _ = try MigrationURI(parsing: qmp) } catch { throw ValidationError("--qmp: \(error)") } }
        if incoming == "defer", qmp == nil { throw ValidationError("--incoming defer waits for QMP's migrate-incoming: give --qmp unix:PATH too") }
        if let incoming, incoming != "defer" { do { _ = try MigrationURI(parsing: incoming) } catch { throw ValidationError("--incoming: \(error)") } }
        if let given = destinationMemory.given, incoming == nil { throw ValidationError("\(given) applies to a guest started with --incoming") }
    }

    func run() throws {
        let workloads = try workload.map { try GuestWorkload(parsing: $0) }
        let guest: Guest
        if let qmp {
            guest = try runWithQMP(try MigrationURI(parsing: qmp), workloads: workloads)
        } else if let incoming {
            guard let running = try receiveMigration(uri: incoming, memory: memory, options: destinationMemory, workloads: workloads).guest else {
                throw fail("the destination's guest did not start", ExitCode.failure)
            }
            guest = running
        } else {
            do {
                guest = try Guest(memory: try GuestMemory(bytes: Int(memory.bytes)), workloads: workloads)
                try guest.start()
            } catch {
                throw fail("cannot start the guest: \(error)", ExitCodes.unavailable)
            }
        }
        defer { guest.stop() }
        // The guest runs until the time is up (or forever); a line a second says how fast.
        let clock = ContinuousClock(), start = clock.now, first = guest.pagesWritten
        func elapsed() -> Double { let d = clock.now - start; return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
        var last = (time: 0.0, writes: first)
        while runFor.map({ elapsed() < $0.seconds }) ?? true {
            let left = runFor.map { $0.seconds - elapsed() } ?? 1
            usleep(UInt32(max(0.001, min(1.0, left)) * 1e6))
            let now = (time: elapsed(), writes: guest.pagesWritten)
            Terminal.progress("guest: \(Int(Double(now.writes - last.writes) / max(now.time - last.time, 1e-9))) page writes/s, \(now.writes - first) so far")
            last = now
            if let failure = guest.failure { throw fail(failure, ExitCodes.dataError) }
        }
        Terminal.endProgress()
        let seconds = elapsed(), writes = guest.pagesWritten - first
        print(Terminal.table([
            ["ran", "\(formatFixed(seconds, decimals: 2)) s\(incoming == nil ? "" : " after the migration")"],
            ["page writes", "\(writes) (\(Int(Double(writes) / max(seconds, 1e-9)))/s)"],
        ]), terminator: "")
    }
}

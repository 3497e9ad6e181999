import ArgumentParser
import Foundation
import Migration
import Policies
import QMP

extension MigrateCommand {
    /// `migrate --source-qmp … --dest-qmp … --to …`: the same driver, decision log and summary
    /// as the embedded engine, with a QEMU pair as the backend.
    func runOverQMP(_ policy: Policy) throws {
        let source: QMPClient, destination: QMPClient
        do {
            source = try QMPClient.connect(try QMPMigrateOptions.monitor(qmp.source!))
            destination = try QMPClient.connect(try QMPMigrateOptions.monitor(qmp.destination!))
        } catch {
            throw fail("cannot reach QEMU: \(error)", ExitCodes.unavailable)
        }
        defer {
            source.close()
            destination.close()
        }
        let memory: ByteCount
        do {
            let summary = try source.execute("query-memory-size-summary")
            guard let base = summary["base-memory"]?.integerValue, base > 0 else { throw QMPMigrationError("query-memory-size-summary gave \(summary)") }
            memory = ByteCount(bytes: UInt64(base))
        } catch {
            throw fail("cannot read the source's memory size: \(error)", ExitCodes.unavailable)
        }
        let migration = QMPMigration(source: source, destination: destination, to: to!, incoming: qmp.incoming,
                                     postcopyAllowed: policy.postcopy.allowed, bandwidthCap: bandwidth?.bytesPerSecond)
        let drive = PolicyDrive(json: json)
        let outcome: DriverOutcome
        do { outcome = try drive.run(migration, policy: policy, memory: memory, timeout: timeout) } catch {
            try? migration.cancel(reason: "\(error)")
            throw fail("the migration stopped: \(error)", ExitCode.failure)
        }
        if let path = qmp.log { try writeCommandLog(migration, to: path) }
        let s = outcome.finalStatus
        if s.state.isPostcopy {
            // QEMU keeps every page on both sides while paused: an operator can still recover it.
            Terminal.standardError("""
                migrate: \(outcome.stoppedBecause ?? "the policy stopped"). QEMU stays \(s.state.rawValue) and keeps every page on \
                both sides; recover it by hand: on the destination {"exec-oob": "migrate-recover", "arguments": {"uri": URI}}, \
                then on the source {"execute": "migrate", "arguments": {"uri": URI, "resume": true}}\n
                """)
        } else if s.state != .completed {
            try? migration.cancel(reason: outcome.stoppedBecause ?? "stopped")
        }
        let why = migration.lastInfo?.errorDesc.map { ": \($0)" } ?? ""
        let landed = s.state == .completed ? migration.destinationOutcome() : (completed: false, running: false, detail: "QEMU's source reports \(s.state.rawValue)\(why)")
        let summary = MigrateSummary(status: s.state.rawValue, verified: landed.completed && landed.running, totalTimeSeconds: s.elapsedSeconds,
                                     downtimeSeconds: s.downtimeSeconds, transferredBytes: s.transferredBytes, passes: s.pass,
                                     postcopyTimeSeconds: migration.postcopySeconds, remoteFaults: Int(s.postcopyRequests),
                                     recoveries: migration.recoveries, pausedSeconds: migration.pausedSeconds,
                                     detail: s.state == .completed ? landed.detail : outcome.stoppedBecause ?? landed.detail)
        try drive.finish(summary, table: summary.rows(s))
        if s.state.isPostcopy { throw fail("the migration ended \(s.state.rawValue)", ExitCodes.endedPaused) }
        guard s.state == .completed else { throw fail(outcome.stoppedBecause ?? "the migration did not complete", ExitCode.failure) }
        guard summary.verified else { throw fail("the destination did not take over: \(landed.detail)", ExitCodes.dataError) }
    }

    /// One JSON line per command: `{"t_s": …, "side": …, "command": …, "arguments": …}`, the
    /// time in seconds from `migrate` (negative before it): what a replay by hand would send.
    func writeCommandLog(_ migration: QMPMigration, to path: String) throws {
        let origin = migration.migrateSentAt ?? Date()
        let lines = migration.commandLog.map { entry -> String in
            var members: [(key: String, value: JSONValue)] = [
                ("t_s", .number(entry.at.timeIntervalSince(origin))), ("side", .string(entry.side)), ("command", .string(entry.command)),
            ]
            if let arguments = entry.arguments { members.append(("arguments", arguments)) }
            return JSONValue.object(members).description + "\n"
        }
        do { try lines.joined().write(toFile: path, atomically: true, encoding: .utf8) } catch {
            throw fail("cannot write the QMP log \(path): \(error)", ExitCodes.ioError)
        }
    }
}

import Foundation
import Testing

/// `migrate --source-qmp --dest-qmp`: migpilot's policies driving a real QEMU pair (TCG) over
/// QMP — precopy, the switch to postcopy by a pass count and by the model, and recovery after
/// the link is cut — each ending with QEMU `completed` on both sides and the guest going on at
/// the destination (query-status running, its COM1 counting on). 128 MiB guests with 48 MiB
/// filled, so that each test takes seconds.
@Suite(.serialized) struct QEMUMigrationTests {
    let e2e = TraceCommandTests()
    let migrate = MigrateCommandTests()
    let recovery = RecoveryCommandTests()

    func drive(_ pair: QEMUPair, to: String, policy: String, _ extra: [String] = []) throws -> (decisions: [[String: Any]], summary: [String: Any], run: TraceCommandTests.Run) {
        let run = try e2e.migpilot(["migrate", "--source-qmp", pair.sourceQMP, "--dest-qmp", pair.destinationQMP,
                                    "--to", to, "--policy", policy, "--json"] + extra)
        let (decisions, summary) = try migrate.jsonLines(run)
        return (decisions, summary, run)
    }

    func action(_ d: [String: Any]) -> String? { (d["action"] as? [String: Any])?["action"] as? String }
    func state(_ d: [String: Any]) -> String? { (d["status"] as? [String: Any])?["status"] as? String }
    func pass(_ d: [String: Any]) -> Int? { (d["status"] as? [String: Any])?["pass"] as? Int }

    /// What every test ends with: completed on both sides, the destination's guest running.
    func expectLanded(_ pair: QEMUPair, _ summary: [String: Any], _ run: TraceCommandTests.Run) {
        #expect(run.status == 0, "\(run.stderr)")
        #expect(summary["status"] as? String == "completed", "\(summary)")
        #expect(summary["verified"] as? Bool == true, "\(summary)")
        #expect(summary["detail"] as? String == "the destination reports migration completed, guest running", "\(summary)")
        #expect((summary["total_time_s"] as? Double ?? 0) > 0, "QEMU's total-time: \(summary)")
        #expect(pair.destinationGuestRunsOn(), "the destination's COM1: \(pair.serial(pair.destinationSerial))")
    }

    @Test func aConvergingGuestCompletesInPrecopyUnderQEMUsOwnPolicy() throws {
        let pair = try QEMUPair(rate: 2000)
        defer { pair.stop() }
        let (decisions, summary, run) = try drive(pair, to: "unix:\(pair.socket("mig.sock"))", policy: migrate.policy("precopy"))
        expectLanded(pair, summary, run)
        #expect(summary["postcopy_time_s"] is NSNull, "\(summary)")
        #expect(!decisions.contains { action($0) == "start-postcopy" })
        #expect(decisions.first.map(action) == "set-downtime-limit")
        #expect((summary["downtime_s"] as? Double ?? 1) < 0.3, "QEMU keeps to the 300 ms limit: \(summary)")
        // The decision log reads as the embedded engine's does: QEMU's states, one line each.
        #expect(decisions.map(state).contains("completed"))
    }

    /// A writer of 20,000 pages/s (80 MB/s) on a 20 MB/s link: precopy cannot converge.
    static let outrunning = ["--bandwidth", "160Mbit/s"]

    /// Migrates a guest that outruns the link under `policy`; the decision that switched.
    func switchToPostcopy(under policy: String) throws -> [String: Any] {
        let pair = try QEMUPair(rate: 20000)
        defer { pair.stop() }
        let (decisions, summary, run) = try drive(pair, to: "unix:\(pair.socket("mig.sock"))", policy: migrate.policy(policy), Self.outrunning)
        expectLanded(pair, summary, run)
        #expect(decisions.contains { state($0) == "postcopy-active" })
        #expect((summary["postcopy_time_s"] as? Double ?? 0) > 0, "\(summary)")
        return try #require(decisions.first { action($0) == "start-postcopy" }, "\(run.stdout)")
    }

    @Test func libvirtSwitchesToPostcopyAfterTheFirstPass() throws {
        let switched = try switchToPostcopy(under: "libvirt-postcopy-after-precopy")
        #expect(pass(switched) == 2, "QEMU's dirty-sync-count is 2 once the first pass is complete: \(switched)")
    }

    @Test func adaptiveSwitchesWhenTheWriterOutrunsTheLink() throws {
        let switched = try switchToPostcopy(under: "adaptive")
        #expect(pass(switched) ?? 0 >= 2, "the model speaks from the end of the first pass on: \(switched)")
        #expect((switched["reason"] as? String ?? "").contains("precopy"), "\(switched)")
    }

    /// Nova's force-complete without postcopy: at the completion timeout the policy asks for
    /// a stop whatever is pending, which QMPMigration maps to QEMU's largest downtime-limit.
    @Test func aForcedCompletionStopsTheGuestWhateverIsPending() throws {
        let pair = try QEMUPair(rate: 20000)
        defer { pair.stop() }
        let policy = pair.socket("force.yaml")
        try """
            name: force
            description: precopy only; at 24 s per GiB (3 s for 128 MiB) force the stop
            downtime_limit: 300ms
            postcopy: {allowed: false}
            timeouts: {completion_per_gib: 24s, minimum_gib: 0, action: force-complete}
            """.write(toFile: policy, atomically: true, encoding: .utf8)
        let (decisions, summary, run) = try drive(pair, to: "unix:\(pair.socket("mig.sock"))", policy: policy, Self.outrunning)
        expectLanded(pair, summary, run)
        let forced = try #require(decisions.first { action($0) == "complete" }, "\(run.stdout)")
        #expect((forced["action"] as? [String: Any])?["max_pending_pages"] is NSNull, "\(forced)")
        let at = forced["time_s"] as? Double ?? 0
        #expect(at >= 3, "\(forced)")
        #expect(summary["postcopy_time_s"] is NSNull)
        // The next check stops the guest: no further pass. (QEMU lifts max-bandwidth for the
        // stop-and-copy, so the downtime itself is short on loopback.)
        #expect((summary["total_time_s"] as? Double ?? 99) < at + 1.5, "forced at \(at) s: \(summary)")
        // (Before it the policy may have asked for a stop within its budget and been refused.)
        let after = decisions.filter { ($0["time_s"] as? Double ?? 0) > at }
        #expect(!after.contains { ($0["events"] as? [[String: Any]] ?? []).contains { $0["event"] as? String == "completion-refused" } }, "\(after)")
    }

    /// The stream goes through a forwarding process; once postcopy runs it is killed, both
    /// QEMUs pause, and the policy recovers by itself over the channel its recovery section
    /// names (the destination listens there with migrate-recover, the source resumes to it).
    @Test func killingTheForwardingProcessInPostcopyRecoversOverTheNewChannel() throws {
        let pair = try QEMUPair(rate: 20000)
        defer { pair.stop() }
        let incoming = pair.socket("mig.sock"), channel = pair.socket("recover.sock")
        let policy = pair.socket("recover.yaml")
        let shipped = try String(contentsOfFile: migrate.policy("libvirt-postcopy-after-precopy"), encoding: .utf8)
        try shipped.replacingOccurrences(of: "  on_exhausted: stay-paused", with: "  channels: [unix:\(channel)]\n  on_exhausted: stay-paused")
            .write(toFile: policy, atomically: true, encoding: .utf8)
        // The proxy connects to its target only when the source connects to it, after
        // migpilot has made the destination listen (migrate-incoming).
        let (link, port) = try recovery.proxy(to: "unix:\(incoming)")
        defer { if link.process.isRunning { link.signal(SIGKILL) } }
        let source = try RecoveryCommandTests.Running(TraceCommandTests.binary, [
            "migrate", "--source-qmp", pair.sourceQMP, "--dest-qmp", pair.destinationQMP, "--to", "tcp:127.0.0.1:\(port)",
            "--incoming", "unix:\(incoming)", "--policy", policy, "--json"] + Self.outrunning)
        defer { if source.process.isRunning { source.process.terminate() } }
        try #require(source.waitForLine(60, recovery.isPostcopyActive) != nil, "no switch to postcopy: \(source.stderr)")
        usleep(300_000)
        link.signal(SIGKILL)
        #expect(source.finish(60) == 0, "\(source.stderr)")
        let summary = try recovery.summary(source)
        let run = TraceCommandTests.Run(status: 0, stdout: "", stderr: source.stderr.joined(separator: "\n"))
        expectLanded(pair, summary, run)
        let seen = recovery.events(source.stdout)
        #expect(seen.filter { $0 == "channel-broken" }.count == 1, "\(seen)")
        #expect(seen.contains("recovered"), "\(seen)")
        #expect(summary["recoveries"] as? Int == 1, "\(summary)")
        #expect((summary["paused_s"] as? Double ?? 0) > 0, "\(summary)")
        let recover = source.stdout.first { $0.contains("\"action\":\"recover\"") } ?? ""
        #expect(recover.contains("\"uri\":\"unix:\(channel)\""), "the policy's channel: \(recover)")
    }

    /// Starts a precopy that cannot converge, then kills one QEMU a second in.
    func killMidPrecopy(_ victim: (QEMUPair) -> Process) throws -> (QEMUPair, RecoveryCommandTests.Running, Int32?) {
        let pair = try QEMUPair(rate: 20000)
        let run = try RecoveryCommandTests.Running(TraceCommandTests.binary, [
            "migrate", "--source-qmp", pair.sourceQMP, "--dest-qmp", pair.destinationQMP, "--to", "unix:\(pair.socket("mig.sock"))",
            "--policy", migrate.policy("precopy"), "--json"] + Self.outrunning)
        try #require(run.waitForLine(30) { $0.contains("\"status\":\"active\"") } != nil, "\(run.stderr)")
        usleep(1_000_000)
        kill(victim(pair).processIdentifier, SIGKILL)
        let code = run.finish(30)
        return (pair, run, code)
    }

    @Test func aDestinationLostInPrecopyFailsTheMigrationAndTheGuestRunsOnAtTheSource() throws {
        let (pair, run, code) = try killMidPrecopy(\.destination)
        defer { pair.stop() }
        #expect(code == 1, "\(run.stderr)")
        let summary = try recovery.summary(run)
        #expect(summary["status"] as? String == "failed", "\(summary)")
        #expect(summary["verified"] as? Bool == false)
        #expect((summary["detail"] as? String ?? "").hasPrefix("QEMU's source reports failed"), "\(summary)")
        // Precopy never handed the guest over: it goes on where it was.
        let before = pair.dirtied(pair.sourceSerial).max() ?? 0
        #expect(pair.waitForSerial(pair.sourceSerial, 5) { _ in (pair.dirtied(pair.sourceSerial).max() ?? 0) > before })
    }

    @Test func aSourceMonitorThatDiesEndsMigrateWithAClearErrorNotAHang() throws {
        let (pair, run, code) = try killMidPrecopy(\.source)
        defer { pair.stop() }
        #expect(code == 1, "exits, and in time: \(run.stderr)")
        #expect(run.stderr.contains { $0.contains("the migration stopped:") && $0.contains("is closed") }, "\(run.stderr)")
    }

    @Test func wrongFlagCombinationsWithQMPSayWhatWasExpected() throws {
        let alone = try e2e.migpilot(["migrate", "--source-qmp", "/tmp/none.qmp", "--to", "tcp:127.0.0.1:4444"])
        #expect(alone.status == 64)
        #expect(alone.stderr.contains("--source-qmp and --dest-qmp go together"), "\(alone.stderr)")
        let noTo = try e2e.migpilot(["migrate", "--source-qmp", "/tmp/a.qmp", "--dest-qmp", "/tmp/b.qmp"])
        #expect(noTo.status == 64)
        #expect(noTo.stderr.contains("--to is required with --source-qmp"), "\(noTo.stderr)")
        let engine = try e2e.migpilot(["migrate", "--source-qmp", "/tmp/a.qmp", "--dest-qmp", "/tmp/b.qmp", "--to", "tcp:127.0.0.1:4444",
                                       "--workload", "uniform:rate=1000"])
        #expect(engine.status == 64)
        #expect(engine.stderr.contains("--workload is for migpilot's own engine and guest"), "\(engine.stderr)")
        #expect(engine.stderr.contains("allowed with QMP"), "\(engine.stderr)")
        let stdio = try e2e.migpilot(["migrate", "--source-qmp", "/tmp/a.qmp", "--dest-qmp", "/tmp/b.qmp", "--to", "stdio"])
        #expect(stdio.status == 64)
        #expect(stdio.stderr.contains("QEMU cannot migrate over stdio"), "\(stdio.stderr)")
        let nobody = try e2e.migpilot(["migrate", "--source-qmp", "/tmp/migpilot-no-such.qmp", "--dest-qmp", "/tmp/migpilot-no-such-either.qmp",
                                       "--to", "tcp:127.0.0.1:4444"])
        #expect(nobody.status == 69, "\(nobody.stderr)")
        #expect(nobody.stderr.contains("cannot connect to the QMP monitor at unix:/tmp/migpilot-no-such.qmp"), "\(nobody.stderr)")
    }
}

import Foundation
import Testing

/// `migpilot guest --qmp` as QEMU's own tools meet it: PyPI's qemu.qmp drives two guest
/// processes through QEMU's documented postcopy recovery (Tests/Fixtures/qmp-walkthrough.py),
/// and garbage on a monitor does not disturb a running guest (Tests/Fixtures/qmp-garbage.py).
@Suite(.serialized) struct GuestQMPTests {
    typealias Running = RecoveryCommandTests.Running
    let migrate = MigrateCommandTests()

    static var fixtures: URL { TraceCommandTests.packageRoot.appendingPathComponent("Tests/Fixtures") }
    /// Where `make test` installs qemu.qmp (scripts/ensure-python-packages.sh).
    static var pythonPath: String { TraceCommandTests.packageRoot.appendingPathComponent(".build/python").path }

    /// A guest with a QMP monitor at a fresh socket, once it listens.
    func guest(_ extra: [String], runFor: String = "60s", rate: Int = 20000) throws -> (Running, String) {
        let qmp = migrate.freshSocket()
        let g = try Running(TraceCommandTests.binary, ["guest", "--qmp", "unix:\(qmp)", "--memory", "32MiB", "--workload", "fill:12MiB",
                                                      "--workload", "uniform:rate=\(rate)", "--run-for", runFor] + extra)
        try #require(g.waitForLine(20) { $0.hasPrefix("qmp: listening on") } != nil, "the guest's monitor did not start: \(g.stderr)")
        return (g, qmp)
    }

    /// Ends a guest at once. SIGKILL, not SIGTERM: the test runner may start processes with
    /// SIGTERM blocked, and a source guest would then run on until its --run-for.
    func stop(_ process: Running) {
        if process.process.isRunning { process.signal(SIGKILL) }
    }

    func python(_ script: String, _ arguments: [String]) throws -> Running {
        try Running("/usr/bin/env", ["PYTHONPATH=\(Self.pythonPath)", "python3", Self.fixtures.appendingPathComponent(script).path] + arguments)
    }

    @Test func qemuQMPDrivesPostcopyRecoveryByHandAsQEMUDocumentsIt() throws {
        try #require(FileManager.default.fileExists(atPath: Self.pythonPath + "/qemu/qmp/__init__.py"),
                     "qemu.qmp is missing: run scripts/ensure-python-packages.sh 'qemu.qmp==0.0.6' (make test does)")
        let (source, sourceQMP) = try guest([])
        defer { stop(source) }
        let (destination, destinationQMP) = try guest(["--incoming", "defer"], runFor: "2s")
        defer { stop(destination) }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-qmp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let walk = try python("qmp-walkthrough.py", [sourceQMP, destinationQMP, work.path])
        #expect(walk.finish(90) == 0, "\(walk.stdout)\n\(walk.stderr)\nsource: \(source.stderr)\ndestination: \(destination.stderr)")
        let last = try #require(walk.stdout.last { $0.hasPrefix("{") }, "\(walk.stdout)")
        let summary = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        let paused = ["active", "postcopy-active", "postcopy-paused", "postcopy-recover", "postcopy-active", "completed"]
        for side in ["source_statuses", "destination_statuses"] {
            let statuses = summary[side] as? [String] ?? []
            // Each status in order (MIGRATION events), the pause and the recovery included.
            #expect(statuses.filter(paused.contains) == paused, "\(side): \(statuses)")
        }
        #expect((summary["source_events"] as? [String] ?? []).contains("STOP"))
        #expect((summary["destination_events"] as? [String] ?? []).contains("RESUME"))
        #expect(summary["verified"] as? Bool == true, "\(summary)")
        #expect(summary["destination_status"] as? String == "running")
        let ram = try #require(summary["ram"] as? [String: Any])
        #expect(ram["total"] as? Int == 32 << 20)
        #expect((ram["postcopy-requests"] as? Int ?? -1) >= 0)
        // The destination verified every page, then its guest ran on for --run-for.
        #expect(destination.finish(30) == 0, "\(destination.stderr)")
        #expect(destination.stderr.contains { $0.contains("1 recoveries; verified: yes") }, "\(destination.stderr)")
        #expect(destination.stdout.contains { $0.hasPrefix("page writes") && !$0.hasPrefix("page writes  0 ") }, "\(destination.stdout)")
    }

    @Test func garbageOnTheMonitorDoesNotDisturbARunningGuest() throws {
        let (g, qmp) = try guest([], runFor: "3s")
        defer { stop(g) }
        let feed = try python("qmp-garbage.py", [qmp, "20261201"])
        #expect(feed.finish(30) == 0, "\(feed.stdout.suffix(5))\n\(feed.stderr)")
        let verdict = try #require(feed.stdout.last { $0.contains("\"alive\"") }, "\(feed.stderr)")
        let errors = try #require((try JSONSerialization.jsonObject(with: Data(verdict.utf8)) as? [String: Any])?["errors"] as? Int)
        #expect(errors >= 12, "each of the fixed bad inputs gets its error: \(errors)")
        #expect(g.finish(30) == 0, "\(g.stderr)")
        // The workload kept writing throughout (20,000 pages/s asked; a starved machine gets less).
        let writes = try #require(g.stdout.first { $0.hasPrefix("page writes") }, "\(g.stdout)")
        let total = Int(writes.split(separator: " ").dropFirst(2).first ?? "") ?? 0
        #expect(total > 10_000, "\(writes)")
    }

    @Test func precopyOverQMPStopsOnQEMUsConvergenceCheckAndNeverSwitches() throws {
        let (source, sourceQMP) = try guest([], rate: 2000)
        defer { stop(source) }
        let (destination, destinationQMP) = try guest(["--incoming", "defer"], runFor: "1s", rate: 2000)
        defer { stop(destination) }
        let stream = "unix:\(migrate.freshSocket())"
        let run = try python("qmp-precopy.py", [sourceQMP, destinationQMP, stream, stream, "converge"])
        #expect(run.finish(60) == 0, "\(run.stdout)\n\(run.stderr)\n\(source.stderr)\n\(destination.stderr)")
        let summary = try #require(try run.stdout.last { $0.hasPrefix("{") }.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(summary["status"] as? String == "completed")
        // One MIGRATION_PASS per sync of the dirty bitmap, the final one included.
        let syncs = try #require(((summary["info"] as? [String: Any])?["ram"] as? [String: Any])?["dirty-sync-count"] as? Int)
        #expect(syncs >= 2, "pass 1, then the sync before the stop")
        #expect(summary["passes"] as? [Int] == Array(1...max(1, syncs)), "\(summary)")
        #expect(destination.finish(30) == 0, "\(destination.stderr)")
        #expect(destination.stderr.contains { $0.contains("in precopy; verified: yes") }, "\(destination.stderr)")
    }

    @Test func aBrokenLinkInPrecopyFailsTheMigrationAndTheSourceRunsOn() throws {
        let (source, sourceQMP) = try guest([])
        defer { stop(source) }
        let (destination, destinationQMP) = try guest(["--incoming", "defer"], runFor: "1s")
        defer { stop(destination) }
        let socket = migrate.freshSocket()
        let (link, port) = try RecoveryCommandTests().proxy(to: "unix:\(socket)")
        defer { if link.process.isRunning { link.signal(SIGKILL) } }
        let run = try python("qmp-precopy.py", [sourceQMP, destinationQMP, "unix:\(socket)", "tcp:127.0.0.1:\(port)", "break"])
        try #require(run.waitForLine(30) { $0 == "precopy running" } != nil, "\(run.stderr)")
        link.signal(SIGKILL)
        #expect(run.finish(60) == 0, "\(run.stdout)\n\(run.stderr)\n\(source.stderr)")
        let summary = try #require(try run.stdout.last { $0.hasPrefix("{") }.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        let info = try #require(summary["info"] as? [String: Any])
        #expect(info["status"] as? String == "failed")
        #expect((info["error-desc"] as? String)?.isEmpty == false, "\(info)")
        // As QEMU's destination does when its incoming migration fails: it exits, non-zero.
        #expect(destination.finish(30) == 65, "\(destination.stderr)")
        #expect(source.process.isRunning)
    }
}

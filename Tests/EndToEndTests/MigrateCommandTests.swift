import Foundation
import Testing

/// migrate, incoming and guest as a user runs them: real guests, real sockets, real processes.
/// Caps keep the debug build's encoder (≈ 150 MB/s) from setting the pace.
@Suite(.serialized) struct MigrateCommandTests {
    let e2e = TraceCommandTests()
    var root: URL { TraceCommandTests.packageRoot }
    func policy(_ name: String) -> String { root.appendingPathComponent("policies/\(name).yaml").path }

    /// The JSON lines of `migrate --json`: the decisions, then the summary.
    func jsonLines(_ run: TraceCommandTests.Run) throws -> (decisions: [[String: Any]], summary: [String: Any]) {
        let objects = try run.stdout.split(separator: "\n").map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        let summary = try #require(objects.last)
        return (Array(objects.dropLast()), summary)
    }

    /// Starts `migpilot ARGS` in the background; its stderr is collected.
    func background(_ arguments: [String]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TraceCommandTests.binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        return (p, out, err)
    }

    func freshSocket() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-e2e-\(UUID().uuidString).sock").path
    }

    func waitFor(_ path: String) {
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: path) { usleep(20_000) }
    }

    @Test func theEmbeddedDefaultMigratesAConvergingGuestInPrecopy() throws {
        let run = try e2e.migpilot(["migrate", "--policy", policy("precopy"),
                                    "--memory", "32MiB", "--workload", "fill:16MiB", "--workload", "uniform:rate=2000", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let (decisions, last) = try jsonLines(run)
        #expect(last["status"] as? String == "completed")
        #expect(last["verified"] as? Bool == true)
        #expect(last["postcopy_time_s"] is NSNull)
        for key in ["total_time_s", "downtime_s", "transferred_bytes", "passes", "postcopy_time_s", "remote_faults", "recoveries"] {
            #expect(last.keys.contains(key), "missing \(key)")
        }
        // The writer keeps pages pending to the end: the stop carries some, each run at least a
        // page, and at least their frames' headers go while the guest is stopped.
        let pages = try #require(last["stop_pages"] as? Int), runs = try #require(last["stop_runs"] as? Int)
        #expect(runs >= 1 && runs <= pages, "\(last)")
        #expect((last["downtime_bytes"] as? Int ?? 0) >= runs * 16, "\(last)")
        // The local destination counts the stop's pages that landed where it held no data.
        #expect((last["stop_fresh_pages"] as? Int).map { $0 <= pages } == true, "\(last)")
        // Uncapped, the passes already go at the link's rate: nothing is flushed ahead.
        for key in ["flush_s", "flush_pages", "flush_runs"] { #expect(last[key] is NSNull, "\(key): \(last)") }
        // The decisions come first, one JSON object a line, with QEMU's state names.
        #expect((decisions.first?["status"] as? [String: Any])?["status"] as? String == "active")
        #expect(run.stderr.contains("dirty tracking: "))
    }

    /// A capped precopy whose writer's half comes first: pass 1 sends it as zero pages at once,
    /// and what the writer puts there while pass 1 sends the filled half is pending at the end,
    /// on pages the destination never wrote.
    func cappedWriterFirst(_ extra: [String] = []) throws -> TraceCommandTests.Run {
        try e2e.migpilot(["migrate", "--policy", policy("precopy"), "--memory", "32MiB", "--bandwidth", "200Mbit/s",
                          "--workload", "uniform:rate=2000", "--workload", "fill:16MiB", "--json"] + extra)
    }

    @Test func aStopCountsThePagesThatLandWhereTheDestinationHeldNoData() throws {
        // Those pages reach the destination only in the stop — kept for it by --no-flush-ahead.
        let run = try cappedWriterFirst(["--no-flush-ahead"])
        #expect(run.status == 0, "\(run.stderr)")
        let last = try jsonLines(run).summary
        let fresh = try #require(last["stop_fresh_pages"] as? Int), pages = try #require(last["stop_pages"] as? Int)
        #expect(fresh > 0 && fresh <= pages, "\(last)")
        #expect(last["flush_pages"] is NSNull, "\(last)")
    }

    @Test func aCappedStopSendsItsPendingPagesBeforeTheGuestStops() throws {
        // Flushing ahead (the default): the pending pages go uncapped with the guest still
        // running, and the stop carries only what it wrote meanwhile.
        let run = try cappedWriterFirst()
        #expect(run.status == 0, "\(run.stderr)")
        let last = try jsonLines(run).summary
        #expect(last["verified"] as? Bool == true, "\(last)")
        let flushed = try #require(last["flush_pages"] as? Int), flushedRuns = try #require(last["flush_runs"] as? Int)
        let atStop = try #require(last["stop_pages"] as? Int)
        #expect(flushed > 0 && flushedRuns >= 1 && flushedRuns <= flushed, "\(last)")
        #expect(atStop < flushed, "\(last)")
        #expect((last["flush_s"] as? Double ?? 0) > 0, "\(last)")
    }

    @Test func aTraceWorkloadMigratesWithItsInitialDataAndACleanDirtyLog() throws {
        // A synthetic trace's 4,096 pages all hold data at the start: the replay writes them
        // before the migration starts, so pass 1 sends 16 MiB of data, not zero pages; and the
        // first observations do not count those writes as dirtied since the sync.
        let trace = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-e2e-\(UUID().uuidString).trace").path
        defer { try? FileManager.default.removeItem(atPath: trace) }
        let synth = try e2e.migpilot(["trace", "synth", "--kind", "uniform", "--memory", "16MiB", "--rate", "500", "--duration", "5s",
                                      "--interval", "100ms", "-o", trace])
        #expect(synth.status == 0, "\(synth.stderr)")
        let run = try e2e.migpilot(["migrate", "--policy", policy("precopy"), "--memory", "16MiB", "--workload", "trace:\(trace)",
                                    "--bandwidth", "200Mbit/s", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let (decisions, last) = try jsonLines(run)
        #expect(last["verified"] as? Bool == true)
        #expect((last["transferred_bytes"] as? Int ?? 0) >= 4_096 * 4_096)
        let first = try #require(decisions.first?["status"] as? [String: Any])
        #expect((first["dirty_pages_since_sync"] as? Int ?? .max) < 1_000, "\(first)")
    }

    @Test func aWriterFasterThanTheLinkCompletesThroughPostcopyUnderAdaptive() throws {
        // 40,000 page writes/s over 8 MiB against 100 Mbit/s (≈ 3,000 pages/s): precopy cannot
        // converge, and adaptive.yaml (the default policy) says so and switches.
        let run = try e2e.migpilot(["migrate", "--memory", "16MiB", "--workload", "fill:8MiB", "--workload", "uniform:rate=40000",
                                    "--bandwidth", "100Mbit/s", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let (decisions, last) = try jsonLines(run)
        #expect(last["status"] as? String == "completed")
        #expect(last["verified"] as? Bool == true, "\(last)")
        #expect((last["postcopy_time_s"] as? Double ?? 0) > 0)
        // The switch lists the stale pages for the destination to drop, as runs: most of them
        // before the guest stops (postcopy-listen), the rest, written meanwhile, at the stop.
        let stale = try #require(last["listen_pages"] as? Int), staleRuns = try #require(last["listen_runs"] as? Int)
        #expect(stale > 0 && staleRuns >= 1 && staleRuns <= stale, "\(last)")
        let atStop = try #require(last["stop_pages"] as? Int), atStopRuns = try #require(last["stop_runs"] as? Int)
        #expect(atStopRuns <= atStop && atStop < stale, "\(last)")
        #expect((last["listen_s"] as? Double ?? 0) > 0)
        let switched = try #require(decisions.first { ($0["action"] as? [String: Any])?["action"] as? String == "start-postcopy" })
        #expect((switched["reason"] as? String)?.contains("will not converge") == true, "\(switched)")
        #expect(decisions.contains { ($0["status"] as? [String: Any])?["status"] as? String == "postcopy-active" })
    }

    @Test func postcopyWorksThroughATwoWayExecTransport() throws {
        // The stream goes to the child's stdin, page requests come back on its stdout.
        let run = try e2e.migpilot(["migrate", "--policy", policy("libvirt-postcopy-after-precopy"),
                                    "--to", "exec:\(TraceCommandTests.binary) incoming stdio --memory 16MiB",
                                    "--memory", "16MiB", "--workload", "uniform:rate=20000", "--bandwidth", "100Mbit/s", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let (_, last) = try jsonLines(run)
        #expect(last["status"] as? String == "completed")
        #expect(last["verified"] as? Bool == true)
        #expect((last["postcopy_time_s"] as? Double ?? 0) > 0)
        #expect(run.stderr.contains("incoming: ") && run.stderr.contains("through postcopy"), "\(run.stderr)")
    }

    @Test func aDestinationGuestInAnotherProcessRunsTheWorkloadOn() throws {
        let socket = freshSocket()
        let (guest, out, err) = try background(["guest", "--incoming", "unix:\(socket)", "--memory", "16MiB",
                                                 "--workload", "uniform:rate=3000", "--run-for", "0.5s"])
        defer { if guest.isRunning { guest.terminate() } }
        waitFor(socket)
        let run = try e2e.migpilot(["migrate", "--to", "unix:\(socket)", "--policy", policy("libvirt-postcopy-after-precopy"),
                                    "--memory", "16MiB", "--workload", "uniform:rate=3000", "--bandwidth", "100Mbit/s"])
        guest.waitUntilExit()
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("verified    yes"))
        let said = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(guest.terminationStatus == 0, "\(said)")
        #expect(said.contains("checked against the source's stamps and the writes made here since"), "\(said)")
        let table = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let writes = table.split(separator: "\n").first { $0.hasPrefix("page writes") }.flatMap { $0.split(separator: " ").dropFirst(2).first }
        #expect((writes.flatMap { Int($0) } ?? 0) > 0, "\(table)")
    }

    @Test func incomingInAnotherProcessReceivesOverAUnixSocket() throws {
        let socket = freshSocket()
        let (incoming, _, err) = try background(["incoming", "unix:\(socket)", "--memory", "16MiB"])
        defer { if incoming.isRunning { incoming.terminate() } }
        waitFor(socket)
        let run = try e2e.migpilot(["migrate", "--to", "unix:\(socket)", "--policy", policy("precopy"),
                                    "--memory", "16MiB", "--workload", "uniform:rate=1000"])
        incoming.waitUntilExit()
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("verified    yes"))
        #expect(incoming.terminationStatus == 0)
        #expect(String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).contains("checked against the source's final stamps"))
    }

    @Test func aGuestRunsOnItsOwn() throws {
        let run = try e2e.migpilot(["guest", "--memory", "8MiB", "--workload", "uniform:rate=2000", "--run-for", "0.3s"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("page writes"))
    }

    @Test func wrongFlagsSayWhatWasExpected() throws {
        let run = try e2e.migpilot(["migrate", "--workload", "uniform:speed=3"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("expected uniform:rate=PAGES_PER_S"), "\(run.stderr)")
        let bad = try e2e.migpilot(["incoming", "rdma:host:1", "--memory", "1MiB"])
        #expect(bad.status == 64)
        let none = try e2e.migpilot(["guest", "--memory", "1MiB"])
        #expect(none.status == 64)
        #expect(none.stderr.contains("--workload"), "\(none.stderr)")
        let discard = try e2e.migpilot(["migrate", "--postcopy-discard", "free"])
        #expect(discard.status == 64)
        #expect(discard.stderr.contains("auto") && discard.stderr.contains("drop"), "\(discard.stderr)")
        let remote = try e2e.migpilot(["migrate", "--to", "unix:/tmp/nowhere.sock", "--postcopy-discard", "drop"])
        #expect(remote.status == 64)
        #expect(remote.stderr.contains("migpilot incoming --postcopy-discard"), "\(remote.stderr)")
    }

    /// How the stream reaches the destination in `overEveryTransport`.
    enum Route: String, CaseIterable, Sendable { case tcp, unix, exec }

    /// Over each transport: a converging writer completes in precopy under precopy.yaml, a
    /// writer faster than the link through postcopy under adaptive.yaml; verified both times.
    @Test(arguments: Route.allCases, [false, true])
    func overEveryTransport(_ route: Route, outrunsTheLink: Bool) throws {
        var arguments = ["migrate", "--memory", "16MiB", "--workload", "fill:8MiB", "--json", "--bandwidth", "100Mbit/s",
                         "--workload", outrunsTheLink ? "uniform:rate=40000" : "uniform:rate=500"]
        if !outrunsTheLink { arguments += ["--policy", policy("precopy")] }
        var destination: Process?
        switch route {
        case .tcp: break  // the embedded default: a local destination over loopback tcp
        case .unix:
            let socket = freshSocket()
            let (p, _, _) = try background(["incoming", "unix:\(socket)", "--memory", "16MiB"])
            destination = p
            waitFor(socket)
            arguments += ["--to", "unix:\(socket)"]
        case .exec:
            arguments += ["--to", "exec:\(TraceCommandTests.binary) incoming stdio --memory 16MiB"]
        }
        defer { if destination?.isRunning == true { destination?.terminate() } }
        let run = try e2e.migpilot(arguments)
        #expect(run.status == 0, "\(run.stderr)")
        let (_, last) = try jsonLines(run)
        #expect(last["status"] as? String == "completed")
        #expect(last["verified"] as? Bool == true, "\(last)")
        #expect((last["postcopy_time_s"] as? Double).map { $0 > 0 } ?? false == outrunsTheLink, "\(last)")
        destination?.waitUntilExit()
        if let destination { #expect(destination.terminationStatus == 0) }
    }
}

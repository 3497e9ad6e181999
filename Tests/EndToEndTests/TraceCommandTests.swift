import Foundation
import Testing

/// The `migpilot` executable as a user runs it: exit codes, messages, and every dataset.
@Suite struct TraceCommandTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// The binary next to this test bundle (SwiftPM builds both into the same folder).
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["MIGPILOT_BIN"] { return path }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("migpilot").path
    }

    func migpilot(_ arguments: [String], stdin: String? = nil) throws -> Run {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        let input = Pipe()
        if stdin != nil { p.standardInput = input }
        try p.run()
        if let stdin {
            input.fileHandleForWriting.write(Data(stdin.utf8))
            try input.fileHandleForWriting.close()
        }
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    static var datasets: [String] {
        let dir = packageRoot.appendingPathComponent("datasets")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".trace") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    @Test func thereAreAtLeastSixDatasets() {
        #expect(Self.datasets.count >= 6)
    }

    @Test(arguments: datasets)
    func everyDatasetOpensAndMeetsTheBar(path: String) throws {
        let run = try migpilot(["trace", "info", "--json", path])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect((json["duration_s"] as? Double ?? 0) >= 60)
        #expect((json["interval_s"] as? Double ?? 1) <= 0.5)
        let provenance = try #require(json["provenance"] as? [String: String])
        let rss = UInt64(provenance["target_peak_rss_bytes"] ?? "0") ?? 0
        #expect(rss >= 256 << 20, "peak RSS \(rss)")
        for key in ["page_size", "pages", "dirty_pages_per_s", "unique_pages", "wss_pages"] { #expect(json[key] != nil) }
    }

    @Test(arguments: datasets.prefix(2))
    func damagedCopiesFailWithTheirOffset(path: String) throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-e2e-\(UUID().uuidString).trace")
        defer { try? FileManager.default.removeItem(at: tmp) }

        try bytes.prefix(bytes.count * 2 / 3).write(to: tmp)
        var run = try migpilot(["trace", "info", tmp.path])
        #expect(run.status == 65)
        #expect(run.stderr.contains("byte offset"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)

        var flipped = bytes
        flipped[bytes.count / 2] ^= 0x01
        try flipped.write(to: tmp)
        run = try migpilot(["trace", "info", "--json", tmp.path])
        #expect(run.status == 65)
        #expect(run.stderr.contains("byte offset") && run.stderr.contains("CRC32C"), "\(run.stderr)")
        #expect(run.stdout.isEmpty)
    }

    @Test func synthIsReproducibleAndInfoReportsIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let args = ["trace", "synth", "--kind", "hotset", "--memory", "64MiB", "--rate", "5000", "--duration", "2s",
                    "--interval", "100ms", "--seed", "9", "--hot-fraction", "0.1", "-o"]
        #expect(try migpilot(args + [dir.appendingPathComponent("a.trace").path]).status == 0)
        #expect(try migpilot(args + [dir.appendingPathComponent("b.trace").path]).status == 0)
        #expect(try Data(contentsOf: dir.appendingPathComponent("a.trace")) == Data(contentsOf: dir.appendingPathComponent("b.trace")))
        let info = try migpilot(["trace", "info", "--csv", dir.appendingPathComponent("a.trace").path])
        #expect(info.stdout.split(separator: "\n").count == 21)  // header + 20 intervals
        #expect(info.stdout.hasPrefix("interval,start_s,written_pages,dirty_pages_per_s\n"))
    }

    @Test(arguments: [
        (["trace", "synth", "--kind", "uniform", "--pages", "10", "--rate", "1", "--duration", "2", "-o", "/tmp/x.trace"], "expected a duration with a unit"),
        (["trace", "synth", "--kind", "sweep", "--pages", "10", "--rate", "1", "--duration", "2s", "--zipf-exponent", "1", "-o", "/tmp/x.trace"], "--zipf-exponent applies to --kind zipf only"),
        (["trace", "synth", "--kind", "fractal", "--pages", "10", "--rate", "1", "--duration", "2s", "-o", "/tmp/x.trace"], "fractal"),
        (["trace", "record", "--duration", "1s", "-o", "/tmp/x.trace"], "give exactly one of --pid PID and -- COMMAND"),
        (["trace", "info", "--json", "--csv", "x.trace"], "--json and --csv exclude each other"),
    ])
    func wrongFlagsSayWhatWasExpected(arguments: [String], message: String) throws {
        let run = try migpilot(arguments)
        #expect(run.status == 64)
        #expect(run.stderr.contains(message), "\(run.stderr)")
    }

    @Test func aMissingFileIsNotADataError() throws {
        let run = try migpilot(["trace", "info", "/nonexistent/x.trace"])
        #expect(run.status == 66)
        #expect(run.stderr.contains("No such file"))
    }

    @Test func recordStartsACommandAndEndsIt() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-e2e-\(UUID().uuidString).trace")
        defer { try? FileManager.default.removeItem(at: out) }
        let run = try migpilot(["trace", "record", "--interval", "100ms", "--duration", "1s", "-o", out.path, "--", "python3", "-c",
                                "import time\nb = bytearray(8 << 20)\nwhile True:\n  for i in range(0, len(b), 4096): b[i] = (b[i] + 1) % 256\n  time.sleep(0.05)"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("recorded 10 intervals"), "\(run.stderr)")
        let info = try migpilot(["trace", "info", "--json", out.path])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        let rates = try #require(json["dirty_pages_per_s"] as? [String: Double])
        #expect(rates["median"]! >= 2048 * 10 * 0.8, "the 8 MiB buffer is rewritten ~every 50 ms: \(rates)")
    }
}

/// whatif and tune as a user runs them.
@Suite struct WhatIfAndTuneCommandTests {
    let e2e = TraceCommandTests()
    var root: URL { TraceCommandTests.packageRoot }

    @Test func whatifComparesPoliciesAndPrintsTheIssuesJSONFields() throws {
        let run = try e2e.migpilot(["whatif", "--trace", root.appendingPathComponent("datasets/pgbench.trace").path,
                                    "--policy", root.appendingPathComponent("policies/precopy.yaml").path,
                                    "--policy", root.appendingPathComponent("policies/adaptive.yaml").path,
                                    "--bandwidth", "2.5Gbit/s", "--rtt", "1ms", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        let results = try #require(json["results"] as? [[String: Any]])
        #expect(results.map { $0["policy"] as? String } == ["precopy", "adaptive"])
        for key in ["policy", "completed", "converged", "total_time_s", "downtime_s", "bytes", "passes", "switch_at_s",
                    "remaining_pages_at_switch", "postcopy_time_s", "remote_faults", "paused_s", "recoveries"] {
            #expect(results[0].keys.contains(key), "missing \(key)")
        }
    }

    @Test func whatifRefusesMismatchedFailuresAndBadPolicies() throws {
        var run = try e2e.migpilot(["whatif", "--trace", "x.trace", "--policy", "p.yaml", "--bandwidth", "1Gbit/s", "--fail-at", "3s"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("each --fail-at needs its --fail-for"))
        run = try e2e.migpilot(["whatif", "--trace", "x.trace", "--policy", "p.yaml", "--bandwidth", "1Gbps"])
        #expect(run.status == 64)
        #expect(run.stderr.contains("expected a bandwidth such as 10Gbit/s"))
    }

    @Test func tuneShardsMergeToTheSameWinnerAsOneRun() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-tune-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let common = ["tune", "--trace", root.appendingPathComponent("datasets/redis-benchmark.trace").path,
                      "--space", root.appendingPathComponent("policies/adaptive-space.yaml").path, "--bandwidth", "1Gbit/s",
                      "--objective", "min-total-time", "--constraint", "downtime<=300ms", "--samples", "12", "--seed", "3"]
        let whole = try e2e.migpilot(common + ["-o", dir.appendingPathComponent("whole.yaml").path])
        #expect(whole.status == 0, "\(whole.stderr)")
        #expect(whole.stdout.contains("Pareto front"))
        for k in 0..<2 {
            let shard = try e2e.migpilot(common + ["--shard", "\(k)/2", "-o", dir.appendingPathComponent("shard-\(k).json").path])
            #expect(shard.status == 0, "\(shard.stderr)")
        }
        let merge = try e2e.migpilot(["tune", "merge", dir.appendingPathComponent("shard-0.json").path,
                                      dir.appendingPathComponent("shard-1.json").path, "-o", dir.appendingPathComponent("merged.yaml").path])
        #expect(merge.status == 0, "\(merge.stderr)")
        let a = try String(contentsOf: dir.appendingPathComponent("whole.yaml"), encoding: .utf8)
        let b = try String(contentsOf: dir.appendingPathComponent("merged.yaml"), encoding: .utf8)
        #expect(a == b)
        // The winner is an ordinary policy file.
        let check = try e2e.migpilot(["policy", "check", dir.appendingPathComponent("whole.yaml").path])
        #expect(check.status == 0, "\(check.stdout)")
        let missing = try e2e.migpilot(["tune", "merge", dir.appendingPathComponent("shard-0.json").path, "-o", dir.appendingPathComponent("m.yaml").path])
        #expect(missing.status == 65)
        #expect(missing.stderr.contains("points are in no shard"))
    }
}

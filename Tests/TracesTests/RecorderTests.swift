import Foundation
import Testing
@testable import Traces

/// The recorder against a real process (Tests/Fixtures/dirtier.c, compiled here with cc) that
/// writes a known number of distinct pages per second.
@Suite(.serialized) struct RecorderTests {
    /// Starts the fixture and returns once it has filled its memory.
    func startDirtier(_ dir: ScratchDirectory, mebibytes: Int, pagesPerSecond: Int, seconds: Int, churn: Bool = false) throws -> Process {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/dirtier.c").path
        let binary = dir.path("dirtier")
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-O2", "-o", binary, source]
        try cc.run()
        cc.waitUntilExit()
        try #require(cc.terminationStatus == 0, "cc could not build the fixture")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["\(mebibytes)", "\(pagesPerSecond)", "\(seconds)"] + (churn ? ["churn"] : [])
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let ready = out.fileHandleForReading.readData(ofLength: 6)
        try #require(String(decoding: ready, as: UTF8.self) == "ready\n")
        return p
    }

    @Test func findsTheRateOfAKnownWriterWithinFivePercent() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        // A 250 ms interval leaves the scan of 64 MiB room even when the rest of the suite
        // loads both cores (a scan must take under half the interval).
        let writer = try startDirtier(dir, mebibytes: 64, pagesPerSecond: 20_000, seconds: 8)
        defer { writer.terminate(); writer.waitUntilExit() }
        let recorder = TraceRecorder(pid: writer.processIdentifier, intervalNanoseconds: 250_000_000, durationNanoseconds: 5_000_000_000)
        let report = try recorder.record(to: dir.path("d.trace"))
        #expect(report.intervals == 20)
        #expect(!report.endedEarly)
        let trace = try TraceReader(path: dir.path("d.trace"))
        let stats = TraceStatistics(trace)
        #expect(abs(stats.dirtyPagesPerSecond.median - 20_000) / 20_000 < 0.05, "median \(stats.dirtyPagesPerSecond.median) pages/s")
        // All 64 MiB were filled before recording: they are the initial data.
        #expect((trace.initialData?.pageCount ?? 0) >= 64 * 256)
        #expect(trace.header.provenance("recorder") == "migpilot trace record")
        #expect(trace.notes.contains { $0.key == "scan_ms_median" })
    }

    @Test func followsMappingsThatAppearAndVanish() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let writer = try startDirtier(dir, mebibytes: 16, pagesPerSecond: 1000, seconds: 6, churn: true)
        defer { writer.terminate(); writer.waitUntilExit() }
        let report = try TraceRecorder(pid: writer.processIdentifier, intervalNanoseconds: 100_000_000,
                                       durationNanoseconds: 2_000_000_000).record(to: dir.path("churn.trace"))
        let trace = try TraceReader(path: dir.path("churn.trace"))
        // A new 1 MiB region every 100 ms, written in full: ~256 new pages per interval on top
        // of the sweep's 100. The kernel hands unmapped addresses out again, and a virtual page
        // keeps its number, so the five live regions are numbered once each.
        let stats = TraceStatistics(trace)
        #expect(stats.dirtyPagesPerSecond.median > 2_800, "\(stats.dirtyPagesPerSecond)")
        #expect(report.pages >= UInt64(16 * 256 + 5 * 256), "only \(report.pages) pages numbered")
    }

    @Test func endsEarlyAndKeepsTheTraceWhenTheProcessExits() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let writer = try startDirtier(dir, mebibytes: 16, pagesPerSecond: 1000, seconds: 1)
        let recorder = TraceRecorder(pid: writer.processIdentifier, intervalNanoseconds: 100_000_000, durationNanoseconds: 10_000_000_000)
        let report = try recorder.record(to: dir.path("short.trace"))
        writer.waitUntilExit()
        #expect(report.endedEarly)
        #expect(report.intervals < 30)
        let trace = try TraceReader(path: dir.path("short.trace"))
        #expect(trace.intervalCount == report.intervals)
        #expect(trace.notes.contains { $0.key == "ended_early" })
    }

    @Test func followsAProcessThroughItsExecs() throws {
        // A wrapper that execs again and again (as a pyenv shim or a launcher script does
        // once or twice): a scan that meets an exec starts again on the new address space
        // instead of taking the process for dead.
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let script = dir.path("reexec.sh")
        try "#!/bin/sh\nif [ \"$1\" -gt 0 ]; then exec \"$0\" $(($1 - 1)); fi\nexec sleep 5\n"
            .write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let wrapper = Process()
        wrapper.executableURL = URL(fileURLWithPath: script)
        wrapper.arguments = ["5000"]
        try wrapper.run()
        // SIGKILL: the test runner's blocked signals are inherited by what Foundation spawns.
        defer { kill(wrapper.processIdentifier, SIGKILL); wrapper.waitUntilExit() }
        // 50 ms intervals: a scan must take under half of one, and one that met the execs took
        // 16 ms once in a full run (2026-12-07), over the 10 ms a 20 ms interval allows.
        let report = try TraceRecorder(pid: wrapper.processIdentifier, intervalNanoseconds: 50_000_000,
                                       durationNanoseconds: 2_500_000_000).record(to: dir.path("exec.trace"))
        #expect(!report.endedEarly)
        #expect(report.intervals == 50)
    }

    @Test func refusesAnIntervalItCannotKeep() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let writer = try startDirtier(dir, mebibytes: 256, pagesPerSecond: 1000, seconds: 5)
        defer { writer.terminate(); writer.waitUntilExit() }
        let recorder = TraceRecorder(pid: writer.processIdentifier, intervalNanoseconds: 1_000_000, durationNanoseconds: 1_000_000_000)
        #expect {
            try recorder.record(to: dir.path("never.trace"))
        } throws: { error in
            guard case .intervalTooShort(_, _, let suggestion) = error as? RecorderError else { return false }
            return suggestion >= 2
        }
        #expect(!FileManager.default.fileExists(atPath: dir.path("never.trace")))
    }

    @Test func refusesAProcessThatDoesNotExist() {
        let recorder = TraceRecorder(pid: 0x3fff_fff0, intervalNanoseconds: 100_000_000, durationNanoseconds: 1_000_000_000)
        #expect {
            try recorder.record(to: "/tmp/never.trace")
        } throws: { error in
            if case .noSuchProcess = error as? RecorderError { return true }
            return false
        }
    }
}

import ArgumentParser
import Glibc
import Migration
import Traces

/// `migpilot trace record`: a dirty-page trace of a live process.
struct TraceRecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Record which pages a live process writes, interval by interval.",
        discussion: """
            Samples the process's writable mappings with process_vm_readv every
            interval and keeps the pages whose content changed (CRC32C
            fingerprints). Refuses an interval it cannot keep. A rewrite with
            identical bytes is not seen (docs/trace-format.md lists the limits).

            Examples:
              migpilot trace record --pid 4242 --interval 200ms --duration 60s \\
                  -o redis.trace
              migpilot trace record --interval 100ms --duration 30s --delay 5s \\
                  -o job.trace -- python3 job.py --size 512M
            """
    )

    @Option(help: "The process to record.") var pid: Int32?
    @Option(help: "Sampling interval.", transform: Parse.timeSpan) var interval: TimeSpan = TimeSpan(nanoseconds: 200_000_000)
    @Option(help: "How long to record.", transform: Parse.timeSpan) var duration: TimeSpan
    @Option(help: "With a command: wait this long before recording (warm-up).", transform: Parse.timeSpan) var delay: TimeSpan = TimeSpan(nanoseconds: 0)
    @Option(name: .customLong("note"), help: "Provenance KEY=VALUE to store (repeatable).") var notes: [String] = []
    @Option(name: .shortAndLong, help: "Output file (.trace).") var output: String
    @Argument(parsing: .postTerminator, help: "A command to start and record (after --).") var command: [String] = []

    func validate() throws {
        if (pid == nil) == command.isEmpty { throw ValidationError("give exactly one of --pid PID and -- COMMAND ARGS…") }
        if interval.nanoseconds <= 0 { throw ValidationError("--interval must be positive") }
        if duration < interval { throw ValidationError("--duration (\(duration)) must be at least one --interval (\(interval))") }
        if pid != nil, delay.nanoseconds > 0 { throw ValidationError("--delay applies to a command started with --, not to --pid") }
        for note in notes where !note.contains("=") { throw ValidationError("--note expects KEY=VALUE, got '\(note)'") }
    }

    func run() throws {
        var child: ChildProcess? = nil
        var target = pid ?? 0
        if !command.isEmpty {
            do { child = try ChildProcess(command) } catch { throw fail("cannot start '\(command.joined(separator: " "))': \(error)", ExitCodes.unavailable) }
            target = child!.pid
            if delay.nanoseconds > 0 { usleep(UInt32(delay.nanoseconds / 1000)) }
        }
        defer { child?.stop() }

        var provenance = notes.map { note -> ProvenanceEntry in
            let kv = note.split(separator: "=", maxSplits: 1)
            return ProvenanceEntry(String(kv[0]), String(kv[1]))
        }
        if !command.isEmpty { provenance.append(ProvenanceEntry("command", command.joined(separator: " "))) }
        let recorder = TraceRecorder(pid: target, intervalNanoseconds: UInt64(interval.nanoseconds),
                                     durationNanoseconds: UInt64(duration.nanoseconds), provenance: provenance)
        let report: RecordingReport
        do {
            report = try recorder.record(to: output) { p in
                Terminal.progress("recording pid \(target): \(p.interval)/\(p.intervals) intervals, \(p.changedPages) pages changed, scan \(Int(p.scanMilliseconds.rounded()))ms, \(ByteCount(bytes: UInt64(p.presentBytes))) present")
            }
        } catch {
            Terminal.endProgress()
            switch error {
            case .noSuchProcess: throw fail(error.description, ExitCodes.unavailable)
            case .intervalTooShort: throw fail(error.description, .validationFailure)
            case .trace(let e): throw fail(e.description, ExitCodes.forTrace(e))
            case .system: throw fail(error.description, ExitCodes.ioError)
            }
        }
        Terminal.endProgress()
        let scans = report.scanMilliseconds.sorted()
        let cost = "scan \(formatFixed(percentile(scans, 50), decimals: 1)) ms median, \(formatFixed(percentile(scans, 99), decimals: 1)) ms p99, \(formatFixed(scans.last ?? 0, decimals: 1)) ms max per \(interval) interval"
        Terminal.standardError("recorded \(report.intervals) intervals of pid \(target) to \(report.path): \(report.pages) pages; \(cost); \(report.overruns) overruns\n")
        if report.endedEarly {
            throw fail("the process exited after \(report.intervals) of \(report.requestedIntervals) intervals; the trace holds what was recorded", ExitCodes.partial)
        }
    }
}

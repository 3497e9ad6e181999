import ArgumentParser
import Foundation
import Migration
import Policies
import Traces
import WhatIf

/// `migpilot whatif`: replay traces under policies, bandwidths and link failures.
struct WhatIfCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whatif",
        abstract: "Predict how policies would migrate a traced workload.",
        discussion: """
            Replays the trace on a simulated link, page by page, with QEMU's
            migration mechanics, driven by the same policy engine as a real
            migration. Policies are compared side by side.

            Examples:
              migpilot whatif --trace datasets/redis-benchmark.trace \\
                  --policy policies/precopy.yaml --policy policies/adaptive.yaml \\
                  --bandwidth 10Gbit/s
              migpilot whatif --trace t.trace --policy policies/adaptive.yaml \\
                  --bandwidth 1Gbit/s --fail-at 40s --fail-for 3s --json
            """
    )

    @Option(help: "Trace to replay (repeatable).") var trace: [String]
    @Option(help: "Policy file (repeatable).") var policy: [String]
    @Option(help: "Link bandwidth, e.g. 10Gbit/s, 800Mbit/s, 1GB/s (repeatable).", transform: Parse.bandwidth) var bandwidth: [Bandwidth]
    @Option(help: "Rate of the stop-and-copy and the switch to postcopy, when the link is faster than --bandwidth caps precopy (default: --bandwidth).",
            transform: Parse.bandwidth) var switchoverBandwidth: Bandwidth?
    @Option(help: "Round-trip time of the link.", transform: Parse.timeSpan) var rtt = TimeSpan(nanoseconds: 1_000_000)
    @Option(help: "What the source shows the policy of the pages dirtied since a sync: exact (migpilot's engine) or at-sync (QEMU, to predict a QEMU migration).")
    var dirtyCounts: DirtyCountVisibility = .exact
    @OptionGroup(title: "The switch's own work (defaults: migpilot's embedded engine here; docs/model.md, \"Switchover\")")
    var switchover: SwitchoverCostOptions
    @Option(help: "Stop a migration that has not finished after this long, as migrate --timeout does (default: long enough for any that can).",
            transform: Parse.timeSpan) var horizon: TimeSpan?
    @Option(help: "Override every policy's downtime limit.", transform: Parse.timeSpan) var downtimeLimit: TimeSpan?
    @Option(help: "Break the channel at this time (repeatable, with --fail-for).", transform: Parse.timeSpan) var failAt: [TimeSpan] = []
    @Option(help: "How long each break lasts.", transform: Parse.timeSpan) var failFor: [TimeSpan] = []
    @Option(help: "Write the decision log (JSON lines) to this file.") var log: String?
    @Flag(help: "Print {\"results\": [...]}.") var json = false
    @Flag(help: "Print one CSV row per result.") var csv = false

    func validate() throws {
        if json && csv { throw ValidationError("--json and --csv exclude each other: choose one") }
        if trace.isEmpty { throw ValidationError("give at least one --trace FILE") }
        if policy.isEmpty { throw ValidationError("give at least one --policy FILE") }
        if bandwidth.isEmpty { throw ValidationError("give at least one --bandwidth, e.g. --bandwidth 10Gbit/s") }
        if failAt.count != failFor.count {
            throw ValidationError("each --fail-at needs its --fail-for (got \(failAt.count) --fail-at and \(failFor.count) --fail-for)")
        }
    }

    func run() throws {
        let policies = try policy.map(loadPolicy)
        let logHandle = try log.map { path -> FileHandle in
            guard FileManager.default.createFile(atPath: path, contents: nil) else { throw fail("cannot write the log to \(path)", ExitCodes.ioError) }
            return try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var results: [WhatIfResult] = []
        let total = trace.count * bandwidth.count * policies.count
        for path in trace {
            let workload: TraceWorkload
            do { workload = try TraceWorkload(path: path) } catch { throw fail(error.description, ExitCodes.forTrace(error)) }
            for b in bandwidth {
                let link = LinkModel(bandwidthBytesPerSecond: b.bytesPerSecond, switchoverBytesPerSecond: switchoverBandwidth?.bytesPerSecond,
                                     roundTripSeconds: rtt.seconds, switchoverCost: switchover.cost,
                                     failures: zip(failAt, failFor).map { .init(atSeconds: $0.seconds, forSeconds: $1.seconds) },
                                     dirtyCounts: dirtyCounts)
                for p in policies {
                    Terminal.progress("simulating \(results.count + 1)/\(total): \(p.name) on \(workload.name) at \(b)")
                    let r = try WhatIf.run(policy: p, workload: workload, link: link, downtimeLimit: downtimeLimit?.seconds,
                                           horizonSeconds: horizon?.seconds) { record in
                        if let logHandle, let line = try? encoder.encode(record) { logHandle.write(line + Data("\n".utf8)) }
                    }
                    results.append(r)
                }
            }
        }
        Terminal.endProgress()
        try logHandle?.close()
        if json {
            print(String(decoding: try encoder.encode(["results": results]), as: UTF8.self))
        } else if csv {
            print(Self.csvHeader)
            for r in results { print(Self.csvRow(r)) }
        } else {
            print(Self.table(results), terminator: "")
        }
    }

    static let csvHeader = "trace,bandwidth_bytes_per_s,policy,completed,converged,total_time_s,downtime_s,bytes,passes,switch_at_s,remaining_pages_at_switch,postcopy_time_s,remote_faults,paused_s,recoveries,status,reason"

    static func csvRow(_ r: WhatIfResult) -> String {
        func o<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "" }
        let reason = (r.reason ?? "").replacingOccurrences(of: "\"", with: "\"\"")
        return "\(r.trace),\(r.bandwidthBytesPerSecond),\(r.policy),\(r.completed),\(r.converged),\(r.totalTimeSeconds),\(o(r.downtimeSeconds)),\(r.bytes),\(r.passes),\(o(r.switchAtSeconds)),\(o(r.remainingPagesAtSwitch)),\(o(r.postcopyTimeSeconds)),\(r.remoteFaults),\(r.pausedSeconds),\(r.recoveries),\(r.state.rawValue),\"\(reason)\""
    }

    static func table(_ results: [WhatIfResult]) -> String {
        func s(_ v: Double?, _ d: Int = 2) -> String { v.map { formatFixed($0, decimals: d) } ?? "-" }
        let rows = results.map { r in
            [r.trace, Bandwidth(bytesPerSecond: r.bandwidthBytesPerSecond).description, r.policy,
             r.completed ? (r.converged ? "precopy" : "postcopy") : "NO",
             s(r.totalTimeSeconds, 1), r.downtimeSeconds.map { formatFixed($0 * 1000, decimals: 1) } ?? "-",
             ByteCount(bytes: r.bytes).description, "\(r.passes)", s(r.switchAtSeconds, 1), r.remainingPagesAtSwitch.map { "\($0)" } ?? "-",
             s(r.postcopyTimeSeconds, 1), "\(r.remoteFaults)", s(r.pausedSeconds, 1), "\(r.recoveries)", r.reason ?? ""]
        }
        return Terminal.table(rows, header: ["trace", "link", "policy", "finished", "total s", "downtime ms", "sent", "passes",
                                             "switch s", "left at switch", "postcopy s", "faults", "paused s", "recoveries", "why not"])
    }
}

extension DirtyCountVisibility: ExpressibleByArgument {}

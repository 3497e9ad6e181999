import ArgumentParser
import Dispatch
import Foundation
import Migration
import Policies
import Traces
import WhatIf

/// `migpilot tune`: search policy parameters over traces for an objective.
struct TuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tune",
        abstract: "Search a policy's parameters over traces for an objective.",
        subcommands: [TuneRunCommand.self, TuneMergeCommand.self],
        defaultSubcommand: TuneRunCommand.self
    )
}

struct TuneRunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Evaluate the points of a parameter space; write the winner as a policy.",
        discussion: """
            Every point's policy is simulated on every trace × bandwidth. A point is
            feasible when every case completes and meets every --constraint; the
            winner is the feasible point with the best --objective (the mean over
            the cases). With --shard K/N only every N-th point from K is evaluated
            and -o gets the scores as JSON, for `tune merge` (docs/tuning.md).

            Examples:
              migpilot tune --trace datasets/redis-benchmark.trace \\
                  --trace datasets/pgbench.trace --bandwidth 1Gbit/s \\
                  --bandwidth 10Gbit/s --objective min-total-time \\
                  --constraint 'downtime<=300ms' --seed 1 -o tuned.yaml
              migpilot tune ... --shard 3/8 -o shard-3.json
            """
    )

    @Option(help: "Trace to tune on (repeatable).") var trace: [String]
    @Option(help: "Parameter space file.") var space = "policies/adaptive-space.yaml"
    @Option(help: "min-downtime, min-total-time or min-bytes.") var objective: TuningObjective
    @Option(help: "downtime<=300ms, total-time<=2m or bytes<=8GiB (repeatable).", transform: Parse.constraint) var constraint: [TuningConstraint] = []
    @Option(help: "Link bandwidth (repeatable).", transform: Parse.bandwidth) var bandwidth: [Bandwidth]
    @Option(help: "Round-trip time of the link.", transform: Parse.timeSpan) var rtt = TimeSpan(nanoseconds: 1_000_000)
    @Option(help: "Seed for sampling points.") var seed: UInt64 = 1
    @Option(help: "Evaluate this many points drawn with --seed (default: all).") var samples: Int?
    @Option(help: "Evaluate shard K of N (K in 0..<N), e.g. 3/8.") var shard: String?
    @Option(help: "Worker threads (default: one per core).") var jobs: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(name: .shortAndLong, help: "Output: the tuned policy (YAML), or with --shard the scores (JSON).") var output: String

    func validate() throws {
        if trace.isEmpty { throw ValidationError("give at least one --trace FILE") }
        if bandwidth.isEmpty { throw ValidationError("give at least one --bandwidth, e.g. --bandwidth 10Gbit/s") }
        if let samples, samples < 1 { throw ValidationError("--samples must be at least 1") }
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if let shard, Self.parseShard(shard) == nil { throw ValidationError("--shard expects K/N with 0 ≤ K < N, got '\(shard)'") }
    }

    static func parseShard(_ s: String) -> (k: Int, n: Int)? {
        let parts = s.split(separator: "/")
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, k >= 0, k < n else { return nil }
        return (k, n)
    }

    func run() throws {
        let (spaceValue, base) = try loadSpace(space)
        var workloads: [TraceWorkload] = []
        for path in trace {
            do { workloads.append(try TraceWorkload(path: path)) } catch { throw fail(error.description, ExitCodes.forTrace(error)) }
        }
        let links = bandwidth.map { LinkModel(bandwidthBytesPerSecond: $0.bytesPerSecond, roundTripSeconds: rtt.seconds) }
        let tuner = Tuner(space: spaceValue, base: base, workloads: workloads, links: links, constraints: constraint)
        let points = tuner.points(samples: samples, seed: seed)
        let part = shard.flatMap(Self.parseShard) ?? (0, 1)
        let indices = points.indices.filter { $0 % part.n == part.k }
        let total = indices.count
        let start = DispatchTime.now().uptimeNanoseconds
        let scores = tuner.evaluate(points, indices: indices, jobs: jobs) { done in
            Terminal.progress("tune: \(done)/\(total) points, \(done * tuner.simulationsPerPoint) simulations")
        }
        Terminal.endProgress()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let report = TuningReport(space: space, objective: objective, constraints: constraint.map(\.description), traces: workloads.map(\.name),
                                  bandwidthsBytesPerSecond: bandwidth.map(\.bytesPerSecond), seed: seed, samples: samples, shard: shard,
                                  pointCount: points.count, scores: scores, simulations: scores.count * tuner.simulationsPerPoint,
                                  seconds: seconds, jobs: min(jobs, max(1, total)))
        if shard != nil {
            try writeJSON(report, to: output)
            Terminal.standardError("tune: shard \(shard!): \(scores.count) points, \(report.simulations) simulations in \(formatFixed(seconds, decimals: 1)) s → \(output)\n")
            return
        }
        try finish(report, points: points, space: spaceValue, base: base, output: output, json: json)
    }
}

struct TuneMergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge the shard reports of a tune run and write the winner.",
        discussion: """
            Example:
              migpilot tune merge results/shard-*.json -o tuned.yaml
            """
    )

    @Argument(help: "Shard reports (JSON) written by tune --shard.") var reports: [String]
    @Flag(help: "Print the merged report as JSON.") var json = false
    @Option(name: .shortAndLong, help: "The tuned policy (YAML).") var output: String

    func run() throws {
        var parts: [TuningReport] = []
        for path in reports {
            do {
                parts.append(try JSONDecoder().decode(TuningReport.self, from: Data(contentsOf: URL(fileURLWithPath: path))))
            } catch {
                throw fail("\(path) is not a tune shard report: \(error)", ExitCodes.dataError)
            }
        }
        let merged: TuningReport
        do { merged = try TuningReport.merge(parts) } catch { throw fail(error.description, ExitCodes.dataError) }
        let (space, base) = try loadSpace(merged.space)
        let points = Tuner(space: space, base: base, workloads: [], links: [], constraints: []).points(samples: merged.samples, seed: merged.seed)
        try finish(merged, points: points, space: space, base: base, output: output, json: json)
    }
}

/// The space and its base policy (relative to the space file).
private func loadSpace(_ path: String) throws -> (ParameterSpace, Policy) {
    let space: ParameterSpace
    do { space = try ParameterSpace.load(path: path) } catch {
        if case .invalid(let errors) = error { Terminal.standardError(errors.description + "\n") }
        throw fail("\(path) is not a valid parameter space", ExitCodes.forPolicy(error))
    }
    guard let baseName = space.base else { throw fail("\(path) names no base policy ('base:')", ExitCodes.dataError) }
    let basePath = baseName.hasPrefix("/") ? baseName : URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(baseName).path
    return (space, try loadPolicy(basePath))
}

private func writeJSON<T: Encodable>(_ value: T, to path: String) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    do { try encoder.encode(value).write(to: URL(fileURLWithPath: path)) } catch { throw fail("cannot write \(path): \(error)", ExitCodes.ioError) }
}

/// Prints the front and writes the winner as an ordinary policy file.
private func finish(_ report: TuningReport, points: [ParameterSpace.Point], space: ParameterSpace, base: Policy,
                    output: String, json: Bool) throws {
    let front = ParetoFront.of(report.scores, objective: report.objective)
    if json {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    } else {
        func ms(_ s: Double) -> String { formatFixed(s * 1000, decimals: 1) }
        let rows = front.map { s in
            [s.point.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "),
             ms(s.meanDowntimeSeconds), ms(s.maxDowntimeSeconds), formatFixed(s.meanTotalTimeSeconds, decimals: 2),
             ByteCount(bytes: UInt64(s.meanBytes)).description]
        }
        print("Pareto front (\(front.count) of \(report.scores.count) points feasible and undominated; best \(report.objective.rawValue) first):")
        print(Terminal.table(rows, header: ["point", "mean downtime ms", "max downtime ms", "mean total s", "mean sent"]), terminator: "")
        print("\(report.simulations) simulations in \(formatFixed(report.seconds, decimals: 2)) s on \(report.jobs) threads: \(formatFixed(report.simulationsPerSecondPerJob, decimals: 0)) per second per thread")
    }
    guard let winner = ParetoFront.winner(report.scores, objective: report.objective) else {
        let reasons = Set(report.scores.flatMap(\.violations)).sorted().prefix(5).joined(separator: "\n  ")
        throw fail("no point is feasible; for example:\n  \(reasons)", ExitCode(2))
    }
    var policy = try space.policy(applying: points[winner.index], to: base)
    policy.name = base.name + "-tuned"
    policy.description = "\(base.name) tuned for \(report.objective.rawValue)" + (report.constraints.isEmpty ? "" : " under " + report.constraints.joined(separator: ", "))
    let header = """
        # Written by migpilot tune: \(report.objective.rawValue)\(report.constraints.isEmpty ? "" : ", " + report.constraints.joined(separator: ", "))
        # over \(report.traces.joined(separator: ", ")) at \(report.bandwidthsBytesPerSecond.map { Bandwidth(bytesPerSecond: $0).description }.joined(separator: ", ")).
        # Winner: \(points[winner.index]) — mean downtime \(formatFixed(winner.meanDowntimeSeconds * 1000, decimals: 1)) ms, mean total \(formatFixed(winner.meanTotalTimeSeconds, decimals: 2)) s.

        """
    do { try (header + policy.effective.yaml).write(toFile: output, atomically: true, encoding: .utf8) } catch {
        throw fail("cannot write \(output): \(error)", ExitCodes.ioError)
    }
    if !json { print("winner: \(points[winner.index]) → \(output)") }
}
extension TuningObjective: ExpressibleByArgument {}

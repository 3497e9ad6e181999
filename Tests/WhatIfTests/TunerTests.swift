import Foundation
import Migration
import Policies
import Testing
@testable import WhatIf

@Suite struct TunerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func tuner(_ constraints: [TuningConstraint] = []) throws -> Tuner {
        let space = try ParameterSpace.parse("""
            base: adaptive.yaml
            parameters:
              - field: downtime_limit
                values: [50ms, 300ms]
              - field: postcopy.when_precopy_slower_by
                values: [0, 0.5]
            """)
        let base = try PolicyLoader.load(path: Self.root.appendingPathComponent("policies/adaptive.yaml").path)
        // A hot-set writer that precopy can finish on the fast link and not on the slow one.
        let workload = try syntheticWorkload(.hotset, pages: 20_000, rate: 8_000, seconds: 20)
        // QEMU's downtime (pages and a round trip), which the constraints below were written for.
        let links = [LinkModel(bandwidthBytesPerSecond: 5_000 * 4104.0, switchoverCost: .none),
                     LinkModel(bandwidthBytesPerSecond: 40_000 * 4104.0, switchoverCost: .none)]
        return Tuner(space: space, base: base, workloads: [workload], links: links, constraints: constraints)
    }

    @Test func everyPointIsScoredOnEveryCaseAndTheOrderDoesNotDependOnThreads() throws {
        // QEMU's threshold (bandwidth × limit) ignores latency: a stop-and-copy that fills it
        // exactly lasts the limit plus the 1 ms round trip.
        let t = try tuner([TuningConstraint(metric: .downtime, limit: 0.301)])
        let points = t.points(samples: nil, seed: 1)
        #expect(points.count == 4)
        let one = t.evaluate(points, indices: Array(points.indices), jobs: 1)
        let two = t.evaluate(points, indices: Array(points.indices), jobs: 2)
        #expect(one == two)
        #expect(one.map(\.cases) == [2, 2, 2, 2])
        #expect(one.filter(\.feasible).count == 4, "\(one.map { ($0.point, $0.violations) })")
        // A large margin keeps precopy going: the 50 ms limit then gives far less downtime than 300 ms.
        let patient = one.filter { $0.point["postcopy.when_precopy_slower_by"] == "0.5" }
        #expect(patient.first { $0.point["downtime_limit"] == "50ms" }!.meanDowntimeSeconds
                < patient.first { $0.point["downtime_limit"] == "300ms" }!.meanDowntimeSeconds)
        let best = try #require(ParetoFront.winner(one, objective: .minDowntime))
        #expect(best.meanDowntimeSeconds == one.map(\.meanDowntimeSeconds).min())
    }

    @Test func samplingIsSeededAndShardsPartitionThePoints() throws {
        let t = try tuner()
        #expect(t.points(samples: 3, seed: 7) == t.points(samples: 3, seed: 7))
        #expect(t.points(samples: 3, seed: 7).count == 3)
        #expect(t.points(samples: 10, seed: 7).count == 4)  // never more than the grid
        let points = t.points(samples: nil, seed: 1)
        let shards = (0..<3).map { k in t.evaluate(points, indices: points.indices.filter { $0 % 3 == k }, jobs: 1) }
        let report = { (k: Int) in
            TuningReport(space: "s.yaml", objective: .minTotalTime, constraints: [], traces: ["t"], bandwidthsBytesPerSecond: [1],
                         seed: 1, samples: nil, shard: "\(k)/3", pointCount: 4, scores: shards[k], simulations: 2 * shards[k].count,
                         seconds: 1, jobs: 1)
        }
        let merged = try TuningReport.merge([report(2), report(0), report(1)])
        #expect(merged.scores == t.evaluate(points, indices: Array(points.indices), jobs: 1))
        #expect(merged.shard == nil)
        #expect(throws: TuningMergeError.missingPoints(1, 4)) { try TuningReport.merge([report(0), report(2)]) }
        var other = report(1)
        other.seed = 2
        #expect(throws: TuningMergeError.self) { try TuningReport.merge([report(0), other]) }
    }
}

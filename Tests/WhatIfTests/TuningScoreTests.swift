import Migration
import Testing
@testable import WhatIf

@Suite struct TuningScoreTests {
    func result(downtime: Double?, total: Double, bytes: UInt64, completed: Bool = true) -> WhatIfResult {
        WhatIfResult(policy: "p", trace: "t", bandwidthBytesPerSecond: 1.25e9, completed: completed, converged: completed,
                     totalTimeSeconds: total, downtimeSeconds: downtime, bytes: bytes, passes: 3, switchAtSeconds: nil,
                     remainingPagesAtSwitch: nil, postcopyTimeSeconds: nil, remoteFaults: 0, pausedSeconds: 0, recoveries: 0,
                     state: completed ? .completed : .active, reason: completed ? nil : "x")
    }

    @Test func constraintsParseAndSayWhatWasExpected() throws {
        #expect(try TuningConstraint(parsing: "downtime<=300ms") == TuningConstraint(metric: .downtime, limit: 0.3))
        #expect(try TuningConstraint(parsing: "bytes<=1GiB").limit == 1_073_741_824)
        #expect(try TuningConstraint(parsing: "total-time<=2m").description == "total-time<=2m")
        #expect(throws: QuantityError.self) { try TuningConstraint(parsing: "downtime<300ms") }
        #expect(throws: QuantityError.self) { try TuningConstraint(parsing: "latency<=3ms") }
    }

    @Test func aPointIsFeasibleOnlyIfEveryCaseCompletesWithinTheConstraints() {
        let ok = TuningScore(point: ["a": "1"], results: [result(downtime: 0.1, total: 10, bytes: 100), result(downtime: 0.2, total: 20, bytes: 300)],
                             constraints: [TuningConstraint(metric: .downtime, limit: 0.3)])
        #expect(ok.feasible)
        #expect(abs(ok.meanDowntimeSeconds - 0.15) < 1e-12 && ok.maxDowntimeSeconds == 0.2 && ok.meanBytes == 200)
        let slow = TuningScore(point: ["a": "2"], results: [result(downtime: 0.5, total: 5, bytes: 100)], constraints: [TuningConstraint(metric: .downtime, limit: 0.3)])
        #expect(!slow.feasible)
        #expect(slow.violations == ["t at 10Gbit/s: downtime<=300ms does not hold"])
        let stuck = TuningScore(point: ["a": "3"], results: [result(downtime: nil, total: 600, bytes: 1, completed: false)], constraints: [])
        #expect(!stuck.feasible)
    }

    @Test func theFrontKeepsOnlyUndominatedPointsAndTheWinnerFollowsTheObjective() {
        let a = TuningScore(point: ["x": "a"], results: [result(downtime: 0.1, total: 30, bytes: 500)], constraints: [])
        let b = TuningScore(point: ["x": "b"], results: [result(downtime: 0.2, total: 10, bytes: 500)], constraints: [])
        let c = TuningScore(point: ["x": "c"], results: [result(downtime: 0.2, total: 30, bytes: 600)], constraints: [])  // dominated by a
        let front = ParetoFront.of([a, b, c], objective: .minDowntime)
        #expect(front.map { $0.point["x"] } == ["a", "b"])
        #expect(ParetoFront.winner([a, b, c], objective: .minDowntime)?.point["x"] == "a")
        #expect(ParetoFront.winner([a, b, c], objective: .minTotalTime)?.point["x"] == "b")
    }
}

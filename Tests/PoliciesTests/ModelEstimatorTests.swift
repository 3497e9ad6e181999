import Migration
import Testing
@testable import Policies

/// The estimate step fed crafted observations.
@Suite struct ModelEstimatorTests {
    func status(_ t: Double, pass: Int, sinceSync: Double, dirty: UInt64, rate: Double) -> MigrationStatus {
        MigrationStatus(state: .active, elapsedSeconds: t, pass: pass, pageSize: 4096, totalPages: 262_144, remainingPages: 200_000,
                        transferredBytes: UInt64(t * 125e6), dirtyPagesSinceSync: dirty, secondsSinceSync: sinceSync,
                        dirtyPagesRate: rate, bandwidthBytesPerSecond: 125e6, downtimeLimitSeconds: 0.3)
    }

    /// A backend that cannot count dirty pages during a pass (QEMU reads its bitmap only at a
    /// sync) still gives the model the pass that ended: its distinct pages over its length.
    @Test func aSyncGivesTheSampleOfThePeriodItEndsEvenWithoutCountsDuringIt() throws {
        var e = ModelEstimator(policy: try PolicyLoader.load(path: Repository.path("policies/adaptive.yaml")))
        for t in stride(from: 0.0, through: 4.0, by: 0.5) {
            _ = e.assess(Observation(status: status(t, pass: 1, sinceSync: 0, dirty: 0, rate: 0)))
        }
        let assessment = e.assess(Observation(status: status(4.05, pass: 2, sinceSync: 0, dirty: 0, rate: 50_000), events: [.passCompleted]))
        let a = try #require(assessment)
        // 50,000 pages/s over the 4.05 s period: above the link's 30,458 pages/s, so no
        // convergence; without the period's sample the model would have nothing to say.
        #expect(a.dirtyRatePagesPerSecond.map { abs($0 - 50_000) < 1 } == true, "\(a)")
        #expect(a.converges == false)
    }
}

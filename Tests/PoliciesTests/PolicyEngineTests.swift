import Migration
import Testing
@testable import Policies

/// The engine alone, fed crafted observations: pure, so every decision is checked exactly.
@Suite struct PolicyEngineTests {
    func shipped(_ name: String) throws -> Policy { try PolicyLoader.load(path: Repository.path("policies/\(name).yaml")) }

    func observe(_ t: Double, pass: Int = 1, remaining: UInt64 = 100_000, state: MigrationState = .active,
                 events: [MigrationEvent] = [], attempts: Int = 0) -> Observation {
        Observation(status: MigrationStatus(state: state, elapsedSeconds: t, pass: pass, pageSize: 4096, totalPages: 262_144,
                                            remainingPages: remaining, bandwidthBytesPerSecond: 125_000_000, downtimeLimitSeconds: 0.3),
                    events: events, recoveryAttempts: attempts)
    }

    func actions(_ engine: inout PolicyEngine, _ o: Observation, _ a: Assessment? = nil) -> [Action] {
        engine.decide(o, assessment: a).map(\.action)
    }

    @Test func precopySetsQEMUsLimitAndNeverSwitches() throws {
        var e = PolicyEngine(policy: try shipped("precopy"), memory: ByteCount(bytes: 1 << 30))
        #expect(actions(&e, observe(0)) == [.setDowntimeLimit(seconds: 0.3)])
        for t in stride(from: 1.0, through: 3600, by: 7) { #expect(actions(&e, observe(t, pass: Int(t) / 10 + 1)) == []) }
        // Pending fits 125 MB/s × 0.3 s = 9,137 pages of 4,104 bytes: complete, with the exact sync's bound.
        #expect(actions(&e, observe(3601, pass: 400, remaining: 9_000)) == [.complete(maxPendingPages: 9_137)])
    }

    @Test func libvirtPostcopyAfterPrecopySwitchesWhenTheFirstPassIsComplete() throws {
        var e = PolicyEngine(policy: try shipped("libvirt-postcopy-after-precopy"), memory: ByteCount(bytes: 1 << 30))
        _ = actions(&e, observe(0))
        #expect(actions(&e, observe(5, pass: 1)) == [])
        #expect(actions(&e, observe(8.4, pass: 2, events: [.passCompleted])) == [.startPostcopy])
        #expect(actions(&e, observe(9, pass: 2)) == [])  // once
    }

    @Test func libvirtTimeoutPostcopySwitchesAfterItsTimeout() throws {
        var e = PolicyEngine(policy: try shipped("libvirt-timeout-postcopy"), memory: ByteCount(bytes: 1 << 30))
        _ = actions(&e, observe(0))
        #expect(actions(&e, observe(29.9, pass: 5)) == [])
        #expect(actions(&e, observe(30, pass: 5)) == [.startPostcopy])
    }

    @Test func novaStepsTheDowntimeAndForcesCompletionAfter800sPerGiB() throws {
        // 1 GiB of RAM counts as 2 GiB (Nova: max(2, RAM GiB)): steps every 150 s, timeout at 1600 s.
        var e = PolicyEngine(policy: try shipped("nova"), memory: ByteCount(bytes: 1 << 30))
        #expect(actions(&e, observe(0)) == [.setDowntimeLimit(seconds: 0.05)])
        #expect(actions(&e, observe(149, pass: 3)) == [])
        #expect(actions(&e, observe(150, pass: 3)) == [.setDowntimeLimit(seconds: 0.095)])
        // Observed late: every step due since is applied, in order, the last at 1500 s = 0.5 s.
        let catchUp = actions(&e, observe(1500, pass: 3))
        #expect(catchUp.count == 9)
        #expect(catchUp.last == .setDowntimeLimit(seconds: 0.5))
        #expect(actions(&e, observe(1599, pass: 3)) == [])
        // live_migration_timeout_action = force_complete with post-copy permitted: postcopy.
        #expect(actions(&e, observe(1600, pass: 3)) == [.startPostcopy])
    }

    @Test func kubevirtSwitchesAtItsCompletionTimeoutAndAbortsWhenProgressStops() throws {
        // 4 GiB: acceptable completion time 150 s/GiB × 4 = 600 s.
        var e = PolicyEngine(policy: try shipped("kubevirt"), memory: ByteCount(bytes: 4 << 30))
        var remaining: UInt64 = 1_000_000
        #expect(actions(&e, observe(0, remaining: remaining)) == [.setDowntimeLimit(seconds: 0.9)])
        for t in stride(from: 1.0, through: 599, by: 1) {
            remaining -= 1_000
            #expect(actions(&e, observe(t, remaining: remaining)) == [])
        }
        #expect(actions(&e, observe(600, remaining: remaining - 1)) == [.startPostcopy])

        var stuck = PolicyEngine(policy: try shipped("kubevirt"), memory: ByteCount(bytes: 4 << 30))
        _ = actions(&stuck, observe(0, remaining: 500_000))
        #expect(actions(&stuck, observe(149, remaining: 500_000)) == [])
        #expect(actions(&stuck, observe(150, remaining: 500_000)).first?.name == "abort")
        #expect(actions(&stuck, observe(151, remaining: 500_000)) == [])  // once
    }

    @Test func adaptiveSwitchesWhenTheModelSaysPrecopyCannotConverge() throws {
        var e = PolicyEngine(policy: try shipped("adaptive"), memory: ByteCount(bytes: 1 << 30))
        _ = actions(&e, observe(0))
        let converging = Assessment(bandwidthBytesPerSecond: 125e6, converges: true, predictedRemainingSeconds: 1.0,
                                    postcopyRemainingSeconds: 0.99, reason: "converges")
        #expect(actions(&e, observe(5, pass: 2, events: [.passCompleted]), converging) == [])
        // t + 2 s against t + 1 s: precopy would make the whole migration 13–14% longer.
        // With no working set seen yet the model's precopy time is the unbounded case's upper
        // bound: no switch on it; with one, the same figures switch.
        let unbounded = Assessment(bandwidthBytesPerSecond: 125e6, converges: true, predictedRemainingSeconds: 2.0,
                                   postcopyRemainingSeconds: 1.0, reason: "converges in 1 more pass")
        #expect(actions(&e, observe(6, pass: 3, events: [.passCompleted]), unbounded) == [])
        let wasteful = Assessment(bandwidthBytesPerSecond: 125e6, converges: true, predictedRemainingSeconds: 2.0,
                                  postcopyRemainingSeconds: 1.0, workingSetPages: 50_000, reason: "converges in 4 passes")
        #expect(actions(&e, observe(6.5, pass: 4, events: [.passCompleted]), wasteful) == [.startPostcopy])

        var f = PolicyEngine(policy: try shipped("adaptive"), memory: ByteCount(bytes: 1 << 30))
        _ = actions(&f, observe(0))
        let hopeless = Assessment(bandwidthBytesPerSecond: 125e6, converges: false, reason: "dirty rate outruns the link")
        #expect(actions(&f, observe(5, pass: 2, events: [.passCompleted]), hopeless) == [.startPostcopy])
    }

    @Test func recoveryBacksOffOverTheChannelsThenGivesUp() throws {
        var policy = try shipped("adaptive")
        policy.recovery.retries = 3
        policy.recovery.channels = ["tcp:10.0.0.2:4444", "unix:/run/alt.sock"]
        var e = PolicyEngine(policy: policy, memory: ByteCount(bytes: 1 << 30))
        _ = actions(&e, observe(0))
        let paused = observe(10, state: .postcopyPaused, events: [.channelBroken(reason: "EOF")])
        #expect(actions(&e, paused) == [.recover(uri: "tcp:10.0.0.2:4444", afterSeconds: 0.1)])
        #expect(actions(&e, observe(10.05, state: .postcopyPaused)) == [])  // one attempt in flight
        let failed = observe(10.2, state: .postcopyPaused, events: [.recoveryFailed(reason: "refused")], attempts: 1)
        #expect(actions(&e, failed) == [.recover(uri: "unix:/run/alt.sock", afterSeconds: 0.2)])
        #expect(actions(&e, observe(10.5, state: .postcopyPaused, events: [.recoveryFailed(reason: "refused")])) ==
                [.recover(uri: "tcp:10.0.0.2:4444", afterSeconds: 0.4)])
        #expect(actions(&e, observe(11, state: .postcopyPaused, events: [.recoveryFailed(reason: "refused")])) == [])
        #expect(e.gaveUp?.contains("can be recovered by hand") == true)
    }
}

import Foundation
import Migration
import Testing
import Traces
@testable import WhatIf

/// A synthetic trace written to a temporary file and loaded as a workload.
func syntheticWorkload(_ kind: SyntheticWorkload.Kind = .uniform, pages: UInt64, rate: Double, seconds: UInt64 = 30,
                       intervalMilliseconds: UInt64 = 50, initiallyZero: Bool = false, seed: UInt64 = 1) throws -> TraceWorkload {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-whatif-\(UUID().uuidString).trace").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try SyntheticTrace.write(.init(kind: kind, pages: pages, writesPerSecond: rate, seed: seed), durationNanoseconds: seconds * 1_000_000_000,
                             intervalNanoseconds: intervalMilliseconds * 1_000_000, initiallyZero: initiallyZero, to: path)
    return try TraceWorkload(path: path)
}

/// A trace of `pages` pages (every one holding data at the start) whose intervals write
/// `intervals`, loaded as a workload.
func scriptedWorkload(pages: UInt64, intervalSeconds: Double, intervals: [[PageRange]]) throws -> TraceWorkload {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-whatif-\(UUID().uuidString).trace").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let writer = try TraceWriter(path: path, header: TraceHeader(pageCount: pages, intervalNanoseconds: UInt64(intervalSeconds * 1e9)))
    for written in intervals { try writer.append(written: written) }
    try writer.finish()
    return try TraceWorkload(path: path)
}

/// Observes until `stop` holds for an observation (or the migration finishes).
func run(_ sim: SimulatedMigration, step: Double = 1, until stop: (Observation) -> Bool, limit: Double = 600) throws -> Observation {
    while true {
        let o = try sim.nextObservation(within: step)
        if stop(o) || o.status.state.isFinished || o.status.elapsedSeconds > limit { return o }
    }
}

@Suite struct SimulatedMigrationTests {
    let pageCost = 4096.0 + 8

    @Test func firstPassTakesWOverBAndLeavesTheClosedFormBehind() throws {
        // W pages written uniformly at r pages/s; a link of B pages/s: pass 1 ends at W/B with
        // W (1 − e^(−r t₁/W)) distinct pages dirtied meanwhile.
        let w = 20_000.0, r = 10_000.0, b = 16_000.0
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: UInt64(w), rate: r), link: LinkModel(bandwidthBytesPerSecond: b * pageCost))
        try sim.start()
        try sim.setDowntimeLimit(seconds: 0.000_001)
        let o = try run(sim) { $0.events.contains(.passCompleted) }
        let t1 = w / b
        #expect(abs(o.status.elapsedSeconds - t1) / t1 < 0.03, "pass 1 ended at \(o.status.elapsedSeconds) s, expected \(t1)")
        let left = w * (1 - exp(-r * t1 / w))
        #expect(abs(Double(o.status.remainingPages) - left) / left < 0.05, "\(o.status.remainingPages) pages left, expected \(left)")
        #expect(o.status.pass == 2)
    }

    @Test func aWriterFasterThanTheLinkIsRefusedAtEveryExactSync() throws {
        // QEMU's loop: the estimate (what is left of the pass) falls under the threshold at the
        // end of every pass, the exact sync then finds the pages dirtied meanwhile: refused.
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 50_000, rate: 40_000), link: LinkModel(bandwidthBytesPerSecond: 10_000 * pageCost))
        try sim.start()
        var refusals = 0
        while sim.status.elapsedSeconds < 60 {
            let o = try sim.nextObservation(within: 1)
            if o.events.contains(.pendingBelowThreshold) {
                #expect(try sim.complete(maxPendingPages: sim.thresholdPages) == false)
                refusals += 1
            }
        }
        #expect(refusals > 3)
        #expect(sim.status.state == .active)
    }

    @Test func stopAndCopyTakesPendingOverBandwidthPlusARoundTrip() throws {
        // QEMU's mechanics alone: the switch's own work (SwitchoverCost) is tested below.
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 10_000, rate: 2_000),
                                     link: LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost, roundTripSeconds: 0.002, switchoverCost: .none))
        try sim.start()
        var before = 0.0, pending: UInt64 = 0
        for _ in 0..<20 where sim.status.state == .active {
            let o = try run(sim) { $0.events.contains(.pendingBelowThreshold) }
            #expect(o.status.remainingPages <= sim.thresholdPages)
            before = sim.status.elapsedSeconds
            pending = sim.status.remainingPages + sim.status.dirtyPagesSinceSync  // an upper bound of what the sync finds
            if try sim.complete(maxPendingPages: sim.thresholdPages) { break }
        }
        #expect(sim.remainingAtSwitch == nil)  // not a postcopy
        let downtime = try #require(sim.downtime)
        #expect(downtime <= Double(pending) / 20_000 + 0.002 + 1e-9)
        #expect(downtime <= 0.3 + 0.002 + 1e-9)
        #expect(abs(sim.status.elapsedSeconds - before - downtime) < 1e-9)
        #expect(sim.status.state == .completed)
        #expect(throws: SimulationError.self) { try sim.startPostcopy() }
    }

    @Test func completionIsRefusedWhenTheExactSyncFindsTooMuch() throws {
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 50_000, rate: 20_000), link: LinkModel(bandwidthBytesPerSecond: 30_000 * pageCost))
        try sim.start()
        _ = try sim.nextObservation(within: 0.5)
        #expect(try sim.complete(maxPendingPages: 10) == false)
        let o = try sim.nextObservation(within: 0.001)
        #expect(o.events.contains { if case .completionRefused = $0 { true } else { false } })
        #expect(o.status.state == .active)
    }

    @Test func aPassGoesOnFromWhereItWasAfterARefusedCompletion() throws {
        // 1,000 pages at 1,000 pages/s; the guest writes pages 0..<100 at 0–0.05 s and again at
        // 0.30–0.35 s. Refused at 0.25 s (pass 1 at page 250), the pass goes on at 250, as
        // QEMU's does: at 0.40 s it has sent 250..<400, and 0..<100 wait once, 700 pages in
        // all. Begun again at page 0 it would have sent 0..<100 just before the guest wrote
        // them again, and 800 would be left.
        var intervals = Array(repeating: [PageRange](), count: 20)
        intervals[0] = [PageRange(start: 0, count: 100)]
        intervals[6] = [PageRange(start: 0, count: 100)]
        let sim = SimulatedMigration(workload: try scriptedWorkload(pages: 1_000, intervalSeconds: 0.05, intervals: intervals),
                                     link: LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost))
        try sim.start()
        try sim.setDowntimeLimit(seconds: 0.000_001)
        func observe(until t: Double) throws {
            while sim.status.elapsedSeconds < t - 1e-9 { _ = try sim.nextObservation(within: t - sim.status.elapsedSeconds) }
        }
        try observe(until: 0.25)
        #expect(try sim.complete(maxPendingPages: 0) == false)
        try observe(until: 0.40)
        #expect(try sim.complete(maxPendingPages: 0) == false)
        #expect(abs(Double(sim.status.remainingPages) - 700) <= 2, "\(sim.status.remainingPages) pages pending at 0.40 s")
    }

    @Test func zeroPagesCostOnlyTheirHeader() throws {
        let zero = SimulatedMigration(workload: try syntheticWorkload(pages: 10_000, rate: 0, initiallyZero: true), link: LinkModel(bandwidthBytesPerSecond: 1e6))
        try zero.start()
        let o = try run(zero) { $0.events.contains(.passCompleted) }
        #expect(abs(o.status.elapsedSeconds - 10_000 * 8 / 1e6) < 1e-6)
        #expect(o.status.transferredBytes == 80_000)
    }

    @Test func postcopyFaultsPagesTheGuestTouchesFirstAndFinishes() throws {
        let sim = SimulatedMigration(workload: try syntheticWorkload(.hotset, pages: 40_000, rate: 30_000),
                                     link: LinkModel(bandwidthBytesPerSecond: 10_000 * pageCost, roundTripSeconds: 0.001))
        try sim.start()
        _ = try run(sim) { $0.events.contains(.passCompleted) }
        try sim.startPostcopy()
        let remaining = try #require(sim.remainingAtSwitch)
        #expect(remaining > 1000)
        let o = try run(sim) { _ in false }
        #expect(o.status.state == .completed)
        #expect(sim.remoteFaults > 0)
        #expect(sim.remoteFaults < remaining)
        let postcopy = try #require(sim.postcopyDoneTime) - sim.switchTime!
        // Faulted pages go too, so postcopy takes about remaining/B, never much less.
        #expect(postcopy > Double(remaining) / 10_000 * 0.9)
        #expect(postcopy < Double(remaining) / 10_000 * 1.1 + 0.1)
    }

    @Test func aBrokenChannelPausesPostcopyUntilARecoverySucceeds() throws {
        let link = LinkModel(bandwidthBytesPerSecond: 10_000 * pageCost, roundTripSeconds: 0.001,
                             failures: [.init(atSeconds: 4.5, forSeconds: 1.0)])
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 40_000, rate: 30_000), link: link)
        try sim.start()
        _ = try run(sim, step: 0.1) { $0.status.elapsedSeconds >= 4.2 }
        try sim.startPostcopy()
        var o = try run(sim) { $0.status.state == .postcopyPaused }
        #expect(o.events.contains(.channelBroken(reason: "link down")))
        #expect(abs(o.status.elapsedSeconds - 4.5) < 1e-9)
        try sim.recover(uri: "tcp:alt", after: 0.2)  // still down at 4.7 s
        o = try run(sim) { !$0.events.isEmpty }
        #expect(o.events == [.recoveryFailed(reason: "the channel is still down")])
        try sim.recover(uri: "tcp:alt", after: 1.0)  // up again at 5.7 s
        o = try run(sim) { $0.events.contains(.recovered) }
        #expect(o.status.state == .postcopyActive)
        #expect(sim.recoveries == 1)
        #expect(abs(sim.pausedSeconds - 1.2) < 0.01, "paused \(sim.pausedSeconds) s")
        o = try run(sim) { _ in false }
        #expect(o.status.state == .completed)
    }

    @Test func aBrokenChannelInPrecopyFailsTheMigrationAndLosesNothing() throws {
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, failures: [.init(atSeconds: 2, forSeconds: 1)])
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 10_000, rate: 100), link: link)
        try sim.start()
        let o = try run(sim) { _ in false }
        #expect(o.status.state == .failed)
        #expect(o.status.elapsedSeconds == 2)
        #expect(sim.failureReason?.contains("keeps running on the source") == true)
    }

    @Test func anIntervalsWritesAreSpreadOverItInAddressOrder() throws {
        // One 1 s interval writing pages 0 ..< 10,000 over a link that does not finish pass 1
        // meanwhile: a quarter of the way through, a quarter of them are dirty — as the engine's
        // replay writes them — not none until the interval ends.
        let workload = try scriptedWorkload(pages: 40_000, intervalSeconds: 1, intervals: [[PageRange(start: 0, count: 10_000)]])
        let sim = SimulatedMigration(workload: workload, link: LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost))
        try sim.start()
        var o = try run(sim, step: 0.25) { $0.status.elapsedSeconds >= 0.25 - 1e-9 }
        #expect(o.status.dirtyPagesSinceSync == 2_500)
        o = try run(sim, step: 0.25) { $0.status.elapsedSeconds >= 0.75 - 1e-9 }
        #expect(o.status.dirtyPagesSinceSync == 7_500)
        o = try run(sim, step: 0.25) { $0.status.elapsedSeconds >= 1.25 - 1e-9 }
        #expect(o.status.dirtyPagesSinceSync == 10_000, "the trace loops: its one interval again, the same pages")
    }

    @Test func theStopAndCopyRunsAtTheSwitchoverRateNotAtTheCap() throws {
        // Precopy capped at 1,000 pages/s on a link whose switchover runs at 50,000 pages/s:
        // the guest stops for pending/50,000 s (QEMU flushes the final copy regardless of its
        // rate limit), not pending/1,000.
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, switchoverBytesPerSecond: 50_000 * pageCost, roundTripSeconds: 0.001,
                             switchoverCost: .none)
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 10_000, rate: 0), link: link)
        try sim.start()
        _ = try run(sim, step: 0.5) { $0.status.elapsedSeconds >= 2 - 1e-9 }
        let pending = sim.status.remainingPages
        #expect(pending == 8_000)
        #expect(try sim.complete(maxPendingPages: nil))
        let downtime = try #require(sim.downtime)
        #expect(abs(downtime - (Double(pending) / 50_000 + 0.001)) < 1e-9, "\(downtime) s")
    }

    @Test func postcopyCannotOutrunTheLinkWhenTheGuestTouchesEverythingAtOnce() throws {
        // Every page written each 100 ms interval (numpy's sweeps): after the switch every page
        // the guest touches is missing, so it faults on each in turn and waits for each (a round
        // trip and the page): stalled all through postcopy, which still ends when the link has
        // carried every page — faulted pages are paid on the link, not forgiven.
        let pages: UInt64 = 20_000
        let workload = try scriptedWorkload(pages: pages, intervalSeconds: 0.1, intervals: [[PageRange(start: 0, count: pages)]])
        let sim = SimulatedMigration(workload: workload, link: LinkModel(bandwidthBytesPerSecond: 10_000 * pageCost))
        try sim.start()
        _ = try run(sim, step: 0.1) { $0.status.elapsedSeconds >= 0.5 - 1e-9 }
        try sim.startPostcopy()
        let remaining = Double(try #require(sim.remainingAtSwitch))
        #expect(remaining > 19_000)
        _ = try run(sim, step: 0.1) { _ in false }
        let postcopy = try #require(sim.postcopyDoneTime) - sim.switchTime!
        #expect(abs(postcopy - remaining / 10_000) < 0.02, "postcopy took \(postcopy) s for \(remaining) pages at 10,000 pages/s")
        // Stalled nearly all along (pages the push brought first cost no wait); one word of
        // faults (at most 64 pages) may still be waited on when postcopy ends.
        let perFault = 0.001 + 1.0 / 10_000
        #expect(sim.faultStallSeconds >= 0.9 * postcopy && sim.faultStallSeconds <= postcopy + 64 * perFault,
                "stalled \(sim.faultStallSeconds) s of \(postcopy) s")
        #expect(sim.remoteFaults > 1_000, "\(sim.remoteFaults) faults")
    }

    @Test func aStopAndCopyPaysItsPendingPagesInTheDowntimeAndItsStampCheckAfterIt() throws {
        // 8,000 data pages pending of a 10,000-page guest: the pages and every page's stamp at
        // the switchover rate, a round trip and the fixed part until the destination's guest
        // runs; then, before the verdict completes the migration, its check of all 10,000 pages.
        let work = SwitchoverCost(fixedSeconds: 0.004, checkSecondsPerPage: 25e-9,
                                  postcopyFixedSeconds: 1, secondsPerStaleRun: 1, stampBytesPerPage: 8)
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, switchoverBytesPerSecond: 50_000 * pageCost, roundTripSeconds: 0.001,
                             switchoverCost: work)
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 10_000, rate: 0), link: link)
        try sim.start()
        _ = try run(sim, step: 0.5) { $0.status.elapsedSeconds >= 2 - 1e-9 }
        let (before, stopped) = (sim.status.transferredBytes, sim.status.elapsedSeconds)
        #expect(try sim.complete(maxPendingPages: nil))
        let wire = (8_000 * pageCost + 10_000 * 8) / (50_000 * pageCost)
        let expected = wire + 0.001 + 0.004
        let downtime = try #require(sim.downtime)
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s (postcopy's terms and the check must not count)")
        let completion = sim.status.elapsedSeconds - stopped
        #expect(abs(completion - (expected + 10_000 * 25e-9)) < 1e-9, "\(completion) s from the stop to the verdict")
        #expect(sim.status.transferredBytes - before == UInt64(8_000 * pageCost + 10_000 * 8))
    }

    @Test func aStopAndCopyChecksOnlyThePagesTheDestinationHoldsDataIn() throws {
        // A guest of 10,000 zero pages and a check of 1 ms a page: the destination never wrote
        // any page, so it checks none (the engine skips pages nothing wrote there).
        let work = SwitchoverCost(fixedSeconds: 0.004, checkSecondsPerPage: 0.001, stampBytesPerPage: 8)
        let link = LinkModel(bandwidthBytesPerSecond: 1e6, switchoverBytesPerSecond: 1e8, roundTripSeconds: 0.001, switchoverCost: work)
        let sim = SimulatedMigration(workload: try syntheticWorkload(pages: 10_000, rate: 0, initiallyZero: true), link: link)
        try sim.start()
        _ = try run(sim, step: 0.01) { $0.status.elapsedSeconds >= 0.04 - 1e-9 }
        let pending = Double(sim.status.remainingPages), stopped = sim.status.elapsedSeconds
        #expect(pending > 0 && pending < 10_000)
        #expect(try sim.complete(maxPendingPages: nil))
        let expected = (pending * 8 + 10_000 * 8) / 1e8 + 0.001 + 0.004
        let downtime = try #require(sim.downtime)
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s")
        #expect(abs(sim.status.elapsedSeconds - stopped - expected) < 1e-9, "no page checked after the downtime either")
    }

    @Test func aSourceThatCountsOnlyAtSyncsShowsNothingInPassOneThenItsRateOverTime() throws {
        // 1,000 pages/s over pages 0 ..< 100 of 10,000 at a link of 1,000 pages/s: pass 1 takes
        // about 10 s and dirties all 100 (the rate at its sync: about 10 pages/s).
        let workload = try scriptedWorkload(pages: 10_000, intervalSeconds: 0.1,
                                            intervals: Array(repeating: [PageRange(start: 0, count: 100)], count: 10))
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, switchoverCost: .none, dirtyCounts: .atSyncOnly)
        let sim = SimulatedMigration(workload: workload, link: link)
        try sim.start()
        let early = try run(sim, step: 0.5) { $0.status.elapsedSeconds >= 2 }
        #expect(early.status.dirtyPagesSinceSync == 0 && early.status.secondsSinceSync == 0, "\(early.status)")
        let afterSync = try run(sim, step: 0.02) { $0.status.pass == 2 && $0.status.secondsSinceSync > 0.03 }
        let s = afterSync.status
        #expect(s.dirtyPagesRate > 9 && s.dirtyPagesRate < 11, "\(s)")
        #expect(s.dirtyPagesSinceSync == UInt64(s.dirtyPagesRate * s.secondsSinceSync), "\(s)")
    }

    /// Pass 1 of a 10,000-page guest at 1,000 pages/s (switchover 50,000 pages/s, 1 ms RTT)
    /// for 2 s, then the stop: its downtime.
    private func stopAfterTwoSeconds(_ workload: TraceWorkload, _ work: SwitchoverCost) throws -> Double {
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, switchoverBytesPerSecond: 50_000 * pageCost, roundTripSeconds: 0.001,
                             switchoverCost: work)
        let sim = SimulatedMigration(workload: workload, link: link)
        try sim.start()
        _ = try run(sim, step: 0.5) { $0.status.elapsedSeconds >= 2 - 1e-9 }
        #expect(try sim.complete(maxPendingPages: nil))
        return try #require(sim.downtime)
    }

    @Test func aStopAndCopyPaysTheFirstTouchOfPagesTheDestinationHasNotReceivedYet() throws {
        // Every 0.1 s interval rewrites pages 0 ..< 100; pass 1 has sent pages 0 ..< 2,000 by
        // 2 s. The stop sends 8,100 pages: 100 rewritten ones that landed before (no first
        // touch) and 8,000 that land on fresh memory.
        let workload = try scriptedWorkload(pages: 10_000, intervalSeconds: 0.1,
                                            intervals: Array(repeating: [PageRange(start: 0, count: 100)], count: 40))
        let work = SwitchoverCost(fixedSeconds: 0.004, checkSecondsPerPage: 25e-9, stampBytesPerPage: 8, firstTouchSecondsPerPage: 2e-6)
        let downtime = try stopAfterTwoSeconds(workload, work)
        let expected = (8_100 * pageCost + 10_000 * 8) / (50_000 * pageCost) + 0.001 + 0.004 + 8_000 * 2e-6
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s")
    }

    @Test func aStopAndCopyPaysOncePerRunOfPendingPages() throws {
        // Every 0.1 s interval rewrites pages 0, 2, 4, …, 98; pass 1 has sent pages 0 ..< 2,000
        // by 2 s. The stop sends 8,050 pages in 51 runs: the 50 rewritten pages, each its own
        // run, and the unsent 2,000 ..< 10,000.
        let written = (0..<50).map { PageRange(start: UInt64(2 * $0), count: 1) }
        let workload = try scriptedWorkload(pages: 10_000, intervalSeconds: 0.1, intervals: Array(repeating: written, count: 40))
        let downtime = try stopAfterTwoSeconds(workload, SwitchoverCost(fixedSeconds: 0.004, secondsPerPendingRun: 10e-6, stampBytesPerPage: 8))
        let expected = (8_050 * pageCost + 10_000 * 8) / (50_000 * pageCost) + 0.001 + 0.004 + 51 * 10e-6
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s")
    }

    @Test func flushingAheadLeavesTheStopOnlyWhatTheGuestWritesMeanwhile() throws {
        // As above, pages 0 ..< 100 rewritten every 0.1 s interval and pass 1 at pages
        // 0 ..< 2,000 by 2 s: 8,100 pages pending in 2 runs, 8,000 of them fresh. They go at
        // the switchover rate with the guest running (162 ms, a round trip, the runs and the
        // first touches: 179 ms), which rewrites all of 0 ..< 100 meanwhile: the stop sends
        // that one run.
        let workload = try scriptedWorkload(pages: 10_000, intervalSeconds: 0.1,
                                            intervals: Array(repeating: [PageRange(start: 0, count: 100)], count: 40))
        let work = SwitchoverCost(fixedSeconds: 0.004, secondsPerPendingRun: 10e-6, flushesAhead: true, stampBytesPerPage: 8,
                                  firstTouchSecondsPerPage: 2e-6)
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, switchoverBytesPerSecond: 50_000 * pageCost, roundTripSeconds: 0.001,
                             switchoverCost: work)
        let sim = SimulatedMigration(workload: workload, link: link)
        try sim.start()
        _ = try run(sim, step: 0.5) { $0.status.elapsedSeconds >= 2 - 1e-9 }
        let before = sim.status.elapsedSeconds
        #expect(try sim.complete(maxPendingPages: nil))
        let flush = 8_100 * pageCost / (50_000 * pageCost) + 0.001 + 2 * 10e-6 + 8_000 * 2e-6
        let stop = (100 * pageCost + 10_000 * 8) / (50_000 * pageCost) + 0.001 + 0.004 + 10e-6
        let downtime = try #require(sim.downtime)
        #expect(abs(downtime - stop) < 1e-9, "\(downtime) s, expected \(stop) s")
        #expect(abs(sim.status.elapsedSeconds - before - flush - stop) < 1e-9, "the flush is in the total time")
        // Passes already at the switchover rate: nothing to gain, every pending page at the stop.
        let uncapped = SimulatedMigration(workload: workload, link: LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, roundTripSeconds: 0.001,
                                                                             switchoverCost: work))
        try uncapped.start()
        _ = try run(uncapped, step: 0.5) { $0.status.elapsedSeconds >= 2 - 1e-9 }
        #expect(try uncapped.complete(maxPendingPages: nil))
        #expect(try #require(uncapped.downtime) > 8)
    }

    /// Pass 1 at 1,000 pages/s (switchover 40,000 pages/s, 1 ms RTT) until `seconds`, then the
    /// switch: the stale pages and the switch's downtime.
    private func switchToPostcopy(at seconds: Double, _ workload: TraceWorkload, _ work: SwitchoverCost) throws -> (UInt64, Double) {
        let link = LinkModel(bandwidthBytesPerSecond: 1_000 * pageCost, switchoverBytesPerSecond: 40_000 * pageCost, roundTripSeconds: 0.001,
                             switchoverCost: work)
        let sim = SimulatedMigration(workload: workload, link: link)
        try sim.start()
        _ = try run(sim, step: 0.05) { $0.status.elapsedSeconds >= seconds - 1e-9 }
        try sim.startPostcopy()
        return (try #require(sim.remainingAtSwitch), try #require(sim.downtime))
    }

    @Test func aSwitchToPostcopyPaysItsFixedPartsAndOneDropPerStaleRun() throws {
        // Every 0.1 s interval writes pages 0, 2, 4, …, 98 of a 1,000-page guest; at 1,000
        // pages/s pass 1 has sent pages 0 ..< 350 by 0.35 s. The stale pages are then the 50
        // written ones (each its own run) and the unsent 350 ..< 1,000 (one run): 51 drops.
        let written = (0..<50).map { PageRange(start: UInt64(2 * $0), count: 1) }
        let workload = try scriptedWorkload(pages: 1_000, intervalSeconds: 0.1, intervals: [written])
        let work = SwitchoverCost(fixedSeconds: 0.004, checkSecondsPerPage: 1,
                                  postcopyFixedSeconds: 0.003, secondsPerStaleRun: 5e-6, stampBytesPerPage: 8)
        let (remaining, downtime) = try switchToPostcopy(at: 0.35, workload, work)
        #expect((690...710).contains(remaining), "\(remaining) pages stale (about 350 sent, 50 rewritten)")
        let wire = (51 * 16 + 1_000 * 8) / (40_000 * pageCost)
        let expected = wire + 0.001 + 0.004 + 0.003 + 51 * 5e-6
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s (the stop-and-copy's terms must not count)")
    }

    @Test func aSwitchToPostcopyPaysForEachStalePageTheDestinationHolds() throws {
        // Every 0.1 s interval rewrites pages 0 ..< 100 of a 1,000-page guest; by 0.35 s pass 1
        // has sent about 0 ..< 350. Stale: 0 ..< 100, held by the destination, and the unsent
        // rest, which it never received: two runs, 100 held pages to free.
        let workload = try scriptedWorkload(pages: 1_000, intervalSeconds: 0.1,
                                            intervals: Array(repeating: [PageRange(start: 0, count: 100)], count: 10))
        let work = SwitchoverCost(postcopyFixedSeconds: 0.003, secondsPerStaleRun: 5e-6, secondsPerStalePage: 7e-6)
        let (remaining, downtime) = try switchToPostcopy(at: 0.35, workload, work)
        #expect((750...760).contains(remaining), "\(remaining) pages stale (100 rewritten, about 650 unsent)")
        let expected = 2.0 * 16 / (40_000 * pageCost) + 0.001 + 0.003 + 2 * 5e-6 + 100 * 7e-6
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s")
    }

    @Test func listeningAheadLeavesTheDowntimeOnlyWhatTheGuestWritesMeanwhile() throws {
        // Pages 0, 2, …, 98 of a 1,000-page guest are written in the first four 0.1 s
        // intervals, then pages 100 ..< 150 in each one after. At 0.35 s pass 1 has sent about
        // 0 ..< 350: the listen drops those 50 and the unsent rest (51 runs at 2 ms: ≈ 103 ms
        // with its round trip) while the guest goes on, and writes the first half or so of
        // 100 ..< 150, sent and clean until then: the stop lists only that one run.
        let even = (0..<50).map { PageRange(start: UInt64(2 * $0), count: 1) }
        let workload = try scriptedWorkload(pages: 1_000, intervalSeconds: 0.1,
                                            intervals: Array(repeating: even, count: 4) + Array(repeating: [PageRange(start: 100, count: 50)], count: 6))
        let work = SwitchoverCost(fixedSeconds: 0.004, postcopyFixedSeconds: 0.003, listensAhead: true, secondsPerStaleRun: 2e-3,
                                  secondsPerStalePage: 1e-4, stampBytesPerPage: 8)
        let (remaining, downtime) = try switchToPostcopy(at: 0.35, workload, work)
        let base = (16 + 1_000 * 8) / (40_000 * pageCost) + 0.001 + 0.004 + 0.003 + 2e-3
        let held = (downtime - base) / 1e-4
        #expect(abs(held - held.rounded()) < 1e-6 && (20...30).contains(Int(held.rounded())),
                "\(downtime) s: \(held) held pages over one run past \(base) s")
        #expect((720...740).contains(remaining), "\(remaining) pages to push: about 700 dropped ahead and \(held) at the stop")
        // Without listening ahead all 51 runs (and the 50 held pages) are dropped in the downtime.
        var inPause = work
        inPause.listensAhead = false
        let (_, longer) = try switchToPostcopy(at: 0.35, workload, inPause)
        #expect(abs(longer - ((51 * 16 + 1_000 * 8) / (40_000 * pageCost) + 0.001 + 0.004 + 0.003 + 51 * 2e-3 + 50 * 1e-4)) < 1e-9, "\(longer) s")
    }

    @Test func longStaleRunsAreMovedOutAsTheEngineDoes() throws {
        // A 40,000-page guest rewrites 0 ..< 17,000 every interval; by 20.35 s pass 1 has sent
        // about 0 ..< 20,350. Stale: 0 ..< 17,000 (held) and the unsent rest (not held): two
        // long runs holding enough pages to be moved (StaleRunDrop.auto), not dropped.
        let workload = try scriptedWorkload(pages: 40_000, intervalSeconds: 0.1,
                                            intervals: Array(repeating: [PageRange(start: 0, count: 17_000)], count: 10))
        let work = SwitchoverCost(postcopyFixedSeconds: 0.003, secondsPerStaleRun: 1, secondsPerStalePage: 1,
                                  secondsPerMovedRun: 5e-6, secondsPerMovedPage: 7e-8, moveFixedSeconds: 0.002)
        let (remaining, downtime) = try switchToPostcopy(at: 20.35, workload, work)
        #expect((36_500...36_900).contains(remaining), "\(remaining) pages stale (17,000 rewritten, about 19,700 unsent)")
        let expected = 2.0 * 16 / (40_000 * pageCost) + 0.001 + 0.003 + 0.002 + 2 * 5e-6 + 17_000 * 7e-8
        #expect(abs(downtime - expected) < 1e-9, "\(downtime) s, expected \(expected) s")
    }
}

import Migration
import Testing
@testable import Policies

/// Nova's rising downtime and the recovery back-off.
@Suite struct ScheduleTests {
    static func seconds(_ schedule: [(at: TimeSpan, limit: TimeSpan)]) -> [Double] { schedule.map(\.at.seconds) }
    static func milliseconds(_ schedule: [(at: TimeSpan, limit: TimeSpan)]) -> [Int64] {
        schedule.map { $0.limit.nanoseconds / 1_000_000 }
    }

    /// The example in the docstring of downtime_steps() in nova/virt/libvirt/migration.py:
    /// 10 steps, 30 s delay, 3 GB of RAM, 400 ms maximum downtime.
    @Test func novasDocumentedExample() {
        let schedule = DowntimeSteps(max: ms(400), steps: 10, delayPerGiB: s(30)).schedule(dataGiB: 3)
        #expect(Self.seconds(schedule) == [0, 90, 180, 270, 360, 450, 540, 630, 720, 810, 900])
        #expect(Self.milliseconds(schedule) == [40, 76, 112, 148, 184, 220, 256, 292, 328, 364, 400])
    }

    /// Nova's defaults (500 ms, 10 steps, 75 s) for a small guest, counted as 2 GiB.
    @Test func novasDefaultsForTheSmallestGuest() throws {
        let nova = try ShippedPoliciesTests.shipped("nova")
        let steps = try #require(nova.downtimeSteps)
        let schedule = steps.schedule(dataGiB: nova.dataGiB(memory: ByteCount(bytes: 512 << 20)))
        #expect(Self.seconds(schedule) == [0, 150, 300, 450, 600, 750, 900, 1050, 1200, 1350, 1500])
        #expect(Self.milliseconds(schedule) == [50, 95, 140, 185, 230, 275, 320, 365, 410, 455, 500])
    }

    /// Nova truncates: int(base + offset·i) milliseconds.
    @Test func limitsAreTruncatedToWholeMilliseconds() {
        let schedule = DowntimeSteps(max: ms(100), steps: 3, delayPerGiB: s(3)).schedule(dataGiB: 2.5)
        #expect(Self.milliseconds(schedule) == [33, 55, 77, 100])
        #expect(Self.seconds(schedule) == [0, 7.5, 15, 22.5])
    }

    @Test func dataIsAtLeastTheMinimum() {
        var p = Policy(name: "x")
        #expect(p.dataGiB(memory: ByteCount(bytes: 1 << 29)) == 0.5)
        p.timeouts.minimumGiB = 2
        #expect(p.dataGiB(memory: ByteCount(bytes: 1 << 29)) == 2)
        #expect(p.dataGiB(memory: ByteCount(bytes: 3 << 30)) == 3)
        #expect(p.completionTimeout(memory: ByteCount(bytes: 3 << 30)) == nil)
    }

    @Test func defaultBackoffDoublesFrom200msUpTo5s() {
        let b = Backoff()
        #expect((1...8).map { b.delay(attempt: $0) } == [ms(200), ms(400), ms(800), ms(1600), ms(3200), s(5), s(5), s(5)])
    }

    @Test func adaptiveBackoff() throws {
        let b = try ShippedPoliciesTests.shipped("adaptive").recovery.backoff
        #expect((1...8).map { b.delay(attempt: $0) } == [ms(100), ms(200), ms(400), ms(800), ms(1600), s(2), s(2), s(2)])
    }

    @Test func backoffEdges() {
        #expect(Backoff().delay(attempt: 0) == ms(200))
        #expect(Backoff().delay(attempt: -3) == ms(200))
        #expect(Backoff().delay(attempt: Int.max) == s(5))
        #expect(Backoff(initial: ms(300), factor: 1, max: s(1)).delay(attempt: 1_000_000) == ms(300))
        #expect(Backoff(initial: ms(100), factor: 1.5, max: s(10)).delay(attempt: 3) == ms(225))
    }
}

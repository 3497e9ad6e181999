import Testing
import Traces
@testable import MigrationEngine

/// A scattered set: single pages, a run crossing a 64-page word, a long run spanning words,
/// the first and the last page.
private let scattered: [PageRange] = [
    PageRange(start: 0, count: 1), PageRange(start: 5, count: 1), PageRange(start: 60, count: 8),
    PageRange(start: 127, count: 2), PageRange(start: 300, count: 200), PageRange(start: 777, count: 1),
    PageRange(start: 1023, count: 1),
]

private func write(_ ranges: [PageRange], in memory: GuestMemory, value: UInt8 = 1) {
    for r in ranges {
        for page in r.start..<r.end { memory.pointer(page: page).storeBytes(of: value, toByteOffset: 100, as: UInt8.self) }
    }
}

/// The three trackers: async, synchronous, synchronous with the region populated at start.
func trackers(_ memory: GuestMemory) throws -> [any DirtyTracker] {
    [try AsyncWriteProtectTracker(memory: memory), try SyncWriteProtectTracker(memory: memory),
     try SyncWriteProtectTracker(memory: memory, unpopulatedMarkers: false)]
}

@Suite struct GuestTrackerTests {
    @Test func asyncWriteProtectIsOfferedHere() {
        #expect(AsyncWriteProtectTracker.isSupported())
    }

    @Test(arguments: 0..<3)
    func reportsExactlyThePagesWrittenBetweenCollects(kind: Int) throws {
        let memory = try GuestMemory(bytes: 1024 * 4096)
        // Half the memory was touched before tracking starts; the rest never was (WP_UNPOPULATED).
        write([PageRange(start: 0, count: 512)], in: memory)
        let tracker = try trackers(memory)[kind]
        try tracker.start()
        defer { tracker.stop() }
        #expect(try tracker.collect() == [], "\(tracker.mechanism)")
        write(scattered, in: memory)
        #expect(try tracker.collect() == scattered, "\(tracker.mechanism)")
        #expect(try tracker.collect() == [], "nothing written since: \(tracker.mechanism)")
        // Written again after a collect: reported again (the collect re-armed them).
        write([PageRange(start: 60, count: 8), PageRange(start: 1023, count: 1)], in: memory, value: 2)
        write([PageRange(start: 61, count: 1)], in: memory, value: 3)
        #expect(try tracker.collect() == [PageRange(start: 60, count: 8), PageRange(start: 1023, count: 1)])
    }

    @Test(arguments: 0..<3)
    func clearForgetsOnlyItsRangeAndRearmsIt(kind: Int) throws {
        let memory = try GuestMemory(bytes: 1024 * 4096)
        let tracker = try trackers(memory)[kind]
        try tracker.start()
        defer { tracker.stop() }
        write(scattered, in: memory)
        // 60..<68 straddles the cleared range's start; 300..<500 straddles its end.
        try tracker.clear(PageRange(start: 64, count: 336))
        #expect(try tracker.collect() == [PageRange(start: 0, count: 1), PageRange(start: 5, count: 1), PageRange(start: 60, count: 4),
                                           PageRange(start: 400, count: 100), PageRange(start: 777, count: 1),
                                           PageRange(start: 1023, count: 1)], "\(tracker.mechanism)")
        // Written after the clear: reported (the clear re-armed what it forgot).
        write([PageRange(start: 127, count: 2)], in: memory, value: 2)
        #expect(try tracker.collect() == [PageRange(start: 127, count: 2)], "\(tracker.mechanism)")
    }

    @Test func collectLoopsWhenTheVectorFills() throws {
        // Every other page written: 2,048 separate runs, more than one scan vector holds.
        let memory = try GuestMemory(bytes: 4096 * 4096)
        let tracker = try AsyncWriteProtectTracker(memory: memory)
        try tracker.start()
        defer { tracker.stop() }
        let every2 = (0..<UInt64(2048)).map { PageRange(start: $0 * 2, count: 1) }
        write(every2, in: memory)
        #expect(try tracker.collect() == every2)
        #expect(try tracker.collect() == [])
    }

    @Test func bestNamesWhatItChose() throws {
        let memory = try GuestMemory(bytes: 64 * 4096)
        let best = try DirtyTracking.best(for: memory)
        #expect(best.message == "dirty tracking: userfaultfd write-protect (async) + PAGEMAP_SCAN")
        #expect(best.tracker is AsyncWriteProtectTracker)
        let fallback = try DirtyTracking.best(for: memory, allowAsync: false)
        #expect(fallback.message == "dirty tracking: userfaultfd write-protect (synchronous faults on a handler thread)")
        #expect(fallback.tracker is SyncWriteProtectTracker)
    }

    /// While writer threads run: the union of the collects, after a pause and a last collect,
    /// is exactly the set of pages the guest wrote — none missed between two collects.
    @Test(arguments: 0..<2)
    func collectsMissNoWriteOfARunningGuest(kind: Int) throws {
        let memory = try GuestMemory(bytes: 64 << 20)
        let tracker = try trackers(memory)[kind]
        try tracker.start()
        defer { tracker.stop() }
        let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "zipf:rate=40000,seed=5"),
                                                          try GuestWorkload(parsing: "uniform:rate=20000,seed=6")])
        try guest.start()
        defer { guest.stop() }
        var reported = PageBitmap(pages: memory.pageCount)
        var collects = 0
        func writtenPages() -> PageBitmap {
            var written = PageBitmap(pages: memory.pageCount)
            for page in 0..<memory.pageCount where guest.lastSequence(page: page) > 0 { _ = written.insert(page) }
            return written
        }
        // At least 300 ms, 21 collects and 3,000 distinct pages written: a loaded machine (or the
        // synchronous tracker's fault per first write) slows the writers, so the loop waits for
        // them, up to 20 s, rather than asserting on too few writes.
        let t0 = Sys.monotonicNanoseconds()
        while Sys.monotonicNanoseconds() - t0 < 300_000_000 || collects <= 20
            || (writtenPages().count < 3_000 && Sys.monotonicNanoseconds() - t0 < 20_000_000_000) {
            Sys.sleep(nanoseconds: 7_000_000)
            _ = reported.insert(contentsOf: try tracker.collect())
            collects += 1
        }
        guest.pause()
        _ = reported.insert(contentsOf: try tracker.collect())
        let written = writtenPages()
        #expect(written.count > 3_000 && collects > 20, "\(tracker.mechanism): \(written.count) written, \(collects) collects")
        #expect(reported == written, "\(tracker.mechanism): \(reported.count) reported, \(written.count) written")
        #expect(try tracker.collect() == [])
    }
}

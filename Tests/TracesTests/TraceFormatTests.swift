import Foundation
import Testing
@testable import Traces

@Suite struct TraceFormatTests {
    let header = TraceHeader(pageSize: 4096, pageCount: 5000, intervalNanoseconds: 100_000_000, startTimeNanoseconds: 1_764_000_000_000_000_000,
                             provenance: [ProvenanceEntry("command", "redis-server --port 0"), ProvenanceEntry("machine", "2 cores, ünïcode ok")])

    @Test func roundTripsEveryIntervalAndTheHeader() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let intervals = randomIntervals(count: 300, pages: 5000, seed: 11)
        let writer = try TraceWriter(path: dir.path("t.trace"), header: header, initialData: [PageRange(start: 10, count: 90)])
        for i in intervals { try writer.append(written: i) }
        writer.addNote("scan_ms_median", "1.5")
        try writer.finish()

        let trace = try TraceReader(path: dir.path("t.trace"))
        #expect(trace.header == header)
        #expect(trace.initialData == [PageRange(start: 10, count: 90)])
        #expect(trace.intervalCount == 300)
        #expect(trace.notes == [ProvenanceEntry("scan_ms_median", "1.5")])
        #expect(trace.writtenPages == intervals.map(\.pageCount))
        var decoded: [[PageRange]] = []
        try trace.forEachInterval { decoded.append(Array($0.written)) }
        #expect(decoded == intervals)
        #expect(FileManager.default.fileExists(atPath: dir.path("t.trace.partial")) == false)
    }

    @Test func randomAccessMatchesSequentialDecoding() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let intervals = randomIntervals(count: 500, pages: 5000, seed: 5)
        let writer = try TraceWriter(path: dir.path("t.trace"), header: header)
        for i in intervals { try writer.append(written: i) }
        try writer.finish()
        let trace = try TraceReader(path: dir.path("t.trace"))
        for i in [0, 1, 63, 64, 65, 250, 499] { #expect(try trace.interval(i).written == intervals[i]) }
        var seen: [Int] = []
        try trace.forEachInterval(from: 130, to: 140) { seen.append($0.index); #expect(Array($0.written) == intervals[$0.index]) }
        #expect(seen == Array(130..<140))
        #expect(throws: TraceError.self) { try trace.interval(500) }
    }

    @Test func readsAreKeptWhenTheTraceRecordsThem() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        var h = header
        h.hasReads = true
        let writes = randomIntervals(count: 40, pages: 5000, seed: 1), reads = randomIntervals(count: 40, pages: 5000, seed: 2)
        let writer = try TraceWriter(path: dir.path("r.trace"), header: h)
        for i in 0..<40 { try writer.append(written: writes[i], read: reads[i]) }
        #expect(throws: TraceError.self) { try writer.append(written: []) }
        try writer.finish()
        let trace = try TraceReader(path: dir.path("r.trace"))
        #expect(trace.readPages == reads.map(\.pageCount))
        for i in [0, 17, 39] {
            let interval = try trace.interval(i)
            #expect(interval.written == writes[i])
            #expect(interval.read == reads[i])
        }
    }

    @Test func summaryCountsUniquePagesAndWindows() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        // 100 ms intervals: interval i writes pages [10 i, 10 i + 10) — 100 new pages a second.
        let writer = try TraceWriter(path: dir.path("s.trace"), header: header)
        for i in 0..<25 { try writer.append(written: [PageRange(start: UInt64(10 * i), count: 10)]) }
        try writer.finish()
        let s = TraceStatistics(try TraceReader(path: dir.path("s.trace")))
        #expect(s.uniquePages == 250)
        #expect(s.wssPages["1s"] == 100)  // two complete 1 s windows of 100 pages each
        #expect(s.wssPages["10s"] == 250)  // shorter than 10 s: the whole trace
        #expect(s.dirtyPagesPerSecond == .init(min: 100, median: 100, p99: 100, max: 100))
        #expect(s.durationSeconds == 2.5)
    }

    @Test func writerRefusesUnsortedOrOutOfRangePages() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let writer = try TraceWriter(path: dir.path("bad.trace"), header: header)
        #expect(throws: TraceError.self) { try writer.append(written: [PageRange(start: 10, count: 5), PageRange(start: 12, count: 1)]) }
        try writer.append(written: [PageRange(start: 4999, count: 2)])
        #expect(throws: TraceError.self) { try writer.finish() }
    }

    @Test func adjacentRangesAreMerged() throws {
        var w = ByteWriter()
        let pages = try PageSetCoding.encode([PageRange(start: 0, count: 2), PageRange(start: 2, count: 3), PageRange(start: 9, count: 1)], into: &w)
        #expect(pages == 6)
        #expect(w.bytes == [2, 0, 4, 4, 0])  // two ranges: (gap 0, len 5), (gap 4, len 1)
    }

    @Test func emptyTraceRoundTrips() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let writer = try TraceWriter(path: dir.path("e.trace"), header: header)
        try writer.finish()
        let trace = try TraceReader(path: dir.path("e.trace"))
        #expect(trace.intervalCount == 0)
        #expect(TraceStatistics(trace).dirtyPagesPerSecond.max == 0)
    }
}

@Suite struct PageBitmapTests {
    @Test func insertCountsOnlyNewPagesAndRangesComeBackCoalesced() {
        var b = PageBitmap()
        #expect(b.insert(PageRange(start: 60, count: 10)) == 10)
        #expect(b.insert(PageRange(start: 65, count: 70)) == 65)
        let first = b.insert(200), second = b.insert(200)
        #expect(first && !second)
        #expect(b.count == 76)
        #expect(b.ranges(clearing: false) == [PageRange(start: 60, count: 75), PageRange(start: 200, count: 1)])
        #expect(b.ranges(clearing: true).count == 2)
        #expect(b.count == 0)
        #expect(b.ranges(clearing: false).isEmpty)
    }

    @Test func rangesMatchAPageByPageModel() {
        var rng = SeededRandom(seed: 9)
        for _ in 0..<50 {
            var b = PageBitmap(pages: 1000)
            var model = Set<UInt64>()
            for _ in 0..<Int(rng.below(400)) {
                let start = rng.below(990), n = 1 + rng.below(10)
                b.insert(PageRange(start: start, count: n))
                for p in start..<(start + n) { model.insert(p) }
            }
            var pages = Array(model)
            #expect(b.ranges(clearing: false) == .coalescing(pages: &pages))
            #expect(b.count == UInt64(model.count))
        }
    }
}

@Suite struct AddressSpaceIndexTests {
    @Test func pagesKeepTheirNumbersAsMappingsGrowAndAppear() {
        var index = AddressSpaceIndex()
        let a = index.traceRuns(firstVirtualPage: 100, count: 10)
        #expect(a.map { [$0.virtualPage, $0.tracePage, $0.count] } == [[100, 0, 10]])
        // The mapping grows at both ends and a new one appears below it.
        let b = index.traceRuns(firstVirtualPage: 95, count: 20)
        #expect(b.map { [$0.virtualPage, $0.tracePage, $0.count] } == [[95, 10, 5], [100, 0, 10], [110, 15, 5]])
        let c = index.traceRuns(firstVirtualPage: 10, count: 5)
        #expect(c.map { [$0.virtualPage, $0.tracePage, $0.count] } == [[10, 20, 5]])
        #expect(index.pageCount == 25)
        #expect(index.traceRuns(firstVirtualPage: 103, count: 2).map(\.tracePage) == [3])
    }
}

@Suite struct PageBitmapOperationTests {
    @Test func unionWordRemovalRangeCountsAndRuns() {
        var a = PageBitmap(pages: 200), b = PageBitmap(pages: 300)
        a.insert(PageRange(start: 0, count: 10))
        b.insert(PageRange(start: 5, count: 10))
        b.insert(PageRange(start: 250, count: 3))
        a.formUnion(b)
        #expect(a.count == 18)
        #expect(a.ranges(clearing: false) == [PageRange(start: 0, count: 15), PageRange(start: 250, count: 3)])
        #expect(a.runCount == 2)
        #expect(a.remove(mask: 0b111, inWord: 0) == 3)
        #expect(a.count == 15)
        #expect(a.remove(mask: ~0, inWord: 99) == 0)
        #expect(a.insert(mask: 0b1111, inWord: 0) == 3)
        #expect(a.insert(mask: 1, inWord: 10) == 1)  // grows
        #expect(a.contains(640))
        var runs = PageBitmap()
        runs.insert(PageRange(start: 60, count: 10))  // one run across a word boundary
        runs.insert(127)
        runs.insert(128)
        #expect(runs.runCount == 2)
    }

    @Test func subtractRemovesOnlyTheOtherSetsPages() {
        var a = PageBitmap(pages: 300), b = PageBitmap(pages: 100)
        a.insert(PageRange(start: 50, count: 30))  // across a word boundary
        a.insert(250)
        b.insert(PageRange(start: 60, count: 10))
        b.insert(99)  // not in `a`
        a.subtract(b)
        #expect(a.count == 21)
        #expect(a.ranges(clearing: false) == [PageRange(start: 50, count: 10), PageRange(start: 70, count: 10), PageRange(start: 250, count: 1)])
        b.subtract(a)  // `a` reaches past `b`'s words
        #expect(b.count == 11)
    }

    @Test func countsTheSetPagesOfARange() {
        var b = PageBitmap(pages: 300)
        b.insert(PageRange(start: 60, count: 10))  // across a word boundary
        b.insert(200)
        #expect(b.count(in: PageRange(start: 0, count: 300)) == 11)
        #expect(b.count(in: PageRange(start: 62, count: 5)) == 5)
        #expect(b.count(in: PageRange(start: 64, count: 137)) == 7)
        #expect(b.count(in: PageRange(start: 70, count: 130)) == 0)
        #expect(b.count(in: PageRange(start: 200, count: 10_000)) == 1, "past the bitmap's end counts nothing")
        #expect(b.count(in: PageRange(start: 5_000, count: 10)) == 0)
    }
}

@Suite struct PageRangeRotationTests {
    let ranges = [PageRange(start: 0, count: 10), PageRange(start: 20, count: 10), PageRange(start: 50, count: 5)]

    @Test func beginsAtThePositionAndWrapsAround() {
        // Inside a range: that range splits.
        #expect(ranges.rotated(at: 25) == [PageRange(start: 25, count: 5), PageRange(start: 50, count: 5),
                                           PageRange(start: 0, count: 10), PageRange(start: 20, count: 5)])
        // Between ranges: the next range leads.
        #expect(ranges.rotated(at: 40) == [PageRange(start: 50, count: 5), PageRange(start: 0, count: 10), PageRange(start: 20, count: 10)])
        #expect(ranges.rotated(at: 40).pageCount == ranges.pageCount)
    }

    @Test func atTheStartOrPastTheEndItIsUnchanged() {
        #expect(ranges.rotated(at: 0) == ranges)
        #expect(ranges.rotated(at: 55) == ranges)
        #expect(ranges.rotated(at: 1_000) == ranges)
        #expect([PageRange]().rotated(at: 7) == [])
    }
}

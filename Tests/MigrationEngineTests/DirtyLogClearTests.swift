import Testing
import Traces
@testable import MigrationEngine

@Suite struct DirtyLogClearTests {
    @Test(arguments: 0..<2)
    func forgetsWhatWasWrittenBeforeAndReportsWhatComesAfter(kind: Int) throws {
        // Several chunks, the last one short.
        let pages = 3 * DirtyLogClear.chunkPages + 100
        let memory = try GuestMemory(bytes: Int(pages) * 4096)
        let tracker = try trackers(memory)[kind]
        try tracker.start()
        defer { tracker.stop() }
        for page in stride(from: 0, to: pages, by: 7) { memory.pointer(page: page).storeBytes(of: 1, as: UInt8.self) }
        let clear = try DirtyLogClear(tracker, pageCount: pages)
        try clear.wait(through: DirtyLogClear.chunkPages + 1)
        // What the sender may send is cleared; a write there from now on is the next pass's.
        memory.pointer(page: 5).storeBytes(of: 2, as: UInt8.self)
        try clear.waitUntilDone()
        #expect(clear.isDone)
        memory.pointer(page: pages - 1).storeBytes(of: 2, as: UInt8.self)
        #expect(try tracker.collect() == [PageRange(start: 5, count: 1), PageRange(start: pages - 1, count: 1)], "\(tracker.mechanism)")
    }

    @Test(arguments: 0..<2)
    func aTrackerStoppedWhileItClearsEndsTheClearQuietly(kind: Int) throws {
        // A migration that fails in its first milliseconds stops its tracker under a clear that
        // is still running: the clear must neither fail on closed descriptors nor hang.
        let memory = try GuestMemory(bytes: 256 << 20)
        let tracker = try trackers(memory)[kind]
        try tracker.start()
        for page in stride(from: 0, to: memory.pageCount, by: 3) { memory.pointer(page: page).storeBytes(of: 1, as: UInt8.self) }
        let clear = try DirtyLogClear(tracker, pageCount: memory.pageCount)
        tracker.stop()
        try clear.waitUntilDone()
        #expect(clear.isDone)
    }
}

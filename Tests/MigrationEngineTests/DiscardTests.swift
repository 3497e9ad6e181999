import CUring
import Glibc
import Testing
import Traces
@testable import MigrationEngine

/// `Sys.discard` and `Sys.moveOut` on real memory: what postcopy's switch does with the
/// destination's stale pages.
@Suite struct DiscardTests {
    /// Which pages of `memory` are resident (mincore).
    func resident(_ memory: GuestMemory) -> [Bool] {
        var vector = [UInt8](repeating: 0, count: Int(memory.pageCount))
        #expect(mincore(memory.base, memory.byteCount, &vector) == 0)
        return vector.map { $0 & 1 == 1 }
    }

    /// The switch moves long stale runs out (UFFDIO_MOVE) rather than free them in the
    /// downtime, and drops the short ones: either way they are gone from the guest at once,
    /// and the other pages stay.
    @Test func theSwitchMovesStalePagesOutAndKeepsTheRest() throws {
        let memory = try GuestMemory(bytes: 20_000 * 4096)
        for page in 0..<memory.pageCount { PageStamp(page: page, sequence: 1).write(to: memory.pointer(page: page)) }
        let stale = [PageRange(start: 0, count: 1), PageRange(start: 10, count: 17_000), PageRange(start: 18_000, count: 3)]
        let faults = try PostcopyFaults(memory: memory, stale: stale, untouched: PageBitmap(pages: memory.pageCount)) { _ in }
        var dropped = PageBitmap(pages: memory.pageCount)
        dropped.insert(contentsOf: stale)
        let present = resident(memory)
        #expect((0..<memory.pageCount).filter { present[Int($0)] == dropped.contains($0) } == [], "stale pages gone, the rest kept")
        #expect(faults.missingPages == 17_004)
        #expect(PostcopyFaults.canMove, "UFFDIO_MOVE is there from Linux 6.8 on")
        #expect(faults.pagesMovedOut == 17_000, "the long run moved, the runs of 1 and 3 pages dropped")
        try faults.freeMovedPages()
        try faults.freeMovedPages()  // once only: the second call has nothing to free
    }

    /// A move the kernel refuses (here: the scratch region is not registered) leaves the runs
    /// from there on to `discard`.
    @Test func runsThatCannotMoveAreLeftToDiscard() throws {
        let memory = try GuestMemory(bytes: 64 * 4096)
        for page in 0..<memory.pageCount { PageStamp(page: page, sequence: 1).write(to: memory.pointer(page: page)) }
        let fd = try Sys.uffdOpen(features: 0)
        defer { Sys.close(fd) }
        try Sys.uffdRegister(fd, memory.base, memory.byteCount, mode: UInt64(MP_UFFDIO_REGISTER_MODE_MISSING))
        let scratch = try Sys.mapAnonymous(8 * 4096)
        defer { Sys.free(scratch, 8 * 4096) }
        let runs = [PageRange(start: 1, count: 3), PageRange(start: 40, count: 5)]
        #expect(Sys.moveOut(runs, of: memory.base, pageSize: memory.pageSize, uffd: fd, to: scratch) == runs)
        #expect(resident(memory).allSatisfy { $0 }, "nothing moved")
    }

    @Test func dropsExactlyTheRunsGivenInBatchesOfAnySize() throws {
        // 3,000 runs: more than one batch of 1,024, and a last batch that is not full.
        let memory = try GuestMemory(bytes: 4 * 3_000 * 4096)
        for page in 0..<memory.pageCount { PageStamp(page: page, sequence: 1).write(to: memory.pointer(page: page)) }
        let runs = (0..<UInt64(3_000)).map { PageRange(start: $0 * 4 + 1, count: $0 % 3 + 1) }  // 1 to 3 pages of each 4
        try Sys.discard(runs, of: memory.base, pageSize: memory.pageSize)
        var dropped = PageBitmap(pages: memory.pageCount)
        dropped.insert(contentsOf: runs)
        for page in 0..<memory.pageCount {
            let wanted: PageStamp.Reading = dropped.contains(page) ? .unstamped : .stamped(PageStamp(page: page, sequence: 1))
            let found = PageStamp.read(from: memory.pointer(page: page))
            #expect(found == wanted, "page \(page)")
            if found != wanted { break }  // one page named is enough
        }
        try Sys.discard([], of: memory.base, pageSize: memory.pageSize)  // nothing to drop is no error
    }
}

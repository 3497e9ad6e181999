import Testing
import Traces
@testable import MigrationEngine

/// `Sys.discard` on real memory: what postcopy's switch does with the destination's stale pages.
@Suite struct DiscardTests {
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

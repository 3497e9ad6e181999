import Traces

/// The guest's memory: one private anonymous mapping, page-aligned, unmapped when the last
/// reference goes. Page numbers (in `PageRange`s, stamps and dirty sets) count from its base.
public final class GuestMemory: @unchecked Sendable {
    // @unchecked: the mapping's address and size never change; its bytes are the guest's to race on.
    public let base: UnsafeMutableRawPointer
    public let byteCount: Int
    public let pageSize: Int
    public var pageCount: UInt64 { UInt64(byteCount / pageSize) }

    /// Maps `bytes` rounded up to whole pages (at least one). Nothing is touched: pages cost
    /// their first-touch fault when first written.
    public init(bytes: Int) throws(SystemCallError) {
        pageSize = Sys.pageSize
        byteCount = max(1, (bytes + pageSize - 1) / pageSize) * pageSize
        base = try Sys.mapAnonymous(byteCount)
    }

    deinit { Sys.unmap(base, byteCount) }

    /// The start of page `page` (0..<pageCount).
    public func pointer(page: UInt64) -> UnsafeMutableRawPointer {
        precondition(page < pageCount, "page \(page) is outside the guest's \(pageCount) pages")
        return base + Int(page) * pageSize
    }

    /// Whether the kernel should back this memory with transparent huge pages (2 MiB here):
    /// a first touch then costs one fault a huge page rather than 512.
    public func adviseHugePages(_ wanted: Bool) { Sys.adviseHugePages(base, byteCount, wanted) }

    /// The pages that hold no data — never written since the mapping was made, or dropped
    /// since — which read as zeros, told without reading them: reading one costs a page fault
    /// (≈ 1 µs here), for a zero page mapped in. From the kernel's residency of each page
    /// (mincore), so nil where a page that is not resident may have been swapped out (a system
    /// with swap). Exact while nothing writes the memory (a paused guest); a page written
    /// since is no longer in it.
    public func pagesWithoutData() throws(SystemCallError) -> PageBitmap? {
        guard try !Sys.hasSwap() else { return nil }
        let residency = try Sys.residency(base, byteCount, pageSize: pageSize)
        var empty = PageBitmap(pages: pageCount)
        for word in stride(from: 0, to: residency.count, by: 64) {
            var mask: UInt64 = 0
            for bit in 0..<min(64, residency.count - word) where residency[word + bit] & 1 == 0 { mask |= 1 << UInt64(bit) }
            empty.insert(mask: mask, inWord: word / 64)
        }
        return empty
    }

    /// Faults every page in now (writable), so that later writes do not pay the first touch.
    public func populate() throws(SystemCallError) { try Sys.populateWrite(base, byteCount) }
}

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

    /// Faults every page in now (writable), so that later writes do not pay the first touch.
    public func populate() throws(SystemCallError) { try Sys.populateWrite(base, byteCount) }
}

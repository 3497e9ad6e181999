import CUring
import Traces

/// Which pages of a `GuestMemory` the guest wrote. `start()` arms tracking over the whole
/// region; each `collect()` returns the pages written since the previous one (or since
/// `start()`) as sorted, coalesced ranges and re-arms them — a get-and-clear, so a page written
/// after its collect shows up in the next one; `stop()` disarms (also done on deinit).
/// `writtenSinceCollect()` only counts, re-arming nothing, and may be called from another
/// thread than the one that collects (the model samples the dirty rate with it).
public protocol DirtyTracker: AnyObject, Sendable {
    /// What tracks, for logs: "userfaultfd write-protect (async) + PAGEMAP_SCAN".
    var mechanism: String { get }
    func start() throws(SystemCallError)
    func collect() throws(SystemCallError) -> [PageRange]
    /// Re-arms `pages` and forgets what was written there: a collect of that range whose
    /// answer nobody needs (the start of pass 1, which sends every page anyway). May run on
    /// another thread than `collect()`, but never at the same time as one.
    func clear(_ pages: PageRange) throws(SystemCallError)
    /// Pages written since the last `collect()` (0 once stopped).
    func writtenSinceCollect() throws(SystemCallError) -> UInt64
    func stop()
}

public enum DirtyTracking {
    /// The best tracker this kernel offers for `memory`, not started, and a line naming it:
    /// async write-protect + PAGEMAP_SCAN (Linux 6.7+), else synchronous write-protect faults
    /// (also when `allowAsync` is false).
    public static func best(for memory: GuestMemory,
                            allowAsync: Bool = true) throws(SystemCallError) -> (tracker: any DirtyTracker, message: String) {
        let tracker: any DirtyTracker
        if allowAsync && AsyncWriteProtectTracker.isSupported() {
            tracker = try AsyncWriteProtectTracker(memory: memory)
        } else {
            tracker = try SyncWriteProtectTracker(memory: memory)
        }
        return (tracker, "dirty tracking: \(tracker.mechanism)")
    }
}

/// userfaultfd write-protect in async mode (the kernel resolves each first write itself and
/// marks the page written) read and re-armed by one PAGEMAP_SCAN per `collect()`.
public final class AsyncWriteProtectTracker: DirtyTracker, @unchecked Sendable {
    // @unchecked: `collect()` and `start()`/`stop()` are called by one thread at a time (the
    // migration's); `writtenSinceCollect()` and `clear(_:)` may run on another, so they and
    // `stop()` hold `lifecycle` (the descriptors must not close under a scan).
    public let memory: GuestMemory
    public let mechanism = "userfaultfd write-protect (async) + PAGEMAP_SCAN"
    static let features = UInt64(MP_UFFD_FEATURE_WP_ASYNC | MP_UFFD_FEATURE_WP_UNPOPULATED)
    private var uffd: Int32 = -1
    private var pagemap: Int32 = -1
    private var regions = [mp_page_region](repeating: mp_page_region(), count: 1024)
    private let lifecycle = Monitor()

    /// True when this kernel's userfaultfd offers async write-protect on unpopulated memory.
    public static func isSupported() -> Bool {
        guard let offered = try? Sys.uffdSupportedFeatures() else { return false }
        return offered & features == features
    }

    public init(memory: GuestMemory) throws(SystemCallError) {
        self.memory = memory
    }

    deinit { stop() }

    public func start() throws(SystemCallError) {
        precondition(uffd < 0, "tracker already started")
        let fd = try Sys.uffdOpen(features: Self.features)
        do {
            try Sys.uffdRegister(fd, memory.base, memory.byteCount, mode: UInt64(MP_UFFDIO_REGISTER_MODE_WP))
            try Sys.uffdWriteProtect(fd, Sys.address(memory.base), UInt64(memory.byteCount), protect: true)
            pagemap = try Sys.openPagemap()
        } catch {
            Sys.close(fd)
            throw error
        }
        uffd = fd
    }

    public func collect() throws(SystemCallError) -> [PageRange] {
        precondition(uffd >= 0, "collect() before start()")
        var out: [PageRange] = []
        try scan(rearm: true, into: &regions) { range in
            if let last = out.last, last.end == range.start {
                out[out.count - 1].count += range.count
            } else {
                out.append(range)
            }
        }
        return out
    }

    public func clear(_ pages: PageRange) throws(SystemCallError) {
        // Under `lifecycle`: a migration that ends early may stop the tracker while a clear
        // runs on its own thread; once stopped there is nothing left to clear.
        try lifecycle.locked { () throws(SystemCallError) in
            guard uffd >= 0 else { return }
            // Without a vector the kernel re-protects the whole range in one walk.
            var none: [mp_page_region] = []
            try scan(rearm: true, pages: pages, into: &none) { _ in }
        }
    }

    public func writtenSinceCollect() throws(SystemCallError) -> UInt64 {
        try lifecycle.locked { () throws(SystemCallError) -> UInt64 in
            guard uffd >= 0 else { return 0 }
            var vector = [mp_page_region](repeating: mp_page_region(), count: 256)
            var pages: UInt64 = 0
            try scan(rearm: false, into: &vector) { pages += $0.count }
            return pages
        }
    }

    /// One PAGEMAP_SCAN walk over `pages` (all of the region by default) for written pages,
    /// `vector` at a time; with `rearm`, the pages found are write-protected again (the
    /// get-and-clear).
    private func scan(rearm: Bool, pages: PageRange? = nil, into vector: inout [mp_page_region],
                      _ found: (PageRange) -> Void) throws(SystemCallError) {
        let pageSize = UInt64(memory.pageSize)
        let base = Sys.address(memory.base)
        let span = pages ?? PageRange(start: 0, count: memory.pageCount)
        let end = base + span.end * pageSize
        var from = base + span.start * pageSize
        while from < end {
            var arg = mp_pm_scan_arg()
            arg.size = UInt64(MemoryLayout<mp_pm_scan_arg>.size)
            arg.flags = rearm ? UInt64(MP_PM_SCAN_WP_MATCHING | MP_PM_SCAN_CHECK_WPASYNC) : 0
            arg.start = from
            arg.end = end
            arg.category_mask = UInt64(MP_PAGE_IS_WRITTEN)
            arg.return_mask = UInt64(MP_PAGE_IS_WRITTEN)
            let filled = try vector.withUnsafeMutableBufferPointer { vec throws(SystemCallError) in
                arg.vec = vec.baseAddress.map { Sys.address($0) } ?? 0
                arg.vec_len = UInt64(vec.count)
                return try Sys.pagemapScan(pagemap, &arg)
            }
            for r in vector[0..<filled] { found(PageRange(start: (r.start - base) / pageSize, count: (r.end - r.start) / pageSize)) }
            // The vector filled before the walk ended: go on from where it stopped.
            guard arg.walk_end > from else { break }
            from = arg.walk_end
        }
    }

    public func stop() {
        lifecycle.locked {
            guard uffd >= 0 else { return }
            Sys.uffdUnregister(uffd, memory.base, memory.byteCount)
            Sys.close(uffd)
            Sys.close(pagemap)
            uffd = -1
            pagemap = -1
        }
    }
}

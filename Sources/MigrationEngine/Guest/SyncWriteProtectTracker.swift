import CUring
import Glibc
import Traces

/// The fallback for kernels without async write-protect (before Linux 6.7): the region is
/// write-protected with userfaultfd in the classic, synchronous mode; a handler thread takes
/// each write fault, records the page and un-protects it (which lets the writer go on).
/// `collect()` hands over the recorded pages and protects them again. Each first write after a
/// collect costs a round trip through the handler thread (tens of µs, not 0.74 µs).
///
/// Without `UFFD_FEATURE_WP_UNPOPULATED` (before Linux 6.4) a page never touched cannot be
/// protected, so `start()` populates the whole region first (≈ 6 µs per page here).
public final class SyncWriteProtectTracker: DirtyTracker, @unchecked Sendable {
    // @unchecked: start/collect/stop come from one thread at a time; what the handler thread
    // shares with them is in `State`, behind its monitor.
    public let memory: GuestMemory
    public let mechanism: String
    private let useUnpopulatedMarkers: Bool
    private var state: State?
    /// Guards `state` against `writtenSinceCollect()` and `clear(_:)` on another thread while
    /// `stop()` clears it.
    private let stateLock = Monitor()
    private var handler: pthread_t?

    /// `unpopulatedMarkers: false` populates the region at start even when the kernel could
    /// protect unpopulated pages (what older kernels force).
    public init(memory: GuestMemory, unpopulatedMarkers: Bool = true) throws(SystemCallError) {
        self.memory = memory
        let offered = try Sys.uffdSupportedFeatures()
        useUnpopulatedMarkers = unpopulatedMarkers && offered & UInt64(MP_UFFD_FEATURE_WP_UNPOPULATED) != 0
        mechanism = "userfaultfd write-protect (synchronous faults on a handler thread)"
            + (useUnpopulatedMarkers ? "" : ", region populated at start")
    }

    deinit { stop() }

    final class State: @unchecked Sendable {
        // @unchecked: `dirty` and `failure` are only touched inside `monitor.locked`.
        let monitor = Monitor()
        let uffd: Int32
        let wake: (read: Int32, write: Int32)
        let base: UInt64
        let pageSize: UInt64
        let byteCount: UInt64
        var dirty: PageBitmap
        var failure: SystemCallError?

        init(uffd: Int32, wake: (read: Int32, write: Int32), memory: GuestMemory) {
            self.uffd = uffd
            self.wake = wake
            base = Sys.address(memory.base)
            pageSize = UInt64(memory.pageSize)
            byteCount = UInt64(memory.byteCount)
            dirty = PageBitmap(pages: memory.pageCount)
        }

        /// The handler thread: record and release every write fault until `wake` is signalled.
        func serve() {
            do {
                while true {
                    let ready = try Sys.pollReadable([uffd, wake.read])
                    if ready[1] { return }
                    while let fault = try Sys.uffdReadFault(uffd) {
                        let page = (fault.address - base) / pageSize
                        try monitor.locked { () throws(SystemCallError) in
                            _ = dirty.insert(page)
                            try Sys.uffdWriteProtect(uffd, base + page * pageSize, pageSize, protect: false)
                        }
                    }
                }
            } catch {
                // Writers would hang on their fault: un-protect everything and report at collect().
                monitor.locked { failure = error }
                _ = try? Sys.uffdWriteProtect(uffd, base, byteCount, protect: false)
            }
        }
    }

    public func start() throws(SystemCallError) {
        precondition(state == nil, "tracker already started")
        if !useUnpopulatedMarkers { try memory.populate() }
        let features = useUnpopulatedMarkers ? UInt64(MP_UFFD_FEATURE_WP_UNPOPULATED) : 0
        let fd = try Sys.uffdOpen(features: features)
        let wake: (read: Int32, write: Int32)
        do {
            wake = try Sys.wakePipe()
        } catch {
            Sys.close(fd)
            throw error
        }
        let state = State(uffd: fd, wake: wake, memory: memory)
        do {
            try Sys.uffdRegister(fd, memory.base, memory.byteCount, mode: UInt64(MP_UFFDIO_REGISTER_MODE_WP))
            try Sys.uffdWriteProtect(fd, state.base, state.byteCount, protect: true)
            handler = try Sys.startThread { state.serve() }
        } catch {
            Sys.uffdUnregister(fd, memory.base, memory.byteCount)
            Sys.close(fd)
            Sys.close(wake.read)
            Sys.close(wake.write)
            throw error
        }
        self.state = state
    }

    public func collect() throws(SystemCallError) -> [PageRange] {
        guard let state else { preconditionFailure("collect() before start()") }
        // Under the monitor, so that no fault is recorded between the hand-over and the
        // re-protection (it would be released unprotected and its later writes missed).
        return try state.monitor.locked { () throws(SystemCallError) -> [PageRange] in
            if let failure = state.failure { throw failure }
            let ranges = state.dirty.ranges(clearing: true)
            for r in ranges {
                try Sys.uffdWriteProtect(state.uffd, state.base + r.start * state.pageSize, r.count * state.pageSize,
                                         protect: true)
            }
            return ranges
        }
    }

    public func clear(_ pages: PageRange) throws(SystemCallError) {
        // Under `stateLock`, which `stop()` takes before it closes anything: a migration that
        // ends early may stop the tracker while a clear runs on its own thread.
        try stateLock.locked { () throws(SystemCallError) in
            guard let state else { return }
            // Under the monitor, as in `collect()`: a fault waiting for it is recorded after.
            try state.monitor.locked { () throws(SystemCallError) in
                if let failure = state.failure { throw failure }
                state.dirty.remove(pages)
                try Sys.uffdWriteProtect(state.uffd, state.base + pages.start * state.pageSize, pages.count * state.pageSize,
                                         protect: true)
            }
        }
    }

    public func writtenSinceCollect() throws(SystemCallError) -> UInt64 {
        let current = stateLock.locked { state }
        return current.map { s in s.monitor.locked { s.dirty.count } } ?? 0
    }

    public func stop() {
        // Taken away first, so that no `clear(_:)` or count starts on what is closed below.
        guard let state = stateLock.locked({ () -> State? in
            defer { self.state = nil }
            return self.state
        }) else { return }
        Sys.signal(wakePipe: state.wake.write)
        if let handler { Sys.join(handler) }
        Sys.uffdUnregister(state.uffd, memory.base, memory.byteCount)
        Sys.close(state.uffd)
        Sys.close(state.wake.read)
        Sys.close(state.wake.write)
        handler = nil
    }
}

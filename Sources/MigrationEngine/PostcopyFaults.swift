import CUring
import Glibc
import Migration
import Traces

/// The destination's half of postcopy: the guest region registered with userfaultfd in missing
/// mode, so that a guest thread touching a page that has not arrived sleeps in the kernel while
/// its fault becomes a page request on the return path; pages that arrive are installed with
/// `UFFDIO_COPY` (or `UFFDIO_ZEROPAGE`), which wakes it. The received bitmap says which pages
/// hold the source's content (or the guest's newer writes): a page is installed at most once
/// and never over a present page, and no fault is ever answered with anything but the page.
final class PostcopyFaults: @unchecked Sendable {
    // @unchecked: `received`, `requested`, `faults` and `stopping` are touched under `lock` only;
    // `thread` by the owner's thread only.
    let memory: GuestMemory
    private let fd: Int32
    private let wake: (read: Int32, write: Int32)
    private let lock = Monitor()
    private var received: PageBitmap
    private var requested: PageBitmap
    /// Received pages that are zero and were never touched here (a zero run need not write
    /// them): userfaultfd sees them as missing, so a fault on one gets a zero page at once.
    private var untouched: PageBitmap
    private var faults: UInt64 = 0
    private var stopping = false
    private var thread: pthread_t?
    private let request: @Sendable ([PageRange]) throws -> Void
    /// Why the fault thread stopped early, if it did.
    private(set) var failure: (any Error)?

    /// Where stale pages went (`moveOut`), to be freed once the guest runs here.
    private var moved: [(base: UnsafeMutableRawPointer, size: Int)] = []
    private let mode: StaleRunDrop
    /// Stale pages (holes among them included) moved out rather than freed.
    private(set) var pagesMovedOut: UInt64 = 0

    /// Whether this kernel's userfaultfd can move pages (UFFDIO_MOVE, Linux 6.8+).
    static let canMove = ((try? Sys.uffdSupportedFeatures()) ?? 0) & UInt64(MP_UFFD_FEATURE_MOVE) != 0

    /// Registers the region and drops the `stale` pages (`drop`); the pages outside `stale`
    /// that the destination has received count as present, those of them in `untouched` as
    /// zero pages never touched. `request` sends a page request on the return path; it is
    /// called from the fault thread.
    init(memory: GuestMemory, stale: [PageRange], untouched: PageBitmap, discard mode: StaleRunDrop = .auto,
         request: @escaping @Sendable ([PageRange]) throws -> Void) throws(SystemCallError) {
        self.memory = memory
        self.request = request
        self.untouched = untouched
        self.mode = Self.canMove ? mode : .drop
        received = PageBitmap(pages: memory.pageCount)
        received.insertAll(below: memory.pageCount)
        requested = PageBitmap(pages: memory.pageCount)
        let fd = try Sys.uffdOpen(features: Self.canMove ? UInt64(MP_UFFD_FEATURE_MOVE) : 0)
        do throws(SystemCallError) {
            try Sys.uffdRegister(fd, memory.base, memory.byteCount, mode: UInt64(MP_UFFDIO_REGISTER_MODE_MISSING))
            wake = try Sys.wakePipe()
        } catch {
            Sys.close(fd)
            throw error
        }
        self.fd = fd
        try drop(stale)
    }

    /// Drops the `stale` pages (they will come again): before the fault thread starts, once at
    /// the switch and, after `postcopy-listen`, once more for the pages written since.
    ///
    /// Inside a downtime freeing a page costs ≈ 0.25 µs here (numpy-stencil: 125,000 held
    /// stale pages in 12 runs, 30 ms). So runs long enough (`StaleRunDrop`, `mode`) are moved
    /// out instead (UFFDIO_MOVE into a scratch region, 11 ms there) and freed later, on a
    /// thread of their own (`freeMovedPages()`); short runs (memcached: 17,000 runs of about
    /// two pages), a kernel without UFFDIO_MOVE and a run it will not move get MADV_DONTNEED.
    func drop(_ stale: [PageRange]) throws(SystemCallError) {
        lock.locked {
            for r in stale {
                received.remove(r)
                untouched.remove(r)
            }
        }
        let moves = mode.moves(runsOf: stale.map(\.count))
        let long = zip(stale, moves).filter(\.1).map(\.0)
        var toDiscard = zip(stale, moves).filter { !$0.1 }.map(\.0)
        let longBytes = Int(long.pageCount) * memory.pageSize
        if longBytes > 0, let scratch = try? Sys.mapAnonymous(longBytes) {
            moved.append((scratch, longBytes))
            let registered = (try? Sys.uffdRegister(fd, scratch, longBytes, mode: UInt64(MP_UFFDIO_REGISTER_MODE_MISSING))) != nil
            let unmoved = registered ? Sys.moveOut(long, of: memory.base, pageSize: memory.pageSize, uffd: fd, to: scratch) : long
            pagesMovedOut += long.pageCount - unmoved.pageCount
            toDiscard += unmoved
        } else {
            toDiscard += long
        }
        try Sys.discard(toDiscard, of: memory.base, pageSize: memory.pageSize)
    }

    deinit {
        stop()
        for m in moved { Sys.free(m.base, m.size) }
        Sys.uffdUnregister(fd, memory.base, memory.byteCount)
        Sys.close(fd)
        Sys.close(wake.read)
        Sys.close(wake.write)
    }

    /// Starts the thread that turns faults into page requests.
    func start() throws(SystemCallError) {
        thread = try Sys.startThread { [self] in serveFaults() }
    }

    /// Frees the stale pages moved out, on a thread of their own: call once the guest runs
    /// here and the source has its answer, so that none of it is in the downtime.
    func freeMovedPages() throws(SystemCallError) {
        let regions = moved.map { (UInt(bitPattern: $0.base), $0.size) }
        moved = []
        guard !regions.isEmpty else { return }
        try Sys.startDetachedThread {
            for (base, size) in regions { Sys.free(UnsafeMutableRawPointer(bitPattern: base)!, size) }
        }
    }

    /// Ends the fault thread (the region stays registered until deinit: a page still missing
    /// keeps its faulting thread asleep rather than reading zeros).
    func stop() {
        guard let thread else { return }
        lock.locked { stopping = true }
        Sys.signal(wakePipe: wake.write)
        Sys.join(thread)
        self.thread = nil
    }

    /// Pages still missing, and distinct pages the guest faulted on (remote faults).
    var missingPages: UInt64 { lock.locked { memory.pageCount - received.count } }
    var remoteFaults: UInt64 { lock.locked { faults } }
    /// Pages that are zero and have never been touched here (a copy).
    var untouchedPages: PageBitmap { lock.locked { untouched } }
    /// The received bitmap as ranges (what recovery sends back).
    var receivedRanges: [PageRange] { lock.locked { var copy = received; return copy.ranges(clearing: true) } }
    /// Pages the guest asked for that have not arrived: after a recovery they are asked again.
    var waitingRanges: [PageRange] {
        lock.locked {
            var pages = (0..<requested.words.count).flatMap { w -> [UInt64] in
                var bits = requested.words[w] & ~received.words[w]
                var out: [UInt64] = []
                while bits != 0 {
                    out.append(UInt64(w) * 64 + UInt64(bits.trailingZeroBitCount))
                    bits &= bits - 1
                }
                return out
            }
            return [PageRange].coalescing(pages: &pages)
        }
    }

    /// Installs the pages of a run that have not been received yet (`data` nil: a zero run);
    /// returns how many were new.
    @discardableResult
    func install(start: UInt64, count: UInt64, data: UnsafeRawBufferPointer?) throws(SystemCallError) -> UInt64 {
        let pageSize = UInt64(memory.pageSize)
        // Runs of pages not received yet, taken under the lock so that two arrivals of one page
        // (a request answered while the background push also sent it) install it once.
        var runs: [PageRange] = []
        lock.locked {
            var page = start
            while page < start + count {
                guard !received.contains(page) else { page += 1; continue }
                var end = page
                while end < start + count, !received.contains(end) {
                    received.insert(mask: 1 << (end & 63), inWord: Int(end >> 6))
                    end += 1
                }
                runs.append(PageRange(start: page, count: end - page))
                page = end
            }
        }
        for run in runs {
            var done: UInt64 = 0
            while done < run.count * pageSize {
                let at = Sys.address(memory.pointer(page: run.start)) + done
                let source = data.map { $0.baseAddress! + Int((run.start - start) * pageSize + done) }
                let n = try Sys.uffdInstall(fd, at: at, from: source, length: run.count * pageSize - done)
                // 0: a page is present already, which only a racing install of the same page can
                // have done; skip it.
                done += n == 0 ? pageSize : n
            }
        }
        return runs.pageCount
    }

    /// The fault thread: faults on pages not yet requested become one page request per wake-up.
    private func serveFaults() {
        do {
            while true {
                let readable = try Sys.pollReadable([fd, wake.read])
                if lock.locked({ stopping }) { return }
                guard readable[0] else { continue }
                var pages: [UInt64] = []
                while let fault = try Sys.uffdReadFault(fd) {
                    let page = (fault.address - Sys.address(memory.base)) / UInt64(memory.pageSize)
                    guard page < memory.pageCount else { continue }
                    pages.append(page)
                }
                let (fresh, zeroes) = lock.locked { () -> ([UInt64], [UInt64]) in
                    var out: [UInt64] = [], zero: [UInt64] = []
                    for page in pages {
                        if self.untouched.contains(page) {
                            self.untouched.remove(PageRange(start: page, count: 1))
                            zero.append(page)
                        } else if !received.contains(page), requested.insert(page) {
                            out.append(page)
                        }
                    }
                    faults += UInt64(out.count)
                    return (out, zero)
                }
                // A zero page the destination never had to touch: it is a zero page, here and now.
                for page in zeroes {
                    _ = try Sys.uffdInstall(fd, at: Sys.address(memory.pointer(page: page)), from: nil, length: UInt64(memory.pageSize))
                }
                guard !fresh.isEmpty else { continue }
                var sorted = fresh
                try request([PageRange].coalescing(pages: &sorted))
            }
        } catch {
            lock.locked { failure = error }
        }
    }
}

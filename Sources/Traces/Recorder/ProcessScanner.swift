import CUring
import Glibc

/// Reads the writable memory of another process and tells which pages changed content since
/// the previous scan. Pages are located with PAGEMAP_SCAN (only present pages are read; a
/// kernel without it makes every page be read), copied with process_vm_readv in large
/// batches, and compared by 64-bit CRC32C fingerprints.
final class ProcessScanner {
    let pid: Int32
    let pageSize: Int
    private(set) var index = AddressSpaceIndex()
    /// Fingerprint of every trace page at the last scan (0: zero-filled or never present).
    private var fingerprints: [UInt64] = []
    /// Whether the kernel has PAGEMAP_SCAN; /proc/PID/pagemap is opened anew for every scan,
    /// because an open one keeps pointing at the address space a later exec() replaced.
    let usesPagemapScan: Bool
    private let batchBytes = 4 << 20
    private let buffer: UnsafeMutableRawPointer
    private var batchFingerprints: [UInt64]
    private var regions: [mp_page_region]

    /// What one scan saw.
    struct Result {
        var changedPages: [UInt64]
        var presentBytes: Int
        var writableBytes: Int
    }

    init(pid: Int32) throws(SystemCallError) {
        self.pid = pid
        pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        buffer = UnsafeMutableRawPointer.allocate(byteCount: batchBytes, alignment: 4096)
        batchFingerprints = [UInt64](repeating: 0, count: batchBytes / pageSize)
        regions = [mp_page_region](repeating: mp_page_region(), count: 4096)
        let fd = try Sys.open("/proc/\(pid)/pagemap", O_RDONLY)
        usesPagemapScan = Self.pagemapScanWorks(fd)
        Sys.close(fd)
    }

    deinit {
        buffer.deallocate()
    }

    /// Scans every writable mapping once. A target that calls exec() during the scan (a
    /// wrapper script, a pyenv shim) makes the kernel answer ESRCH for the address space it
    /// left: the scan starts again on the new one, keeping what it already found changed,
    /// for as long as the process is alive and not a zombie.
    func scan() throws(SystemCallError) -> Result {
        var changed: [UInt64] = []
        var attempt = 0
        while true {
            var result = Result(changedPages: changed, presentBytes: 0, writableBytes: 0)
            do {
                try scan(into: &result)
                if attempt > 0 { result.changedPages = Array(Set(result.changedPages)).sorted() }
                return result
            } catch where error.errno == ESRCH && attempt < Self.execRetries && Sys.processIsRunning(pid) {
                changed = result.changedPages
                attempt += 1
                Sys.sleep(nanoseconds: 1_000_000)
            }
        }
    }

    /// How many times a scan starts again after an exec() (a chain of wrappers execs a few times).
    private static let execRetries = 50

    private func scan(into result: inout Result) throws(SystemCallError) {
        var batch = Batch()
        let pagemap = usesPagemapScan ? try Sys.open("/proc/\(pid)/pagemap", O_RDONLY) : nil
        defer { if let pagemap { Sys.close(pagemap) } }
        for mapping in try ProcessMapping.writable(pid: pid) {
            let firstPage = mapping.start / UInt64(pageSize)
            let pages = (mapping.end - mapping.start) / UInt64(pageSize)
            result.writableBytes += Int(mapping.end - mapping.start)
            let runs = index.traceRuns(firstVirtualPage: firstPage, count: pages)
            if fingerprints.count < Int(index.pageCount) {
                fingerprints.append(contentsOf: repeatElement(0, count: Int(index.pageCount) - fingerprints.count))
            }
            for present in try presentRanges(mapping, pagemap: pagemap) {
                // Intersect the present virtual range with the trace runs to learn its trace pages.
                for run in runs {
                    let lo = max(present.lowerBound, run.virtualPage), hi = min(present.upperBound, run.virtualPage + run.count)
                    guard lo < hi else { continue }
                    var v = lo
                    while v < hi {
                        let room = batch.roomPages(batchBytes: batchBytes, pageSize: pageSize)
                        let n = min(hi - v, UInt64(room))
                        batch.pieces.append(Piece(virtualPage: v, tracePage: run.tracePage + (v - run.virtualPage), pages: Int(n)))
                        batch.pages += Int(n)
                        v += n
                        if batch.pages * pageSize >= batchBytes { try flush(&batch, into: &result) }
                    }
                }
            }
        }
        try flush(&batch, into: &result)
    }

    private struct Piece {
        var virtualPage: UInt64
        var tracePage: UInt64
        var pages: Int
    }

    private struct Batch {
        var pieces: [Piece] = []
        var pages = 0
        func roomPages(batchBytes: Int, pageSize: Int) -> Int { batchBytes / pageSize - pages }
    }

    /// Reads the batch, fingerprints it and records changed pages. A piece whose mapping
    /// vanished meanwhile is skipped, and the rest of the batch is read again.
    private func flush(_ batch: inout Batch, into result: inout Result) throws(SystemCallError) {
        var pieces = batch.pieces[...]
        batch = Batch()
        while !pieces.isEmpty {
            let wanted = pieces.prefix(1024)  // IOV_MAX
            let bytes = wanted.reduce(0) { $0 + $1.pages } * pageSize
            var remote = wanted.map { mp_iovec(base: UnsafeMutableRawPointer(bitPattern: UInt($0.virtualPage) * UInt(pageSize)), length: $0.pages * pageSize) }
            var local = [mp_iovec(base: buffer, length: bytes)]
            var copied = 0
            do {
                copied = try remote.withUnsafeBufferPointer { (r) throws(SystemCallError) -> Int in
                    try local.withUnsafeBufferPointer { (l) throws(SystemCallError) -> Int in
                        try Sys.readProcessMemory(pid: pid, local: l, remote: r)
                    }
                }
            } catch where error.errno == EFAULT || error.errno == ENOMEM {
                copied = 0  // the first piece vanished
            }
            remote.removeAll()
            local.removeAll()
            let whole = copied / pageSize
            result.presentBytes += whole * pageSize
            mp_page_fingerprints(buffer, whole, pageSize, &batchFingerprints)
            var page = 0
            var consumed = 0
            for piece in wanted {
                if page + piece.pages > whole {
                    // Partly or not read: the piece's mapping changed under us; skip the piece.
                    let readPart = whole - page
                    compare(piece.tracePage, from: page, count: max(0, readPart), into: &result)
                    consumed += 1
                    break
                }
                compare(piece.tracePage, from: page, count: piece.pages, into: &result)
                page += piece.pages
                consumed += 1
            }
            pieces = pieces.dropFirst(consumed)
        }
    }

    private func compare(_ tracePage: UInt64, from: Int, count: Int, into result: inout Result) {
        guard count > 0 else { return }
        fingerprints.withUnsafeMutableBufferPointer { fps in
            batchFingerprints.withUnsafeBufferPointer { now in
                for k in 0..<count where fps[Int(tracePage) + k] != now[from + k] {
                    fps[Int(tracePage) + k] = now[from + k]
                    result.changedPages.append(tracePage + UInt64(k))
                }
            }
        }
    }

    /// The present (or swapped) virtual page ranges of a mapping.
    private func presentRanges(_ m: ProcessMapping, pagemap: Int32?) throws(SystemCallError) -> [Range<UInt64>] {
        let ps = UInt64(pageSize)
        guard let pagemap else { return [(m.start / ps)..<(m.end / ps)] }
        var out: [Range<UInt64>] = []
        var start = m.start
        while start < m.end {
            let capacity = regions.count
            let filled: Int
            var walkEnd: UInt64 = 0
            filled = try regions.withUnsafeMutableBufferPointer { (vec) throws(SystemCallError) -> Int in
                var arg = mp_pm_scan_arg()
                arg.size = UInt64(MemoryLayout<mp_pm_scan_arg>.size)
                arg.start = start
                arg.end = m.end
                arg.vec = UInt64(UInt(bitPattern: vec.baseAddress))
                arg.vec_len = UInt64(capacity)
                arg.category_anyof_mask = UInt64(MP_PAGE_IS_PRESENT | MP_PAGE_IS_SWAPPED)
                arg.return_mask = UInt64(MP_PAGE_IS_PRESENT | MP_PAGE_IS_SWAPPED)
                let n = try Sys.pagemapScan(pagemap, &arg)
                walkEnd = arg.walk_end
                return n
            }
            for r in regions[0..<filled] { out.append((r.start / ps)..<(r.end / ps)) }
            guard walkEnd > start else { break }
            start = walkEnd
        }
        return out
    }

    private static func pagemapScanWorks(_ fd: Int32) -> Bool {
        var arg = mp_pm_scan_arg()
        arg.size = UInt64(MemoryLayout<mp_pm_scan_arg>.size)
        // An empty walk: the kernel checks the arguments and returns 0 if it knows the ioctl.
        return (try? Sys.pagemapScan(fd, &arg)) != nil
    }
}

// Every system call of the MigrationEngine module, each wrapped once by Traces' `systemCall`:
// EINTR is retried, a failure becomes a `SystemCallError` that names the call.
import CUring
import Glibc
import Traces

enum Sys {
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))

    // MARK: memory

    /// A private anonymous read-write mapping of `size` bytes.
    static func mapAnonymous(_ size: Int) throws(SystemCallError) -> UnsafeMutableRawPointer {
        guard let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED else {
            throw SystemCallError(call: "mmap(\(size) bytes, anonymous)", errno: Glibc.errno)
        }
        return p
    }

    static func unmap(_ base: UnsafeMutableRawPointer, _ size: Int) { _ = munmap(base, size) }

    /// Faults every page of the range in, writable (MADV_POPULATE_WRITE, Linux 5.14+).
    static func populateWrite(_ base: UnsafeMutableRawPointer, _ size: Int) throws(SystemCallError) {
        _ = try systemCall("madvise(MADV_POPULATE_WRITE)") { madvise(base, size, 23 /* MADV_POPULATE_WRITE */) }
    }

    /// Advises the kernel to back the range with transparent huge pages (MADV_HUGEPAGE) or
    /// never to (MADV_NOHUGEPAGE). Advice only: a kernel built without them refuses it, and
    /// the range then keeps 4 KiB pages.
    static func adviseHugePages(_ base: UnsafeMutableRawPointer, _ size: Int, _ wanted: Bool) {
        _ = madvise(base, size, wanted ? 14 /* MADV_HUGEPAGE */ : 15 /* MADV_NOHUGEPAGE */)
    }

    /// Drops the pages of `runs` (pages of `pageSize` bytes from `base`; MADV_DONTNEED): the
    /// next touch finds them missing. Batched through process_madvise, one TLB flush for up to
    /// 1,024 runs: a madvise a run costs 5 µs here, 15 µs while another thread of this process
    /// runs on the other CPU (each flush an IPI), against 3.8 µs batched either way (8,600 runs
    /// of 13 pages). Where the kernel does not let a process so advise itself (before 6.13),
    /// or a batch stops short, the runs go one madvise each (dropping a page twice is harmless).
    static func discard(_ runs: [PageRange], of base: UnsafeMutableRawPointer, pageSize: Int) throws(SystemCallError) {
        guard !runs.isEmpty else { return }
        let iovecs = runs.map { mp_iovec(base: base + Int($0.start) * pageSize, length: Int($0.count) * pageSize) }
        let wanted = runs.reduce(0) { $0 + Int($1.count) * pageSize }
        if mp_discard_ranges(iovecs, UInt(iovecs.count)) == wanted { return }
        for v in iovecs {
            _ = try systemCall("madvise(MADV_DONTNEED)") { madvise(v.base, v.length, MADV_DONTNEED) }
        }
    }

    /// Moves the pages of `runs` out of the region at `base` (UFFDIO_MOVE through `fd`, with
    /// which both the region and `scratch` are registered) to consecutive addresses from
    /// `scratch`: the runs read as missing at once, and freeing their pages is left to whoever
    /// unmaps `scratch`. Returns what could not be moved (nothing, or the runs from the first
    /// failure on), for `discard`.
    static func moveOut(_ runs: [PageRange], of base: UnsafeMutableRawPointer, pageSize: Int, uffd fd: Int32,
                        to scratch: UnsafeMutableRawPointer) -> [PageRange] {
        guard !runs.isEmpty else { return [] }
        let iovecs = runs.map { mp_iovec(base: base + Int($0.start) * pageSize, length: Int($0.count) * pageSize) }
        var donePages = UInt64(max(0, mp_uffd_move_ranges(fd, iovecs, UInt(iovecs.count), address(scratch))) / pageSize)
        var rest: [PageRange] = []
        for run in runs {
            if donePages >= run.count { donePages -= run.count; continue }
            rest.append(PageRange(start: run.start + donePages, count: run.count - donePages))
            donePages = 0
        }
        return rest
    }

    /// The pages of `size` bytes at `base` freed, then the mapping removed. Freed first
    /// (MADV_DONTNEED) 2 MiB at a time under the mmap read lock: other threads' faults and
    /// installs go on meanwhile, and one that must map (a thread's stack, a large allocation)
    /// waits for one chunk, not for the whole; the unmap then finds nothing left to free.
    static func free(_ base: UnsafeMutableRawPointer, _ size: Int) {
        for offset in stride(from: 0, to: size, by: 2 << 20) {
            _ = madvise(base + offset, min(2 << 20, size - offset), MADV_DONTNEED)
        }
        unmap(base, size)
    }

    /// Keeps memory that malloc gets back in the process, for the next allocation: by default
    /// glibc maps each large block afresh and unmaps it when freed, and trims its heaps, so a
    /// switch's temporary arrays (range lists, bitmaps: hundreds of KiB) are fresh pages each
    /// time, each a first touch (≈ 6–20 µs a page on this machine) inside the downtime.
    /// Process-wide and idempotent; both sides of a migration call it when they are made.
    static func keepFreedMemory() { mp_keep_freed_memory() }

    // MARK: userfaultfd and PAGEMAP_SCAN

    static func uffdSupportedFeatures() throws(SystemCallError) -> UInt64 {
        UInt64(try systemCall("userfaultfd(UFFDIO_API probe)") { mp_uffd_supported_features() })
    }

    static func uffdOpen(features: UInt64) throws(SystemCallError) -> Int32 {
        try systemCall("userfaultfd(UFFDIO_API features 0x\(String(features, radix: 16)))") { mp_uffd_open(features) }
    }

    static func uffdRegister(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ size: Int, mode: UInt64) throws(SystemCallError) {
        _ = try systemCall("ioctl(UFFDIO_REGISTER)") { mp_uffd_register(fd, address(base), UInt64(size), mode) }
    }

    static func uffdUnregister(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ size: Int) {
        _ = mp_uffd_unregister(fd, address(base), UInt64(size))
    }

    static func uffdWriteProtect(_ fd: Int32, _ start: UInt64, _ length: UInt64, protect: Bool) throws(SystemCallError) {
        _ = try systemCall(protect ? "ioctl(UFFDIO_WRITEPROTECT)" : "ioctl(UFFDIO_WRITEPROTECT, un-protect)") {
            mp_uffd_writeprotect(fd, start, length, protect ? 1 : 0)
        }
    }

    /// Installs `length` bytes at `destination` into missing pages only, waking the threads that
    /// fault there: UFFDIO_COPY from `source`, or UFFDIO_ZEROPAGE when `source` is nil. Returns
    /// how many bytes were installed before a page already present stopped it (0 when the first
    /// one is present); a present page is never overwritten.
    static func uffdInstall(_ fd: Int32, at destination: UInt64, from source: UnsafeRawPointer?, length: UInt64) throws(SystemCallError) -> UInt64 {
        while true {
            let n = source.map { mp_uffd_copy(fd, destination, $0, length) } ?? mp_uffd_zeropage(fd, destination, length)
            if n >= 0 { return UInt64(n) }
            let error = Glibc.errno
            if error == EEXIST { return 0 }
            if error == EINTR || error == EAGAIN { continue }  // EAGAIN: the mapping was changing
            throw SystemCallError(call: source == nil ? "ioctl(UFFDIO_ZEROPAGE)" : "ioctl(UFFDIO_COPY)", errno: error)
        }
    }

    /// The next page fault waiting on `fd` (address, flags); nil when none is waiting.
    static func uffdReadFault(_ fd: Int32) throws(SystemCallError) -> (address: UInt64, flags: UInt64)? {
        var address: UInt64 = 0, flags: UInt64 = 0
        while true {
            let rc = mp_uffd_read_fault(fd, &address, &flags)
            if rc == 1 { return (address, flags) }
            if rc == 0 { continue }  // another event: not ours to handle
            let error = Glibc.errno
            if error == EAGAIN { return nil }
            if error != EINTR { throw SystemCallError(call: "read(userfaultfd)", errno: error) }
        }
    }

    static func openPagemap() throws(SystemCallError) -> Int32 {
        try systemCall("open(/proc/self/pagemap)") { Glibc.open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC) }
    }

    /// PAGEMAP_SCAN on an open pagemap; returns the number of regions filled.
    static func pagemapScan(_ fd: Int32, _ arg: inout mp_pm_scan_arg) throws(SystemCallError) -> Int {
        try systemCall("ioctl(PAGEMAP_SCAN)") { Int(ioctl(fd, mp_ioctl_pagemap_scan, &arg)) }
    }

    static func address(_ p: UnsafeRawPointer) -> UInt64 { UInt64(UInt(bitPattern: p)) }

    // MARK: descriptors, waiting, time

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    /// A pipe (read end, write end) to wake a thread blocked in `poll`: write a byte to it.
    static func wakePipe() throws(SystemCallError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        _ = try systemCall("pipe") { pipe(&fds) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    static func signal(wakePipe fd: Int32) { var one: UInt8 = 1; _ = Glibc.write(fd, &one, 1) }

    /// Waits until one of `fds` is readable; returns which are.
    static func pollReadable(_ fds: [Int32]) throws(SystemCallError) -> [Bool] {
        var entries = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        _ = try systemCall("poll") { poll(&entries, nfds_t(entries.count), -1) }
        return entries.map { $0.revents != 0 }
    }

    static func monotonicNanoseconds() -> UInt64 { mp_monotonic_ns() }

    static func sleep(nanoseconds: UInt64) { mp_sleep_ns(nanoseconds) }

    // MARK: threads

    /// Starts `body` on a new (joinable) thread.
    static func startThread(_ body: @escaping @Sendable () -> Void) throws(SystemCallError) -> pthread_t {
        final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
        let context = Unmanaged.passRetained(Box(body)).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return nil
        }, context)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(context).release()
            throw SystemCallError(call: "pthread_create", errno: rc)
        }
        return thread
    }

    static func join(_ thread: pthread_t) { _ = pthread_join(thread, nil) }

    /// A thread of its own for work that blocks for as long as a migration lasts (a sender, a
    /// stream reader), detached: whoever waits for it waits on what it signals. Not Dispatch's
    /// global queue, whose pool other blocking work can hold up for most of a second.
    static func startDetachedThread(_ body: @escaping @Sendable () -> Void) throws(SystemCallError) {
        _ = pthread_detach(try startThread(body))
    }
}

/// A mutex with one condition variable (pthread), for threads that park and wake each other.
final class Monitor: @unchecked Sendable {
    // @unchecked: the pthread objects live at stable heap addresses and are only used through them.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)  // for `wait(untilMonotonic:)`
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        condition.deallocate()
    }

    func locked<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Inside `locked`: waits for a `broadcast`.
    func wait() { pthread_cond_wait(condition, mutex) }

    /// Inside `locked`: waits for a `broadcast` or until the monotonic clock reads `deadline` ns.
    func wait(untilMonotonic deadline: UInt64) {
        var ts = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        _ = pthread_cond_timedwait(condition, mutex, &ts)
    }

    /// Inside `locked`: wakes every waiter.
    func broadcast() { pthread_cond_broadcast(condition) }
}

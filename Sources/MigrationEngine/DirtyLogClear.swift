import Synchronization
import Traces

/// The start of pass 1 forgets what the guest wrote before it (QEMU starts from an all-ones
/// bitmap and a cleared log). Done as one scan before the first page, it held the sender back
/// 4.9–6.5 ms on a 448 MiB guest here; this clears the log a chunk at a time on a thread of its
/// own, ahead of the sender, as KVM's manual dirty-log protection lets QEMU clear each chunk
/// just before it sends it. Pass 1 sends a page only once its chunk is cleared: a write before
/// the clear is in what is sent, a write after it is in the next pass.
final class DirtyLogClear: @unchecked Sendable {
    // @unchecked: `failure` is only touched under `monitor`; `cleared` is atomic.
    /// Pages below this are cleared.
    private let cleared = Atomic<UInt64>(0)
    private let pageCount: UInt64
    private let monitor = Monitor()
    private var failure: SystemCallError?
    /// 8 MiB of 4 KiB pages: ≈ 0.1 ms of scanning, less than the sender needs to send them.
    static let chunkPages: UInt64 = 2048

    /// Starts clearing `tracker`'s log over `pageCount` pages, from page 0 up.
    init(_ tracker: any DirtyTracker, pageCount: UInt64) throws(SystemCallError) {
        self.pageCount = pageCount
        try Sys.startDetachedThread { [self] in
            var start: UInt64 = 0
            while start < pageCount {
                let chunk = PageRange(start: start, count: min(Self.chunkPages, pageCount - start))
                do throws(SystemCallError) {
                    try tracker.clear(chunk)
                } catch {
                    monitor.locked {
                        failure = error
                        monitor.broadcast()
                    }
                    return
                }
                start = chunk.end
                monitor.locked {
                    cleared.store(start, ordering: .releasing)
                    monitor.broadcast()
                }
            }
        }
    }

    /// True once every page is cleared: from then on the tracker's counts are the guest's
    /// writes since the clear.
    var isDone: Bool { cleared.load(ordering: .acquiring) >= pageCount }

    /// Returns once every page below `page` is cleared (at once when they are), or throws what
    /// the clear failed with.
    func wait(through page: UInt64) throws(SystemCallError) {
        let target = min(page, pageCount)
        if cleared.load(ordering: .acquiring) >= target { return }
        try monitor.locked { () throws(SystemCallError) in
            while cleared.load(ordering: .acquiring) < target {
                if let failure { throw failure }
                monitor.wait()
            }
        }
    }

    /// Returns once the whole log is cleared: before any collect, which must not run beside a
    /// clear.
    func waitUntilDone() throws(SystemCallError) { try wait(through: pageCount) }
}

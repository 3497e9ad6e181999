import CUring
import Glibc
import Synchronization
import Traces

/// Why a guest cannot run its workloads.
public struct GuestError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Where a guest's workloads had got when it stopped: what a migration carries besides memory
/// (QEMU's device state), so that the destination's guest goes on rather than starts over.
public struct GuestSnapshot: Equatable, Sendable {
    /// Per workload: `fill`, the pages written; the others, the guest nanoseconds they ran.
    public var progress: [UInt64]
    /// The last write sequence of every page (0: never written).
    public var sequences: [UInt64]

    public init(progress: [UInt64], sequences: [UInt64]) {
        self.progress = progress
        self.sequences = sequences
    }
}

/// A guest: `GuestMemory` and one thread per workload writing into it. Workload `i` of `k`
/// owns pages `i·N/k ..< (i+1)·N/k` alone, so no two threads write one page. Every write is a
/// `PageStamp` with the page's next sequence number; the guest keeps the last sequence of every
/// page, which is what a verifier compares a copy against.
///
/// `pause()` stops every writer at a safe point (between two page writes) and returns when all
/// are parked: nothing is written until `resume()` — what a stop-and-copy needs.
public final class Guest: @unchecked Sendable {
    // @unchecked: `sequences[p]` is written only by the thread that owns page p; readers read it
    // while the guest is paused or stopped (the monitor orders them after the writes).
    public let memory: GuestMemory
    public let workloads: [GuestWorkload]
    private let sequences: UnsafeMutablePointer<UInt64>
    private let control = Control()
    private var runners: [Runner] = []
    private var threads: [pthread_t] = []

    /// Checks every workload against the memory (a trace that cannot be opened, a fill larger
    /// than its share); starts nothing. With `resuming`, the guest goes on from where a migrated
    /// guest stopped (see `load(_:)`).
    public init(memory: GuestMemory, workloads: [GuestWorkload], resuming snapshot: GuestSnapshot? = nil) throws(GuestError) {
        guard !workloads.isEmpty else { throw GuestError(description: "a guest needs at least one workload") }
        self.memory = memory
        self.workloads = workloads
        // Zeroed here, not when a snapshot arrives: a destination makes its guest before the
        // migration stops the source, so that the table's first touch is not in the downtime.
        sequences = .allocate(capacity: Int(memory.pageCount))
        sequences.initialize(repeating: 0, count: Int(memory.pageCount))
        let n = UInt64(workloads.count)
        for (i, workload) in workloads.enumerated() {
            let lo = memory.pageCount * UInt64(i) / n, hi = memory.pageCount * UInt64(i + 1) / n
            guard hi > lo else { throw GuestError(description: "\(workloads.count) workloads need at least as many pages") }
            runners.append(try Runner(workload, pages: PageRange(start: lo, count: hi - lo), memory: memory, sequences: sequences, control: control))
        }
        if let snapshot { try load(snapshot) }
    }

    /// Before `start()`: the guest goes on from where a migrated guest stopped — the same
    /// workloads, its page sequences, each workload's progress.
    public func load(_ snapshot: GuestSnapshot) throws(GuestError) {
        precondition(threads.isEmpty, "a snapshot is loaded before the guest starts")
        guard snapshot.progress.count == workloads.count else {
            throw GuestError(description: "the migrated guest ran \(snapshot.progress.count) workloads; this one is given \(workloads.count)")
        }
        guard UInt64(snapshot.sequences.count) == memory.pageCount else {
            throw GuestError(description: "the migrated guest had \(snapshot.sequences.count) pages; this one has \(memory.pageCount)")
        }
        _ = UnsafeMutableBufferPointer(start: sequences, count: Int(memory.pageCount)).update(fromContentsOf: snapshot.sequences)
        for (runner, progress) in zip(runners, snapshot.progress) { runner.resume(at: progress) }
    }

    deinit {
        stop()
        sequences.deallocate()
    }

    /// Starts the workload threads (once: a stopped guest does not start again).
    public func start() throws(SystemCallError) {
        precondition(threads.isEmpty && !control.stopRequested.load(ordering: .relaxed), "a guest starts once")
        for runner in runners { threads.append(try Sys.startThread { runner.run() }) }
    }

    /// Stops every writer at a safe point; returns when none is mid-write. Idempotent.
    public func pause() {
        control.monitor.locked {
            control.pauseRequested.store(true, ordering: .sequentiallyConsistent)
            while control.parked + control.finished < threads.count { control.monitor.wait() }
        }
    }

    /// Lets paused writers go on.
    public func resume() {
        control.monitor.locked {
            control.pauseRequested.store(false, ordering: .sequentiallyConsistent)
            control.monitor.broadcast()
        }
    }

    /// Ends the workload threads and waits for them.
    public func stop() {
        control.stopRequested.store(true, ordering: .sequentiallyConsistent)
        resume()
        for thread in threads { Sys.join(thread) }
        threads = []
    }

    public var isPaused: Bool { control.monitor.locked { control.pauseRequested.load(ordering: .relaxed) } }

    /// True once every `fill` workload has written all its pages and every `trace` replay the
    /// pages its trace says hold data at the start: the guest holds its data, as a guest does
    /// that has run for a while before it is migrated.
    public var isFilled: Bool { control.fillsPending.load(ordering: .acquiring) == 0 }

    /// Page writes so far (every stamp counts, repeats included).
    public var pagesWritten: UInt64 { control.writes.load(ordering: .relaxed) }

    /// The first failure of a workload thread (a trace that fails to decode), if any.
    public var failure: String? { control.monitor.locked { control.failure } }

    /// Where the workloads are and every page's last sequence, for a guest that goes on
    /// elsewhere (`init(memory:workloads:resuming:)`). Exact while the guest is paused or stopped.
    public func snapshot() -> GuestSnapshot {
        GuestSnapshot(progress: progress, sequences: lastSequences())
    }

    /// `GuestSnapshot.progress` alone (the device state), without a copy of the sequences.
    public var progress: [UInt64] { control.monitor.locked { runners.map(\.progress) } }

    /// The sequence of the last stamp written to `page`; 0 if it was never written. Exact while
    /// the guest is paused or stopped.
    public func lastSequence(page: UInt64) -> UInt64 {
        precondition(page < memory.pageCount)
        return sequences[Int(page)]
    }

    /// The last sequence of every page (0: never written), for a verifier elsewhere — the
    /// destination of a migration. Exact while the guest is paused or stopped.
    public func lastSequences() -> [UInt64] { lastSequences(of: 0..<Int(memory.pageCount)) }

    /// The last sequences of `pages` alone: a source sends the stamps in frames, each copied
    /// from here while the guest is paused, not from a copy of the whole table.
    public func lastSequences(of pages: Range<Int>) -> [UInt64] {
        precondition(pages.upperBound <= Int(memory.pageCount))
        return Array(UnsafeBufferPointer(start: sequences + pages.lowerBound, count: pages.count))
    }

    /// Pages of `copy` (a region laid out like the guest's) whose stamp is not the guest's last
    /// one: lost, stale or corrupt. Call while the guest is paused or stopped.
    public func mismatches(in copy: GuestMemory, knownZero: PageBitmap? = nil) -> [UInt64] {
        Self.mismatches(in: copy, expected: UnsafeBufferPointer(start: sequences, count: Int(memory.pageCount)), knownZero: knownZero)
    }

    private static let prefetchAhead: UInt64 = 16

    /// Pages of `copy` whose stamp is not `expected[page]` (0: must be unstamped).
    /// `knownZero`: pages the caller knows hold zeros without reading them (a destination's
    /// pages that nothing ever touched; reading one through userfaultfd would cost a fault).
    public static func mismatches(in copy: GuestMemory, expected: some Collection<UInt64>, knownZero: PageBitmap? = nil) -> [UInt64] {
        precondition(UInt64(expected.count) == copy.pageCount, "\(expected.count) sequences for \(copy.pageCount) pages")
        var out: [UInt64] = []
        for (page, sequence) in zip(0..<copy.pageCount, expected) {
            // One line a page, a page apart: fetched some pages ahead, the walk does not wait
            // on memory for each (131,072 pages took 3–5 ms so).
            if page + prefetchAhead < copy.pageCount { mp_prefetch(copy.pointer(page: page + prefetchAhead)) }
            if knownZero?.contains(page) == true {
                if sequence != 0 { out.append(page) }
                continue
            }
            let wanted: PageStamp.Reading = sequence == 0 ? .unstamped : .stamped(PageStamp(page: page, sequence: sequence))
            if PageStamp.read(from: copy.pointer(page: page)) != wanted { out.append(page) }
        }
        return out
    }

    /// What the guest and its threads share.
    fileprivate final class Control: @unchecked Sendable {
        // @unchecked: `parked`, `finished` and `failure` are only touched inside `monitor.locked`.
        let monitor = Monitor()
        let pauseRequested = Atomic<Bool>(false)
        let stopRequested = Atomic<Bool>(false)
        let writes = Atomic<UInt64>(0)
        /// `fill` workloads, and fresh `trace` replays, that have not written their data yet.
        let fillsPending = Atomic<Int>(0)
        var parked = 0
        var finished = 0
        var failure: String?

        /// The safe point: parks while a pause is requested; returns the nanoseconds parked.
        @inline(__always)
        func checkpoint() -> UInt64 {
            guard pauseRequested.load(ordering: .acquiring) else { return 0 }
            let from = Sys.monotonicNanoseconds()
            monitor.locked {
                parked += 1
                monitor.broadcast()
                while pauseRequested.load(ordering: .relaxed) { monitor.wait() }
                parked -= 1
            }
            return Sys.monotonicNanoseconds() - from
        }
    }
}

/// One workload thread: writes its workload's pages into its share of the guest, on time.
private final class Runner: @unchecked Sendable {
    // @unchecked: used by its own thread only, after init; it writes only its share of `sequences`.
    let memory: GuestMemory
    let sequences: UnsafeMutablePointer<UInt64>
    let control: Guest.Control
    let workload: GuestWorkload
    let pages: PageRange
    let trace: TraceReader?
    /// Nanoseconds spent parked: the workload's clock stops while the guest is paused.
    var paused: UInt64 = 0
    var writes: UInt64 = 0
    /// Where a migrated workload resumes (see `GuestSnapshot.progress`), and the guest time at
    /// which this thread started.
    var resumedAt: UInt64 = 0
    var origin: UInt64 = 0
    /// Pages filled so far (`fill` only).
    var filled: UInt64 = 0
    /// `GuestSnapshot.progress`, brought up to date at every safe point where the thread parks.
    var progress: UInt64

    struct Stop: Error {}

    init(_ workload: GuestWorkload, pages: PageRange, memory: GuestMemory, sequences: UnsafeMutablePointer<UInt64>,
         control: Guest.Control) throws(GuestError) {
        progress = 0
        self.memory = memory
        self.sequences = sequences
        self.control = control
        self.workload = workload
        self.pages = pages
        switch workload {
        case .fill(let bytes):
            guard Self.pagesToFill(bytes, pageSize: memory.pageSize) <= pages.count else {
                throw GuestError(description: "\(workload) does not fit its \(pages.count) pages of \(memory.pageSize) bytes")
            }
            trace = nil
        case .synthetic:
            trace = nil
        case .trace(let path, _):
            do {
                trace = try TraceReader(path: path)
            } catch {
                throw GuestError(description: "\(workload): \(error)")
            }
        }
        if holdsDataToWrite { control.fillsPending.add(1, ordering: .relaxed) }
    }

    /// Before the thread starts: go on from `point` of the workload (`GuestSnapshot.progress`).
    func resume(at point: UInt64) {
        let pendingBefore = holdsDataToWrite
        resumedAt = point
        progress = point
        filled = point
        if pendingBefore, !holdsDataToWrite { control.fillsPending.subtract(1, ordering: .relaxed) }
    }

    /// A `fill` not yet done, or a replay that has not yet written its initial data (a
    /// resumed replay finds it migrated already).
    private var holdsDataToWrite: Bool {
        switch workload {
        case .fill(let bytes): filled < Self.pagesToFill(bytes, pageSize: memory.pageSize)
        case .synthetic: false
        case .trace: resumedAt == 0
        }
    }

    private static func pagesToFill(_ bytes: UInt64, pageSize: Int) -> UInt64 { (bytes + UInt64(pageSize) - 1) / UInt64(pageSize) }

    /// Guest time: the monotonic clock less the time spent paused.
    var now: UInt64 { Sys.monotonicNanoseconds() - paused }

    /// Writes `page` (relative to this runner's share) after the safe point; throws to stop.
    @inline(__always)
    func write(_ page: UInt64) throws(Stop) {
        // About to park: count what was written first, so that a paused guest's count is exact.
        if control.pauseRequested.load(ordering: .relaxed) { flushCount(); noteProgress() }
        paused += control.checkpoint()
        if control.stopRequested.load(ordering: .relaxed) { throw Stop() }
        let p = pages.start + page
        let sequence = sequences[Int(p)] + 1
        sequences[Int(p)] = sequence
        PageStamp(page: p, sequence: sequence).write(to: memory.base + Int(p) * memory.pageSize)
        writes += 1
    }

    /// Sleeps until guest time `deadline`, counted as parked meanwhile (nothing is mid-write),
    /// so that `pause()` need not wait for the sleep to end; stays parked while paused.
    func sleep(until deadline: UInt64) throws(Stop) {
        flushCount()  // parked while asleep: the count and progress must be exact if a pause comes
        noteProgress()
        let stopped = control.monitor.locked { () -> Bool in
            control.parked += 1
            control.monitor.broadcast()
            while !control.stopRequested.load(ordering: .relaxed) {
                if control.pauseRequested.load(ordering: .relaxed) {
                    let from = Sys.monotonicNanoseconds()
                    control.monitor.wait()
                    paused += Sys.monotonicNanoseconds() - from
                    continue
                }
                if now >= deadline { break }
                control.monitor.wait(untilMonotonic: deadline + paused)
            }
            control.parked -= 1
            return control.stopRequested.load(ordering: .relaxed)
        }
        if stopped { throw Stop() }
    }

    func noteProgress() {
        switch workload {
        case .fill: progress = filled
        case .synthetic, .trace: progress = resumedAt + (now - origin)
        }
    }

    func flushCount() {
        control.writes.add(writes, ordering: .relaxed)
        writes = 0
    }

    func run() {
        origin = now
        do {
            switch workload {
            case .fill(let bytes):
                let n = Self.pagesToFill(bytes, pageSize: memory.pageSize)
                guard filled < n else { break }
                for page in filled..<n {
                    try write(page)
                    filled = page + 1
                    if page & 255 == 255 { flushCount() }
                }
                control.fillsPending.subtract(1, ordering: .releasing)
            case .synthetic(var spec):
                spec.pages = pages.count
                // A resumed workload draws other pages than the run it continues.
                spec.seed &+= resumedAt
                try runSynthetic(SyntheticWorkload(spec))
            case .trace(_, let speed):
                try runTrace(trace!, speed: speed)
            }
        } catch is Stop {
        } catch {
            control.monitor.locked { if control.failure == nil { control.failure = "\(workload): \(error)" } }
        }
        flushCount()
        noteProgress()
        control.monitor.locked {
            control.finished += 1
            control.monitor.broadcast()
        }
    }

    static let slice: UInt64 = 1_000_000  // 1 ms

    /// The synthetic generator driven in 1 ms slices of guest time, at its rate.
    func runSynthetic(_ generator: SyntheticWorkload) throws(Stop) {
        var generator = generator
        var last = now
        while true {
            try sleep(until: last + Self.slice)
            let t = now
            for range in generator.next(seconds: Double(t - last) / 1e9) {
                for page in range.start..<range.end { try write(page) }
            }
            flushCount()
            last = t
        }
    }

    /// A fresh replay first writes the pages the trace says hold data at the start (every page
    /// without an initial-data block), as fast as it can, as `fill` does: otherwise they would
    /// migrate as zero pages, which the trace's guest did not have. Then each interval's pages
    /// spread evenly over the interval (divided by `speed`), in 1 ms slices of guest time, and
    /// from the first interval again after the last, as the what-if simulator replays it: a
    /// migration that outlasts the recording meets the same load, not an idle guest. Trace
    /// pages beyond this share wrap around it. A resumed replay starts again at the beginning
    /// of the interval it was in.
    func runTrace(_ trace: TraceReader, speed: Double) throws {
        if resumedAt == 0 {
            for range in trace.initialData ?? [PageRange(start: 0, count: trace.header.pageCount)] {
                for page in range.start..<range.end {
                    try write(page % pages.count)
                    if page & 255 == 255 { flushCount() }
                }
            }
            flushCount()
            control.fillsPending.subtract(1, ordering: .releasing)
            origin = now  // the trace's clock starts after its initial data
        }
        guard trace.intervalCount > 0 else { return }
        let length = UInt64(Double(trace.header.intervalNanoseconds) / speed)
        var intervalStart = now
        var skip = (resumedAt / max(length, 1)) % UInt64(trace.intervalCount)
        while true {
            try trace.forEachInterval(from: Int(skip)) { view in
                let total = view.written.reduce(0) { $0 + $1.count }
                var done: UInt64 = 0
                for range in view.written {
                    for page in range.start..<range.end {
                        // Pages due by now: total × elapsed / length; wait a slice when ahead.
                        while done * length >= total * (now - intervalStart) && now - intervalStart < length {
                            try sleep(until: min(now + Self.slice, intervalStart + length))
                        }
                        try write(page % pages.count)
                        done += 1
                    }
                }
                flushCount()
                try sleep(until: intervalStart + length)
                intervalStart += length
            }
            skip = 0
        }
    }
}

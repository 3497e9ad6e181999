import Migration
import Traces
import Transport

/// What the destination of a migration received, and its verdict.
public struct DestinationReport: Sendable {
    public var pagesReceived: UInt64
    public var verified: Bool
    public var detail: String
    /// The migration went through postcopy.
    public var postcopy: Bool
    /// Distinct pages the guest faulted on here before they had arrived (postcopy).
    public var remoteFaults: UInt64
    /// Times the postcopy link broke and was resumed.
    public var recoveries: Int
    /// Pages a stop-and-copy wrote where no data had been written here before: on memory
    /// that was not populated, each one a first touch inside the downtime (0 after postcopy).
    public var stopFreshPages: UInt64
}

/// The destination side of a migration over any `ByteChannel`. Every frame is checked against
/// `StreamReceiverState` before a byte of it reaches guest memory. In precopy pages are copied
/// in; at the switch to postcopy the stale pages are dropped, the region is handed to
/// userfaultfd (`PostcopyFaults`) and the guest starts here from the source's device state
/// and stamps, faulting in what has not arrived; at `complete` every page's stamp is checked
/// against the source's final stamps (or, once the guest runs here, its own newer writes) and
/// the verdict goes back in `complete-ack` — after a stopped copy, once the guest runs here and
/// `guest-running` has ended the downtime. With workloads, the guest runs on here afterwards.
///
/// A link that breaks in postcopy (an error, EOF, a damaged frame, 0.8 s of silence) pauses
/// the destination: every page stays, faulting guest threads sleep on, their requests wait,
/// and the next connection must be the source's `hello` and `resume`; the received bitmap
/// goes back, then `resume-ack`, and the waiting requests are sent again.
public final class MigrationDestination: @unchecked Sendable {
    // @unchecked: used by the thread that calls `run`; the fault thread only sends, through
    // `resumed`, which `sendLock` guards with `current`.
    public let memory: GuestMemory
    public let workloads: [GuestWorkload]
    /// The guest that runs here after the switch or the completion (nil without workloads).
    public private(set) var guest: Guest?
    /// Told of every break and recovery of the postcopy link, as a line for an operator.
    public var onLinkEvent: @Sendable (String) -> Void = { _ in }
    /// Told of every change of the incoming migration's state, with QEMU's names (what a
    /// destination's `query-migrate` says): `active` at the source's first `hello`,
    /// `postcopy-active` at the switch and after each recovery, `postcopy-paused` when the
    /// link breaks in postcopy, `postcopy-recover` when the source's next connection greets,
    /// `completed` once `complete-ack` has gone (whatever the verdict), `failed` when `run`
    /// is about to throw.
    public var onStateChange: @Sendable (MigrationState) -> Void = { _ in }
    private let sendLock = Monitor()
    /// The connection in use; nil while the link is down (requests then wait in `PostcopyFaults`).
    private var current: StreamConnection?
    /// `current` once it carries postcopy (after `postcopy-start-ack` or `resume-ack`): page
    /// requests go only on a link the source has greeted.
    private var resumed: StreamConnection?

    /// How the stale pages are dropped at the switch to postcopy.
    public let postcopyDiscard: StaleRunDrop

    /// `memory` must hold zeros, as `GuestMemory` maps it: a page the stream says is zero and
    /// that nothing was written to here is left untouched. `workloads` run here afterwards.
    public init(memory: GuestMemory, workloads: [GuestWorkload] = [], postcopyDiscard: StaleRunDrop = .auto) {
        self.memory = memory
        self.workloads = workloads
        self.postcopyDiscard = postcopyDiscard
        Sys.keepFreedMemory()
    }

    /// Receives one migration over `channel`. `reconnect` waits for the source's next
    /// connection after a postcopy break (nil: a break ends the migration with an error).
    public func run(channel first: any ByteChannel, reconnect: (() throws -> any ByteChannel)? = nil) throws -> DestinationReport {
        var session = Session(written: PageBitmap(pages: memory.pageCount), touched: PageBitmap(pages: memory.pageCount))
        defer { session.faults?.stop() }
        var channel = first
        while true {
            let connection = StreamConnection(channel: channel)
            sendLock.locked { current = connection }
            var watchdog: LinkWatchdog?
            do {
                defer { watchdog?.stop() }
                if let report = try serve(connection, &session, watch: { if watchdog == nil { watchdog = try self.watch(connection) } },
                                          unwatch: { watchdog?.stop(); watchdog = nil }) { return report }
                throw StreamError(.truncated, "the source closed the stream before completing (state \(session.state.state))")
            } catch {
                sendLock.locked { current = nil }
                channel.abort()
                channel.close()
                let paused = session.faults != nil && [.postcopy, .paused].contains(session.state.state)
                guard paused, let reconnect else { onStateChange(.failed); throw error }
                session.state.connectionLost()
                onStateChange(.postcopyPaused)
                onLinkEvent("postcopy-paused: \(error); every page is kept, waiting for the source to reconnect")
                do { channel = try reconnect() } catch { onStateChange(.failed); throw error }
            }
        }
    }

    /// What one migration has received so far, across the connections it takes.
    private struct Session {
        var state = StreamReceiverState()
        var received: UInt64 = 0
        var progress: [UInt64]?
        /// The source's final stamps, as they arrive; allocated (and so touched) at `hello`,
        /// long before the stop.
        var stamps: [UInt64] = []
        var stampsArrived: UInt64 = 0
        /// The guest that will run here, made at `hello` (its table zeroed, its traces opened)
        /// so that none of that is in the downtime; started at the switch or the completion.
        var guest: Guest?
        /// From `postcopy-listen` (version 5) to `postcopy-start`: the memory registered and
        /// the stale pages dropped, the guest not yet running here.
        var listening: PostcopyFaults?
        var faults: PostcopyFaults?
        var recoveries = 0
        /// Pages a data run has written here (before postcopy), so that a zero run need not
        /// touch pages that are zero already.
        var written: PageBitmap
        /// Pages any data run has written here (a zero run does not clear them): what the
        /// stop's `stopFreshPages` are counted against.
        var touched: PageBitmap
        /// From `stop-and-copy` on, the data runs that arrive are the stop's; of their pages,
        /// those not in `touched` so far.
        var stopping = false
        var stopFreshPages: UInt64 = 0

        /// Pages of the `pageCount` that nothing has written here, neither the stream nor
        /// `guest` (paused) since it started: they hold zeros (the memory was mapped zero).
        func untouched(of pageCount: UInt64, unwrittenBy guest: Guest? = nil) -> PageBitmap {
            var pages = PageBitmap(pages: pageCount), written = written
            pages.insertAll(below: pageCount)
            for r in written.ranges(clearing: false) { pages.remove(r) }
            guard let guest else { return pages }
            for r in pages.ranges(clearing: false) {
                for page in r.start..<r.end where guest.lastSequence(page: page) != 0 { pages.remove(PageRange(start: page, count: 1)) }
            }
            return pages
        }
    }

    /// Serves one connection: the report when the migration completes, nil at the end of the
    /// stream; throws when the connection fails. `watch` arms the connection's watchdog (once)
    /// from the switch to postcopy on, and from the start of a reconnection, so that a new
    /// connection that falls silent half-way through its handshake does not hold the line;
    /// `unwatch` ends it at `complete`, after which the source sends nothing until the answer.
    private func serve(_ connection: StreamConnection, _ session: inout Session, watch: () throws -> Void,
                       unwatch: () -> Void) throws -> DestinationReport? {
        var installFailure: (any Error)?
        let pageSize = memory.pageSize
        let base = memory.base
        if session.faults != nil { try watch() }
        while let message = try connection.receive(pages: { [faults = session.faults] start, count, zero, data throws(StreamError) in
            // The state machine first: a run it refuses never touches guest memory.
            try session.state.accept(.pages(start: start, count: count, zero: zero, bytes: []))
            session.received += UInt64(count)
            if let faults {
                // Postcopy: only into missing pages, through userfaultfd (a write here would
                // fault on our own region).
                do { try faults.install(start: start, count: UInt64(count), data: zero ? nil : data) } catch { installFailure = installFailure ?? error }
                return
            }
            let run = PageRange(start: start, count: UInt64(count))
            if zero {
                // The memory was zero when the migration began: only what a run wrote here
                // before needs clearing (a fresh page is not even touched).
                var page = run.start
                while page < run.end {
                    guard session.written.contains(page) else { page += 1; continue }
                    var end = page + 1
                    while end < run.end, session.written.contains(end) { end += 1 }
                    (base + Int(page) * pageSize).initializeMemory(as: UInt8.self, repeating: 0, count: Int(end - page) * pageSize)
                    page = end
                }
                session.written.remove(run)
            } else {
                (base + Int(start) * pageSize).copyMemory(from: data.baseAddress!, byteCount: data.count)
                session.written.insert(run)
                let fresh = session.touched.insert(run)
                if session.stopping { session.stopFreshPages += fresh }
            }
        }) {
            if let installFailure { throw installFailure }
            if let failure = session.faults?.failure { throw failure }
            if case .pages = message { continue }  // accepted and written above
            try session.state.accept(message)
            switch message {
            case .stopAndCopy:
                session.stopping = true
            case let .hello(version, _, pageCount, features):
                guard pageCount == memory.pageCount, Int(session.state.pageSize) == pageSize else {
                    let reason = "the source's guest has \(pageCount) pages of \(session.state.pageSize) bytes; this one \(memory.pageCount) of \(pageSize)"
                    try? send(.abort(reason: reason), connection)
                    throw StreamError(.malformedPayload, reason)
                }
                // The switch to postcopy drops the stale pages run by run inside the downtime;
                // on huge pages each drop would first split one, and the pages a huge page
                // zeroed around those that arrived would be stale too. QEMU as well keeps a
                // destination that may see postcopy on small pages.
                let first = session.stamps.isEmpty
                if first, features.contains(.postcopy) { memory.adviseHugePages(false) }
                try reply(.helloAck(version: version), &session.state, connection)
                // The stamps' table and the guest are made after the ack, while pass 1's first
                // pages are on their way: the source waits for the ack before it sends a page,
                // and making them (fresh memory, a few milliseconds) would hold it up.
                if first { session.stamps = Array(repeating: 0, count: Int(pageCount)) }
                if session.guest == nil, !workloads.isEmpty { session.guest = try Guest(memory: memory, workloads: workloads) }
                onStateChange(session.faults == nil ? .active : .postcopyRecover)
            case .passStart(pass: 2):
                // Pass 1 brings every page in order, and a huge page's first touch (one fault,
                // 2 MiB zeroed) serves 512 of them. From pass 2 on what arrives is scattered:
                // a page landing where nothing was written yet would have a whole huge page
                // zeroed for it — on this machine, whose host backs guest memory 4 KiB at a
                // time, 1.9–3.5 ms against 5–6 µs for a small page, inside the downtime when it
                // is the stop's. Pages touched from here on are small; the huge ones stay.
                memory.adviseHugePages(false)
            case let .deviceState(p):
                session.progress = p
            case let .stamps(start, sequences):
                session.stamps.replaceSubrange(Int(start)..<Int(start) + sequences.count, with: sequences)
                session.stampsArrived += UInt64(sequences.count)
            case let .postcopyListen(discard):
                // The switch begins with the guest still running on the source: what is stale so
                // far is dropped now, outside the downtime.
                session.listening = try PostcopyFaults(memory: memory, stale: discard, untouched: session.untouched(of: memory.pageCount),
                                                       discard: postcopyDiscard) { [self] ranges in request(ranges) }
                try reply(.postcopyListenAck, &session.state, connection)
            case let .postcopyStart(discard):
                let snapshot = try snapshot(progress: session.progress, stamps: session.stamps, arrived: session.stampsArrived)
                let pageFaults: PostcopyFaults
                if let listening = session.listening {
                    try listening.drop(discard)
                    pageFaults = listening
                    session.listening = nil
                } else {
                    pageFaults = try PostcopyFaults(memory: memory, stale: discard, untouched: session.untouched(of: memory.pageCount),
                                                    discard: postcopyDiscard) { [self] ranges in request(ranges) }
                }
                try pageFaults.start()
                session.faults = pageFaults
                try startGuest(snapshot, session.guest)
                try reply(.postcopyStartAck, &session.state, connection)
                try pageFaults.freeMovedPages()
                sendLock.locked { resumed = connection }
                onStateChange(.postcopyActive)
                try watch()
            case .resume:
                // The received bitmap, then the ack; then the requests that were lost with the link.
                let faults = session.faults!
                try reply(.receivedBitmap(faults.receivedRanges), &session.state, connection)
                try reply(.resumeAck, &session.state, connection)
                sendLock.locked { resumed = connection }
                onStateChange(.postcopyActive)
                session.recoveries += 1
                onLinkEvent("postcopy-active: recovered (recovery \(session.recoveries)); \(faults.missingPages) pages still to come")
                let waiting = faults.waitingRanges
                if !waiting.isEmpty { request(waiting) }
                try watch()
            case let .ping(nonce):
                try reply(.pong(nonce: nonce), &session.state, connection)
            case .complete:
                // The source waits in silence while every page is checked here.
                unwatch()
                // After a stopped copy the guest runs here before the source hears that it may
                // stop for good: the downtime the source measures ends when this guest resumes,
                // as postcopy's does. It says so at once and checks afterwards, so that the
                // check (migpilot's proof, which no real migration makes) is not in the downtime.
                let stoppedCopy = session.faults == nil
                if stoppedCopy {
                    try startGuest(session)
                    try reply(.guestRunning, &session.state, connection)
                }
                // Pages nothing wrote here still hold the zeros they were mapped with: the check
                // skips them rather than read-fault each fresh page in (about 1 µs a page here).
                // After postcopy the fault thread keeps that set; after a stopped copy, a page
                // the guest has written here since it started leaves it.
                let (verified, detail) = verify(stamps: session.stamps, arrived: session.stampsArrived, missing: session.faults?.missingPages ?? 0,
                                                knownZero: { [session, guest, pageCount = memory.pageCount] in
                                                    session.faults?.untouchedPages ?? session.untouched(of: pageCount, unwrittenBy: guest) })
                session.faults?.stop()
                if stoppedCopy, !verified, let guest {
                    // The source's guest goes on: this one, run on memory that failed its check, ends.
                    guest.stop()
                    self.guest = nil
                }
                try reply(.completeAck(verified: verified, detail: detail), &session.state, connection)
                onStateChange(.completed)
                return DestinationReport(pagesReceived: session.received, verified: verified, detail: detail, postcopy: session.faults != nil,
                                         remoteFaults: session.faults?.remoteFaults ?? 0, recoveries: session.recoveries,
                                         stopFreshPages: session.stopFreshPages)
            case .abort(let reason):
                throw StreamError(.peerAborted, reason)
            default:
                break
            }
        }
        return nil
    }

    /// Sends a page request on the link in use once it carries postcopy. While the link is
    /// down or still in its recovery handshake nothing is sent: the
    /// requests wait in `PostcopyFaults` and go again after the recovery. A send that fails
    /// aborts the link, so that the receiving side sees the break too.
    private func request(_ ranges: [PageRange]) {
        sendLock.locked {
            guard let link = resumed, link === current else { return }
            do {
                try link.send(.pageRequest(ranges))
                try link.flush()
            } catch {
                link.channel.abort()
            }
        }
    }

    /// The postcopy watchdog of `connection`. The source pings every quarter second and each
    /// ping is answered, so both directions carry something; the destination only listens.
    private func watch(_ connection: StreamConnection) throws -> LinkWatchdog { try LinkWatchdog(connection) }

    /// The source's device state and stamps as a snapshot to start the guest from; nil when
    /// this destination runs no workloads.
    private func snapshot(progress: [UInt64]?, stamps: [UInt64], arrived: UInt64) throws -> GuestSnapshot? {
        guard !workloads.isEmpty else { return nil }
        guard let progress, arrived >= memory.pageCount else {
            throw EngineError("the source sent no device state and stamps before complete: this destination cannot run its workloads")
        }
        return GuestSnapshot(progress: progress, sequences: stamps)
    }

    /// Starts the guest `session` made at `hello` from the device state and stamps it received.
    private func startGuest(_ session: Session) throws {
        try startGuest(try snapshot(progress: session.progress, stamps: session.stamps, arrived: session.stampsArrived), session.guest)
    }

    /// Starts `prepared`, the guest made at `hello`, from the source's `snapshot`.
    private func startGuest(_ snapshot: GuestSnapshot?, _ prepared: Guest?) throws {
        guard let snapshot, let guest = prepared else { return }
        try guest.load(snapshot)
        try guest.start()
        self.guest = guest
    }

    /// Every page's stamp against the source's final stamps — after postcopy, against the
    /// guest's own table, which started from them and has every write made here since. Without
    /// stamps (a source that sent none) only the stamps' integrity can be checked.
    /// `knownZero` is taken only once the guest here is paused: a page it touches first while
    /// still running leaves that set, and a copy taken before would count its write as lost.
    private func verify(stamps: [UInt64], arrived: UInt64, missing: UInt64, knownZero: () -> PageBitmap?) -> (Bool, String) {
        if missing > 0 { return (false, "the source completed with \(missing) pages never sent") }
        let stamps = arrived >= memory.pageCount ? stamps : nil
        let bad: [UInt64]
        var what = "checked against the source's final stamps"
        if let guest {
            guest.pause()
            defer { guest.resume() }
            bad = guest.mismatches(in: memory, knownZero: knownZero())
            what = "checked against the source's stamps and the writes made here since"
        } else if let stamps {
            bad = Guest.mismatches(in: memory, expected: stamps, knownZero: knownZero())
        } else {
            bad = (0..<memory.pageCount).filter { PageStamp.read(from: memory.pointer(page: $0)) == .corrupt }
            what = "stamps intact (the source sent no final stamps)"
        }
        guard let first = bad.first else { return (true, "\(memory.pageCount) pages, \(what)") }
        let found: String
        switch PageStamp.read(from: memory.pointer(page: first)) {
        case .unstamped: found = "no stamp"
        case .stamped(let s): found = "stamp (page \(s.page), sequence \(s.sequence))"
        case .corrupt: found = "a damaged stamp"
        }
        let wanted = guest.map { $0.lastSequence(page: first) } ?? stamps.map { $0[Int(first)] }
        return (false, "\(bad.count) of \(memory.pageCount) pages do not hold their latest write; the first, page \(first), has \(found)"
                + (wanted.map { ", expected sequence \($0)" } ?? ""))
    }

    private func send(_ message: StreamMessage, _ connection: StreamConnection) throws {
        try sendLock.locked { () throws in
            try connection.send(message)
            try connection.flush()
        }
    }

    private func reply(_ message: StreamMessage, _ state: inout StreamReceiverState, _ connection: StreamConnection) throws {
        try state.send(message)
        try send(message, connection)
    }
}

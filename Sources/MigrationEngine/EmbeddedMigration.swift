import Dispatch
import Migration
import Traces
import Transport

/// Why the embedded engine refused a command.
public struct EngineError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The embedded engine as a `MigrationControl`, so that the policy driver drives a real
/// migration exactly as it drives the simulator. A sender thread runs precopy passes over the
/// channel with QEMU's mechanics: pass 1 sends every page, each next pass what the dirty
/// tracker saw written; the `pending-below-threshold` event fires when what is left of a pass
/// fits the downtime limit at the measured bandwidth; `complete` closes the pass, syncs, and
/// stops the guest for the final copy only if the pending pages fit (under a cap, once it has
/// sent them uncapped with the guest still running: `flushAhead(_:)`), and otherwise goes on
/// from where the pass had got to, wrapping around, as QEMU does. `startPostcopy` stops the
/// guest at the next chunk, sends its device state, stamps and the stale pages to drop, and
/// once the destination runs the guest pushes the rest in the background, pages the
/// destination's guest faulted on first (a return-path thread reads its requests).
///
/// A link that breaks in postcopy (an error, EOF, a damaged frame, or 0.8 s of silence)
/// leaves the migration `postcopy-paused` with every page kept; `recover` reconnects, the
/// destination's received bitmap says what is still missing, and the push goes on. The guest
/// never runs here again once `postcopy-start` has left; a break before that ends the
/// migration with the guest running here as before.
public final class EmbeddedMigration: MigrationControl, @unchecked Sendable {
    // @unchecked: every mutable field below is read and written under `monitor` only, but
    // `connection`: the sender thread alone replaces it (on recovery) and uses its encoder; its
    // decoder belongs to whichever thread reads the return path (the caller of `start`, then
    // the sender thread, then in postcopy a return-path thread per connection); and
    // `logClear`, set by `start` before the sender thread starts and never changed after.
    private let guest: Guest
    private let tracker: any DirtyTracker
    /// The dirty log's first clear, running ahead of pass 1 (nil before `start`).
    private var logClear: DirtyLogClear?
    private var connection: StreamConnection
    private let reconnect: @Sendable (String) throws -> any ByteChannel
    /// What every hello offers: postcopy and recovery, or nothing.
    private let features: StreamFeatures
    private let monitor = Monitor()
    private let pageBytes: Double

    private enum Request { case none, complete(UInt64?), postcopy, cancel(String) }
    /// The source's protocol state, shared by the sender and the return-path thread.
    private var stream = StreamSenderState()
    private var request = Request.none
    private var completeAnswer: Bool?
    private var state = MigrationState.none
    private var events: [MigrationEvent] = []
    private var pass = 0
    private var remaining: UInt64 = 0
    private var transferred: UInt64 = 0
    private var startNanoseconds: UInt64 = 0
    private var lastSyncNanoseconds: UInt64 = 0
    private var lastPassDirtyRate = 0.0
    /// Transfer rate over the last complete window of `bandwidthWindowSeconds`.
    private var measuredBandwidth = 0.0
    private var window: (nanoseconds: UInt64, bytes: UInt64)?
    /// Pacing starts at the first byte of data, not at the hello, and again after a stall.
    private var paceOrigin: (nanoseconds: UInt64, bytes: UInt64)?
    private var downtimeLimit = 0.3
    private var bandwidthCap: Double?
    private var downtime: Double?
    private var stopCarried: StopLoad?
    private var listenCarried: AheadLoad?
    private var flushCarried: AheadLoad?
    private let flushesAhead: Bool
    private var failure: String?
    /// Postcopy: when the guest stopped here, pages the destination asked for not yet served,
    /// and the destination's pages requested so far (QEMU's postcopy-requests).
    private var postcopyFrom: UInt64?
    private var postcopyEnd: UInt64?
    private var urgent: [PageRange] = []
    private var requestedPages: UInt64 = 0
    private var completeAck: StreamMessage?
    private var returnPathFailure: String?
    /// Recovery: the channel in use (what `pause` and injected cuts abort), a `recover` asked
    /// for and not yet tried, handshakes that succeeded, and cuts still to inject into one.
    private var link: any ByteChannel
    private var recoverRequest: (uri: String, after: Double)?
    private var recoveriesDone = 0
    private var recoveriesFailed = 0
    /// An injected cut keeps the link down until then: reconnections fail meanwhile.
    private var linkDownUntil: UInt64 = 0
    /// Time spent paused (postcopy-paused and postcopy-recover), and since when, if paused now.
    private var pausedNanoseconds: UInt64 = 0
    private var pausedSince: UInt64?
    private var lastRecoveryFailure: String?
    private var handshakeCuts = 0
    private let timedCuts: [InjectedCut]
    /// Keep-alive traffic the sender thread owes: a ping the watchdog asked for, and pongs.
    private var pingDue = false
    private var pongsOwed: [UInt64] = []
    private var pingNonce: UInt64 = 0
    /// The guest has been handed to the destination (`postcopy-start` left): never resume it here.
    private var handedOver = false
    /// The destination's answer to `complete`: its own stamp check.
    public private(set) var destinationVerified: Bool?
    public private(set) var destinationDetail: String?
    /// From the switch to postcopy to the end; nil when the migration stayed in precopy.
    public var postcopySeconds: Double? {
        monitor.locked { postcopyFrom.map { Double((postcopyEnd ?? Self.now()) - $0) / 1e9 } }
    }
    /// What the guest's stop carried; nil until the destination has resumed the guest.
    public var stopLoad: StopLoad? { monitor.locked { stopCarried } }
    /// What a switch to postcopy dropped before the guest stopped; nil until then, and in a
    /// migration that does not switch.
    public var listenLoad: AheadLoad? { monitor.locked { listenCarried } }
    /// What a stop-and-copy sent before the guest stopped (`flushAhead`); nil until then, and
    /// in a migration that switches to postcopy or has no cap.
    public var flushLoad: AheadLoad? { monitor.locked { flushCarried } }
    /// Pages the destination's guest faulted on and asked for (QEMU's postcopy-requests).
    public var remoteFaults: UInt64 { monitor.locked { requestedPages } }
    /// Seconds the migration has spent paused in postcopy (QEMU's postcopy-paused and -recover).
    public var pausedSeconds: Double {
        monitor.locked { Double(pausedNanoseconds + (pausedSince.map { Self.now() - $0 } ?? 0)) / 1e9 }
    }
    /// Recovery handshakes that succeeded, and those that failed with the last one's reason.
    public var recoveries: Int { monitor.locked { recoveriesDone } }
    public var failedRecoveries: (count: Int, lastReason: String?) { monitor.locked { (recoveriesFailed, lastRecoveryFailure) } }
    private let finished = DispatchSemaphore(value: 0)

    /// `reconnect` opens the channel a recovery asks for (`recover(uri:after:)`; an empty URI
    /// means the original destination); without it a broken postcopy link cannot be recovered.
    /// `cuts` are link cuts to inject (`InjectedCut`). Without `postcopy` the hello offers
    /// neither postcopy nor recovery (QEMU's postcopy-ram capability off): `startPostcopy()`
    /// is refused, and the destination may back its memory with huge pages. `flushAhead`: a
    /// capped stop-and-copy sends its pending pages at the link's rate before the guest stops
    /// (`flushAhead(_:)`); false, with the guest stopped, as QEMU does.
    public init(guest: Guest, tracker: any DirtyTracker, channel: any ByteChannel, postcopy: Bool = true, flushAhead: Bool = true,
                reconnect: @escaping @Sendable (String) throws -> any ByteChannel = { _ in throw EngineError("this migration has no way to reconnect") },
                cuts: [InjectedCut] = []) {
        self.guest = guest
        self.tracker = tracker
        self.reconnect = reconnect
        features = postcopy ? [.postcopy, .recovery] : []
        flushesAhead = flushAhead
        link = channel
        connection = StreamConnection(channel: channel, pageSize: UInt32(guest.memory.pageSize))
        connection.touchBuffers()
        pageBytes = Double(guest.memory.pageSize + StreamFrame.pagesPrefix)
        timedCuts = cuts.filter { if case .timed = $0 { true } else { false } }
        handshakeCuts = cuts.reduce(0) { if case let .duringRecovery(n) = $1 { $0 + n } else { $0 } }
        Sys.keepFreedMemory()
    }

    /// The clock `Monitor.wait(untilMonotonic:)` waits on.
    private static func now() -> UInt64 { Sys.monotonicNanoseconds() }

    // MARK: MigrationControl

    public func start() throws {
        try monitor.locked { () throws(EngineError) in
            guard state == .none else { throw EngineError("'start' is not allowed in state '\(state.rawValue)'") }
            state = .setup
            startNanoseconds = Self.now()
            lastSyncNanoseconds = startNanoseconds
        }
        let memory = guest.memory
        try frame(.hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount, features: features))
        try connection.flush()
        // Pass 1 sends every page: what the guest wrote before it is in it already, and the
        // dirty samples start from the clear, which runs ahead of the sender from here on.
        logClear = try DirtyLogClear(tracker, pageCount: memory.pageCount)
        _ = try expectReply("hello-ack")
        monitor.locked {
            lastSyncNanoseconds = Self.now()
            state = .active
            pass = 1
            remaining = memory.pageCount
            events.append(.stateChanged)
        }
        try Sys.startDetachedThread { [self] in
            do { try send() } catch {
                // Before the hand-over nothing is lost: the guest goes on here.
                if !monitor.locked({ handedOver }) { guest.resume() }
                monitor.locked {
                    failure = "\(error)"
                    state = .failed
                    events.append(.channelBroken(reason: "\(error)"))
                    completeAnswer = completeAnswer ?? false
                    monitor.broadcast()
                }
            }
            finished.signal()
        }
    }

    public func nextObservation(within seconds: Double) throws -> Observation {
        let sync = monitor.locked { () -> UInt64 in
            let deadline = Self.now() + UInt64(seconds * 1e9)
            while events.isEmpty, !state.isFinished, Self.now() < deadline { monitor.wait(untilMonotonic: deadline) }
            return lastSyncNanoseconds
        }
        let dirty = dirtySinceSync()
        return monitor.locked {
            defer { events.removeAll() }
            // A sync between the scan and now: the count belongs to the pass before.
            return Observation(status: statusLocked(dirtySinceSync: lastSyncNanoseconds == sync ? dirty : 0), events: events)
        }
    }

    /// What the tracker saw written since the last sync (the model's dirty-rate sample), read
    /// outside the monitor: a scan takes a few milliseconds on a large guest.
    private func dirtySinceSync() -> UInt64 {
        // Pages the first clear has not reached yet would count as written.
        guard monitor.locked({ state == .active }), logClear?.isDone == true else { return 0 }
        return (try? tracker.writtenSinceCollect()) ?? 0
    }

    public func complete(maxPendingPages: UInt64?) throws -> Bool {
        try monitor.locked { () throws(EngineError) -> Bool in
            guard state == .active else { throw EngineError("'complete' is not allowed in state '\(state.rawValue)'") }
            request = .complete(maxPendingPages)
            completeAnswer = nil
            monitor.broadcast()
            while completeAnswer == nil { monitor.wait() }
            return completeAnswer!
        }
    }

    /// Asks the sender to switch at its next chunk; the switch shows as `postcopy-active`.
    public func startPostcopy() throws {
        try monitor.locked { () throws(EngineError) in
            guard features.contains(.postcopy) else { throw EngineError("'start-postcopy': this migration did not offer postcopy at its start") }
            guard state == .active else { throw EngineError("'start-postcopy' is not allowed in state '\(state.rawValue)'") }
            if case .postcopy = request { throw EngineError("'start-postcopy' was already asked for; the switch comes at the next chunk") }
            request = .postcopy
            monitor.broadcast()
        }
    }

    public func setDowntimeLimit(seconds: Double) throws { monitor.locked { downtimeLimit = seconds } }
    public func setBandwidth(bytesPerSecond: Double?) throws { monitor.locked { bandwidthCap = bytesPerSecond } }
    public func throttle(percent: Int) throws { throw EngineError("throttling is not built yet in the embedded engine") }
    /// QEMU's migrate-pause: breaks the postcopy link on purpose; both sides pause.
    public func pause() throws {
        let channel = try monitor.locked { () throws(EngineError) -> any ByteChannel in
            guard state == .postcopyActive else { throw EngineError("'pause' is only allowed in state 'postcopy-active', not '\(state.rawValue)'") }
            return link
        }
        channel.abort()
    }

    /// Reconnects a paused postcopy over `uri` (empty: the original destination) after `seconds`.
    public func recover(uri: String, after seconds: Double) throws {
        try monitor.locked { () throws(EngineError) in
            guard state == .postcopyPaused else { throw EngineError("'recover' is only allowed in state 'postcopy-paused', not '\(state.rawValue)'") }
            guard recoverRequest == nil else { throw EngineError("a recovery is already under way") }
            recoverRequest = (uri, max(0, seconds))
            monitor.broadcast()
        }
    }

    public func cancel(reason: String) throws {
        try monitor.locked { () throws(EngineError) in
            guard ![.postcopyActive, .postcopyPaused, .postcopyRecover].contains(state) else {
                throw EngineError("a migration in postcopy cannot be cancelled: the guest runs on the destination, which still needs the rest of its pages")
            }
            request = .cancel(reason)
            monitor.broadcast()
        }
    }

    /// Blocks until the sender thread has ended (completed, failed or cancelled).
    public func waitUntilFinished() { finished.wait(); finished.signal() }

    public var status: MigrationStatus {
        let dirty = dirtySinceSync()
        return monitor.locked { statusLocked(dirtySinceSync: dirty) }
    }

    private func statusLocked(dirtySinceSync: UInt64) -> MigrationStatus {
        let now = Self.now()
        let elapsed = Double(now - startNanoseconds) / 1e9
        let bandwidth = measuredBandwidth
        return MigrationStatus(
            state: state, elapsedSeconds: elapsed, pass: pass, pageSize: guest.memory.pageSize, totalPages: guest.memory.pageCount,
            remainingPages: remaining, transferredBytes: transferred, dirtyPagesSinceSync: dirtySinceSync,
            secondsSinceSync: Double(now - lastSyncNanoseconds) / 1e9, dirtyPagesRate: lastPassDirtyRate,
            bandwidthBytesPerSecond: bandwidth, expectedDowntimeSeconds: bandwidth > 0 ? Double(remaining) * pageBytes / bandwidth : 0,
            downtimeLimitSeconds: downtimeLimit, postcopyRequests: requestedPages, downtimeSeconds: downtime)
    }

    // MARK: the sender thread

    private func send() throws {
        let memory = guest.memory
        var ranges = [PageRange(start: 0, count: memory.pageCount)][...]
        var sentInPass: UInt64 = 0
        var thresholdReported = false
        try frame(.passStart(pass: 1))
        while true {
            switch monitor.locked({ request }) {
            case .cancel(let reason):
                try frame(.abort(reason: reason))
                try connection.flush()
                monitor.locked {
                    state = .cancelled
                    failure = reason
                    events.append(.stateChanged)
                    monitor.broadcast()
                }
                return
            case .postcopy:
                try frame(.passEnd(pass: UInt32(monitor.locked { pass }), pagesSent: sentInPass))
                try postcopy(dropped: try listen(unsent: ranges))
                return
            case .complete(let max):
                try frame(.passEnd(pass: UInt32(monitor.locked { pass }), pagesSent: sentInPass))
                try awaitDestination()
                var pending = PageBitmap(pages: memory.pageCount)
                pending.insert(contentsOf: ranges)
                pending.insert(contentsOf: try collectWritten())
                if max == nil || pending.count <= max! {
                    monitor.locked { pass += 1 }  // the sync counts, as QEMU's dirty-sync-count does
                    if flushesAhead, monitor.locked({ bandwidthCap }) != nil { try flushAhead(&pending) }
                    try stopAndCopy(pending: &pending)
                    return
                }
                // The next pass goes on from where this one had got to, as QEMU's does.
                ranges = pending.ranges(clearing: true).rotated(at: ranges.first?.start ?? 0)[...]
                sentInPass = 0
                thresholdReported = false
                let next = monitor.locked { () -> Int in
                    sync(pendingPages: ranges.pageCount)
                    events.append(.completionRefused(pendingPages: remaining))
                    request = .none
                    completeAnswer = false
                    monitor.broadcast()
                    return pass
                }
                try frame(.passStart(pass: UInt32(next)))
                continue
            case .none:
                break
            }
            guard var range = ranges.first else {
                // The pass is over: sync, and the next pass sends what was written meanwhile.
                try frame(.passEnd(pass: UInt32(monitor.locked { pass }), pagesSent: sentInPass))
                ranges = try collectWritten()[...]
                sentInPass = 0
                thresholdReported = false
                let next = monitor.locked { () -> Int in
                    sync(pendingPages: ranges.pageCount)
                    events.append(.passCompleted)
                    return pass
                }
                try frame(.passStart(pass: UInt32(next)))
                continue
            }
            let chunk = PageRange(start: range.start, count: min(range.count, Self.chunkPages))
            range.start += chunk.count
            range.count -= chunk.count
            if range.count == 0 { ranges.removeFirst() } else { ranges[ranges.startIndex] = range }
            try logClear?.wait(through: chunk.end)
            try sendChunk(chunk)
            sentInPass += chunk.count
            monitor.locked {
                remaining -= min(remaining, chunk.count)
                // QEMU's estimate: what is left of this pass against bandwidth × downtime limit.
                let threshold = UInt64(measuredBandwidth * downtimeLimit / pageBytes)
                if !thresholdReported, remaining <= threshold {
                    thresholdReported = true
                    events.append(.pendingBelowThreshold)
                    monitor.broadcast()
                }
            }
            try paceAndMeasure()
        }
    }

    /// The tracker's get-and-clear, once the log's first clear is over (the two must not
    /// overlap, and what the clear has not reached would count as written).
    private func collectWritten() throws -> [PageRange] {
        try logClear?.waitUntilDone()
        return try tracker.collect()
    }

    /// Pages of a chunk at most, so that requests are seen promptly.
    static let chunkPages: UInt64 = 256

    /// Encodes one run of guest pages (zero pages as flags) and counts its bytes as sent.
    private func sendChunk(_ chunk: PageRange) throws {
        let guestBytes = UnsafeRawBufferPointer(start: guest.memory.base, count: guest.memory.byteCount)
        let before = connection.encoder.count
        try monitor.locked { () throws(StreamError) in try stream.send(.pages(start: chunk.start, count: UInt32(chunk.count), zero: false, bytes: [])) }
        try connection.encoder.appendRange(chunk, of: guestBytes)
        let bytes = UInt64(connection.encoder.count - before)
        try connection.flushIfFull()
        monitor.locked {
            transferred += bytes
            let now = Self.now()
            if paceOrigin == nil { paceOrigin = (now, transferred - bytes) }
            if window == nil { window = (now, transferred - bytes) }
        }
    }

    private func paceAndMeasure() throws {
        if let cap = monitor.locked({ bandwidthCap }) { try pace(cap) }
        measureBandwidth()
    }

    /// The length of a bandwidth window: QEMU's BUFFER_DELAY, after which its
    /// migration_update_counters() recomputes the rate and the threshold. A longer window lags
    /// a link that slows down: here a fresh destination's first touch ran at 1.1–2.2 GB/s for
    /// its first 50–100 ms and at 0.26–0.44 GB/s after it (memory the host had not yet taken
    /// back), and a half-second window kept the first figure long enough to stop with most of
    /// the guest pending (downtime 754 ms against a 300 ms limit).
    static let bandwidthWindowSeconds = 0.1

    /// After a chunk has been sent and paced: the rate over the window just closed. Measured
    /// after the pacing sleep, so that under a cap both ends of a window sit on the pace line
    /// and the figure is the cap, not the cap give or take a chunk.
    private func measureBandwidth() {
        monitor.locked {
            guard let w = window else { return }
            let now = Self.now(), seconds = Double(now - w.nanoseconds) / 1e9
            if seconds >= Self.bandwidthWindowSeconds {
                measuredBandwidth = Double(transferred - w.bytes) / seconds
                window = (now, transferred)
            }
        }
    }

    /// Called under the monitor at a sync: a new pass with `pendingPages` to send.
    private func sync(pendingPages: UInt64) {
        let now = Self.now()
        let seconds = Double(now - lastSyncNanoseconds) / 1e9
        if seconds > 0 { lastPassDirtyRate = Double(pendingPages) / seconds }
        lastSyncNanoseconds = now
        pass += 1
        remaining = pendingPages
        monitor.broadcast()
    }

    /// Sleeps as long as the bytes sent so far are ahead of `cap` bytes per second (at most a
    /// second a call), in slices of at most 100 ms with the keep-alive between them: in
    /// postcopy a burst of requested pages can put the sender most of a second ahead of a low
    /// cap, and a link that carried no ping for that long would look dead to the watchdogs.
    private func pace(_ cap: Double) throws {
        try connection.flush()
        let (sent, origin) = monitor.locked { (transferred, paceOrigin) }
        guard let origin else { return }
        let due = origin.nanoseconds + UInt64(Double(sent - origin.bytes) / cap * 1e9)
        let now = Self.now()
        if due > now {
            let until = min(due, now + 1_000_000_000)
            var t = now
            while t < until {
                Sys.sleep(nanoseconds: min(until - t, 100_000_000))
                try sendKeepAlive()
                t = Self.now()
            }
        } else if now - due > 100_000_000 {
            // Behind by more than 100 ms (the sender was starved): start counting again rather
            // than burst above the cap to catch up.
            monitor.locked { paceOrigin = (now, sent) }
        }
    }

    /// Waits, with the guest still running, until the destination has taken in everything
    /// sent so far (the pong to a ping queued behind it), so that a downtime starts with no
    /// backlog. A destination can be many milliseconds behind the link: here its first touch
    /// of fresh memory (a 2 MiB huge page zeroed in ≈ 6 ms, a small page 4–17 µs) held it
    /// 1.1–20.9 ms behind a 1 Gbit/s stream when redis-benchmark's stop began, and that lag
    /// was the stop's. Pages the guest writes meanwhile go in the stop as any others.
    private func awaitDestination() throws {
        let nonce = monitor.locked { () -> UInt64 in
            pingNonce += 1
            return pingNonce
        }
        try frame(.ping(nonce: nonce))
        try connection.flush()
        while true {
            if case .pong(nonce) = try expectReply("pong") { return }
        }
    }

    /// The stop-and-copy's burst, begun with the guest still running. The cap holds the
    /// passes back, not the stop, which sends its pending pages as fast as the link takes them
    /// (as QEMU's does): ≈ 9,100 pages for a 300 ms limit at 1 Gbit/s, 14–33 ms here, all of
    /// it downtime. Sent at the same rate just before the stop, the same pages leave the
    /// downtime only what the guest writes meanwhile, and the link carries the same burst, a
    /// few milliseconds longer. Then, as before a stop, the destination is awaited.
    private func flushAhead(_ pending: inout PageBitmap) throws {
        let start = Self.now()
        let (pages, runs) = (pending.count, UInt64(pending.runCount))
        // On the stream it is a pass of its own, the last before the stop.
        let number = UInt32(monitor.locked { pass })
        try frame(.passStart(pass: number))
        for r in pending.ranges(clearing: true) {
            for first in stride(from: r.start, to: r.end, by: Int(Self.chunkPages)) {
                let chunk = PageRange(start: first, count: min(Self.chunkPages, r.end - first))
                try sendChunk(chunk)
                monitor.locked { remaining -= min(remaining, chunk.count) }
            }
        }
        try frame(.passEnd(pass: number, pagesSent: pages))
        try awaitDestination()
        monitor.locked { flushCarried = AheadLoad(seconds: Double(Self.now() - start) / 1e9, pages: pages, runs: runs) }
    }

    private func stopAndCopy(pending: inout PageBitmap) throws {
        let stop = Self.now()
        guest.pause()
        pending.insert(contentsOf: try collectWritten())
        let (pages, runs) = (pending.count, UInt64(pending.runCount))
        monitor.locked {
            state = .device
            remaining = pending.count
            events.append(.stateChanged)
        }
        let guestBytes = UnsafeRawBufferPointer(start: guest.memory.base, count: guest.memory.byteCount)
        try frame(.stopAndCopy)
        let before = connection.bytesSent + UInt64(connection.encoder.count)
        // In slices of at most one flush: a whole range at once would make one batch of the
        // range (hundreds of MiB of frames, and their gather list, before a byte leaves).
        // The guest is paused until `complete-ack`, so page data leaves from guest memory, its
        // CRC computed there: no copy into the encoder's buffer.
        let slice = UInt64(StreamConnection.flushBytes / guest.memory.pageSize)
        for r in pending.ranges(clearing: true) {
            for start in stride(from: r.start, to: r.end, by: Int(slice)) {
                try connection.encoder.appendRange(PageRange(start: start, count: min(slice, r.end - start)), of: guestBytes, inPlace: true)
                try connection.flushIfFull()
            }
        }
        try sendDeviceState()
        try frame(.complete)
        try connection.flush()
        // The downtime ends when the destination's guest runs: it says so before it checks
        // the pages.
        _ = try expectReply("guest-running")
        let seconds = Double(Self.now() - stop) / 1e9
        let stopBytes = connection.bytesSent - before
        let ack = try expectReply("complete-ack")
        monitor.locked {
            if case let .completeAck(verified, detail) = ack {
                destinationVerified = verified
                destinationDetail = detail
            }
            transferred += connection.bytesSent - before
            remaining = 0
            downtime = seconds
            stopCarried = StopLoad(pages: pages, runs: runs, bytes: stopBytes)
            state = .completed
            completeAnswer = true
            events.append(.stateChanged)
            monitor.broadcast()
        }
    }

    /// Stamps per `stamps` frame. Small frames keep the whole switch in memory this process
    /// has touched before: each frame's array (8 × 8,192 bytes, here and in the destination's
    /// decoder) comes from memory the allocator hands out again, and the encoder's and the
    /// decoder's buffers never grow. One array of a whole table (1 MiB for a 512 MiB guest)
    /// would be fresh pages, each a first touch (≈ 6–20 µs a page here) inside the downtime.
    static let stampsPerFrame = 8192

    /// The stopped guest's device state and final stamps, copied frame by frame from its table.
    private func sendDeviceState() throws {
        try frame(.deviceState(progress: guest.progress))
        let pages = Int(guest.memory.pageCount)
        for start in stride(from: 0, to: pages, by: Self.stampsPerFrame) {
            try frame(.stamps(start: UInt64(start), sequences: guest.lastSequences(of: start..<min(start + Self.stampsPerFrame, pages))))
        }
    }

    // MARK: postcopy

    /// The switch's first half, the guest still running here: the stale pages
    /// known now (the rest of this pass and what was written since the last sync) go as
    /// `postcopy-listen`, and the destination drops them and registers its memory before it
    /// answers. Those drops were most of a switch's downtime (memcached: 17,000 short runs,
    /// 20–34 ms); the stop then lists only what the guest writes until the answer. The answer
    /// also says that the destination has taken in everything sent before it, as
    /// `awaitDestination`'s pong does. Returns the pages dropped.
    private func listen(unsent: ArraySlice<PageRange>) throws -> PageBitmap {
        let start = Self.now()
        var dropped = PageBitmap(pages: guest.memory.pageCount)
        dropped.insert(contentsOf: unsent)
        dropped.insert(contentsOf: try collectWritten())
        let discard = dropped.ranges(clearing: false)
        try frame(.postcopyListen(discard: discard))
        try connection.flush()
        // A pong to an earlier ping may come first (the state machine has checked it).
        while true {
            if case .postcopyListenAck = try expectReply("postcopy-listen-ack") { break }
        }
        monitor.locked {
            listenCarried = AheadLoad(seconds: Double(Self.now() - start) / 1e9, pages: dropped.count, runs: UInt64(discard.count))
        }
        return dropped
    }

    /// The switch's second half and the rest of the migration: the guest stops here for good;
    /// what it wrote since `listen` goes as the discard list, less what the destination has
    /// `dropped` already; once the destination runs the guest, both sets are pushed in order,
    /// pages its guest asked for first, and `complete` follows the last one. A break pauses
    /// the push until a recovery rebuilds what is missing from the destination's received
    /// bitmap.
    private func postcopy(dropped: PageBitmap) throws {
        let memory = guest.memory
        let stop = Self.now()
        guest.pause()
        var stale = PageBitmap(pages: memory.pageCount)
        stale.insert(contentsOf: try collectWritten())
        var pending = stale
        stale.subtract(dropped)
        pending.formUnion(dropped)
        monitor.locked {
            pass += 1  // the sync at the switch counts, as QEMU's dirty-sync-count does
            state = .postcopyActive
            postcopyFrom = stop
            remaining = pending.count
            events.append(.stateChanged)
            monitor.broadcast()
        }
        try frame(.stopAndCopy)
        let before = connection.bytesSent + UInt64(connection.encoder.count)
        try sendDeviceState()
        let discard = stale.ranges(clearing: false)
        let queue = pending.ranges(clearing: false)
        // From here on the destination may be running the guest: a break pauses, never fails.
        monitor.locked { handedOver = true }
        var next = queue[...]
        do {
            try frame(.postcopyStart(discard: discard))
            try connection.flush()
            _ = try expectReply("postcopy-start-ack")
            monitor.locked {
                downtime = Double(Self.now() - stop) / 1e9
                stopCarried = StopLoad(pages: stale.count, runs: UInt64(discard.count), bytes: connection.bytesSent - before)
            }
            // The guest never writes here again; ending the tracking (over the whole guest,
            // tens of milliseconds) waits until the destination runs it.
            tracker.stop()
        } catch {
            tracker.stop()
            linkBroke("\(error)")
            next = try recoverLink(&pending)
        }
        for cut in timedCuts { try startCutting(cut) }

        while true {
            var watchdog: LinkWatchdog? = try watch(connection)
            do {
                // Once every page is out the destination checks all of them before it answers:
                // silence is expected then (errors, EOF and TCP's user timeout still count).
                try push(&pending, queue: &next) { watchdog?.stop(); watchdog = nil }
                return
            } catch {
                watchdog?.stop()
                linkBroke("\(error)")
            }
            next = try recoverLink(&pending)
        }
    }

    /// Pages of one background push chunk in postcopy: what a requested page may queue behind.
    static let pushChunkPages: UInt64 = 64

    /// Pushes every pending page (requested ones first), then `complete`, and waits for the
    /// destination's verdict. Throws when the link breaks.
    private func push(_ pending: inout PageBitmap, queue next: inout ArraySlice<PageRange>, allPagesSent: () -> Void) throws {
        try Sys.startDetachedThread { [self, connection] in readReturnPath(connection) }
        while pending.count > 0 {
            let (asked, broken) = monitor.locked { () -> ([PageRange], String?) in
                defer { urgent.removeAll() }
                return (urgent, returnPathFailure)
            }
            if let broken { throw EngineError("the return path broke in postcopy: \(broken)") }
            try sendKeepAlive()
            if !asked.isEmpty {
                // Requested pages jump the queue and leave at once, not with the next 4 MiB.
                for run in take(asked, from: &pending) { try sendChunk(run) }
                try connection.flush()
            } else if var range = next.first {
                let chunk = PageRange(start: range.start, count: min(range.count, Self.pushChunkPages))
                range.start += chunk.count
                range.count -= chunk.count
                if range.count == 0 { next.removeFirst() } else { next[next.startIndex] = range }
                for run in take([chunk], from: &pending) { try sendChunk(run) }
                // Each chunk leaves at once: a requested page queued behind megabytes of encoded
                // push data would wait for the destination to install all of them first
                // (≈ 2.7 ms a fault at 1 Gbit/s with 4 MiB batches).
                try connection.flush()
            }
            monitor.locked { remaining = pending.count }
            try paceAndMeasure()
        }
        try frame(.complete)
        try connection.flush()
        allPagesSent()
        while true {
            let (ack, broken) = monitor.locked { () -> (StreamMessage?, String?) in
                if completeAck == nil, returnPathFailure == nil, !pingDue, pongsOwed.isEmpty {
                    monitor.wait(untilMonotonic: Self.now() + 250_000_000)
                }
                return (completeAck, returnPathFailure)
            }
            if let ack {
                monitor.locked {
                    if case let .completeAck(verified, detail) = ack {
                        destinationVerified = verified
                        destinationDetail = detail
                    }
                    postcopyEnd = Self.now()
                    remaining = 0
                    state = .completed
                    events.append(.stateChanged)
                    monitor.broadcast()
                }
                return
            }
            if let broken { throw EngineError("the return path broke before complete-ack: \(broken)") }
            try sendKeepAlive()
            try connection.flush()
        }
    }

    /// The pings the watchdog asked for and the pongs owed for the destination's pings.
    private func sendKeepAlive() throws {
        let (ping, pongs) = monitor.locked { () -> (UInt64?, [UInt64]) in
            defer { pingDue = false; pongsOwed.removeAll() }
            if pingDue { pingNonce += 1 }
            return (pingDue ? pingNonce : nil, pongsOwed)
        }
        for nonce in pongs { try frame(.pong(nonce: nonce)) }
        if let ping { try frame(.ping(nonce: ping)) }
        if ping != nil || !pongs.isEmpty { try connection.flush() }
    }

    /// A watchdog on `connection` that asks the sender for a ping now and then.
    private func watch(_ connection: StreamConnection) throws -> LinkWatchdog {
        try LinkWatchdog(connection) { [self] in
            monitor.locked {
                pingDue = true
                monitor.broadcast()
            }
        }
    }

    /// The link is gone: pause, keeping every page.
    private func linkBroke(_ reason: String) {
        connection.channel.abort()
        monitor.locked {
            stream.connectionLost()
            state = .postcopyPaused
            pausedSince = pausedSince ?? Self.now()
            events.append(.channelBroken(reason: reason))
            events.append(.stateChanged)
            monitor.broadcast()
        }
    }

    /// Waits for `recover`, reconnects and resumes; a failed handshake pauses again and waits
    /// for the next `recover`. On success `pending` is what the destination still lacks, and
    /// the result is the same pages in order: the push's new queue.
    private func recoverLink(_ pending: inout PageBitmap) throws -> ArraySlice<PageRange> {
        let memory = guest.memory
        while true {
            let (uri, after) = monitor.locked { () -> (String, Double) in
                while recoverRequest == nil { monitor.wait() }
                return recoverRequest!
            }
            if after > 0 { Sys.sleep(nanoseconds: UInt64(after * 1e9)) }
            monitor.locked {
                state = .postcopyRecover
                events.append(.stateChanged)
                monitor.broadcast()
            }
            var opened: (any ByteChannel)?
            do {
                if monitor.locked({ Self.now() < linkDownUntil }) { throw EngineError("the link is down (an injected cut)") }
                let channel = try reconnect(uri)
                opened = channel
                let fresh = StreamConnection(channel: channel, pageSize: UInt32(memory.pageSize))
                monitor.locked { link = channel }
                // A destination that does not answer within 0.8 s is as good as gone.
                let watchdog = try LinkWatchdog(fresh)
                defer { watchdog.stop() }
                try frame(.hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount,
                                 features: features), on: fresh)
                try fresh.flush()
                _ = try expectReply("hello-ack", on: fresh)
                if monitor.locked({ () -> Bool in
                    guard handshakeCuts > 0 else { return false }
                    handshakeCuts -= 1
                    return true
                }) { channel.abort() }
                try frame(.resume, on: fresh)
                try fresh.flush()
                guard case let .receivedBitmap(received) = try expectReply("received-bitmap", on: fresh) else {
                    throw EngineError("the destination did not send its received bitmap")
                }
                _ = try expectReply("resume-ack", on: fresh)
                pending = Self.missing(from: received, pageCount: memory.pageCount)
                connection = fresh
                monitor.locked {
                    recoverRequest = nil
                    recoveriesDone += 1
                    pausedNanoseconds += pausedSince.map { Self.now() - $0 } ?? 0
                    pausedSince = nil
                    urgent.removeAll()  // the destination asks again for what it still waits for
                    returnPathFailure = nil
                    remaining = pending.count
                    state = .postcopyActive
                    events.append(.recovered)
                    events.append(.stateChanged)
                    monitor.broadcast()
                }
                var queue = pending
                return queue.ranges(clearing: true)[...]
            } catch {
                opened?.abort()
                opened?.close()
                monitor.locked {
                    recoverRequest = nil
                    recoveriesFailed += 1
                    lastRecoveryFailure = "\(error)"
                    stream.connectionLost()
                    state = .postcopyPaused
                    events.append(.recoveryFailed(reason: "\(error)"))
                    events.append(.stateChanged)
                    monitor.broadcast()
                }
            }
        }
    }

    /// The pages outside `received` (the destination's ranges, in any order): what a recovery
    /// must still send.
    public static func missing(from received: [PageRange], pageCount: UInt64) -> PageBitmap {
        var pending = PageBitmap(pages: pageCount)
        var at: UInt64 = 0
        for r in received.sorted(by: { $0.start < $1.start }) {
            if r.start > at { pending.insert(PageRange(start: at, count: r.start - at)) }
            at = max(at, min(r.end, pageCount))
        }
        if at < pageCount { pending.insert(PageRange(start: at, count: pageCount - at)) }
        return pending
    }

    /// Aborts the link at the cut's times, each time it is up (`InjectedCut`).
    private func startCutting(_ cut: InjectedCut) throws {
        guard case let .timed(after, every, count, down) = cut else { return }
        let origin = monitor.locked { postcopyFrom ?? Self.now() }
        _ = try Sys.startThread { [self] in
            var due = origin + UInt64(after.nanoseconds)
            for _ in 0..<count {
                let channel = monitor.locked { () -> (any ByteChannel)? in
                    while !state.isFinished, Self.now() < due || state != .postcopyActive {
                        monitor.wait(untilMonotonic: max(due, Self.now() + 10_000_000))
                    }
                    if !state.isFinished { linkDownUntil = Self.now() + UInt64(down.nanoseconds) }
                    return state.isFinished ? nil : link
                }
                guard let channel else { return }
                channel.abort()
                due = max(due, Self.now()) + UInt64(every.nanoseconds)
                // Wait for the break to be seen before the next cut can count.
                monitor.locked { while state == .postcopyActive { monitor.wait(untilMonotonic: Self.now() + 10_000_000) } }
            }
        }
    }

    /// The runs of `ranges` whose pages are still in `pending`, taken out of it.
    private func take(_ ranges: [PageRange], from pending: inout PageBitmap) -> [PageRange] {
        var pages: [UInt64] = []
        for r in ranges {
            for page in r.start..<r.end where pending.contains(page) {
                pending.remove(mask: 1 << (page & 63), inWord: Int(page >> 6))
                pages.append(page)
            }
        }
        return [PageRange].coalescing(pages: &pages)
    }

    /// The return-path thread of one postcopy connection: page requests to serve, pings to
    /// answer, then `complete-ack`. A failure is reported only while `from` is the link in use.
    private func readReturnPath(_ from: StreamConnection) {
        do {
            while let message = try from.receive() {
                // What a dead link still delivers after the break is not the protocol's business.
                let live = try monitor.locked { () throws(StreamError) -> Bool in
                    guard from === connection, state == .postcopyActive else { return false }
                    try stream.receive(message)
                    return true
                }
                guard live else { return }
                switch message {
                case .pageRequest(let ranges):
                    monitor.locked {
                        urgent.append(contentsOf: ranges)
                        requestedPages += ranges.pageCount
                        monitor.broadcast()
                    }
                case .ping(let nonce):
                    monitor.locked {
                        pongsOwed.append(nonce)
                        monitor.broadcast()
                    }
                case .completeAck:
                    monitor.locked {
                        completeAck = message
                        monitor.broadcast()
                    }
                    return
                default:
                    break
                }
            }
            throw EngineError("the destination closed the stream")
        } catch {
            monitor.locked {
                guard from === connection, returnPathFailure == nil else { return }
                returnPathFailure = "\(error)"
                monitor.broadcast()
            }
        }
    }

    // MARK: the stream

    /// Checks a message against the source's protocol state, then queues it.
    private func frame(_ message: StreamMessage, on link: StreamConnection? = nil) throws {
        try monitor.locked { () throws(StreamError) in try stream.send(message) }
        try (link ?? connection).send(message)
    }

    /// The destination's next message, which must be the acknowledgement `what`.
    private func expectReply(_ what: String, on link: StreamConnection? = nil) throws -> StreamMessage {
        guard let reply = try (link ?? connection).receive() else { throw EngineError("the destination closed the stream before \(what)") }
        try monitor.locked { () throws(StreamError) in try stream.receive(reply) }
        return reply
    }
}

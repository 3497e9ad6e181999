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
/// stops the guest for the final copy only if the pending pages fit. Postcopy is not built yet
/// and is refused with an error saying so.
public final class EmbeddedMigration: MigrationControl, @unchecked Sendable {
    // @unchecked: every mutable field below is read and written under `monitor` only; the
    // stream itself belongs to the sender thread.
    private let guest: Guest
    private let tracker: any DirtyTracker
    private let connection: StreamConnection
    private let monitor = Monitor()
    private let pageBytes: Double

    private enum Request { case none, complete(UInt64?), cancel(String) }
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
    /// Transfer rate over the last complete half-second window (QEMU's mbps is likewise recent).
    private var measuredBandwidth = 0.0
    private var window: (nanoseconds: UInt64, bytes: UInt64)?
    /// Pacing starts at the first byte of data, not at the hello, and again after a stall.
    private var paceOrigin: (nanoseconds: UInt64, bytes: UInt64)?
    private var downtimeLimit = 0.3
    private var bandwidthCap: Double?
    private var downtime: Double?
    private var failure: String?
    /// The destination's answer to `complete`: its own stamp check.
    public private(set) var destinationVerified: Bool?
    public private(set) var destinationDetail: String?
    private let finished = DispatchSemaphore(value: 0)

    public init(guest: Guest, tracker: any DirtyTracker, channel: any ByteChannel) {
        self.guest = guest
        self.tracker = tracker
        connection = StreamConnection(channel: channel, pageSize: UInt32(guest.memory.pageSize))
        pageBytes = Double(guest.memory.pageSize + StreamFrame.pagesPrefix)
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
        var streamState = StreamSenderState()
        let memory = guest.memory
        try streamState.send(.hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount, features: []))
        try connection.send(.hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount, features: []))
        try connection.flush()
        guard let ack = try connection.receive() else { throw EngineError("the destination closed the stream before hello-ack") }
        try streamState.receive(ack)
        monitor.locked {
            state = .active
            pass = 1
            remaining = memory.pageCount
            events.append(.stateChanged)
        }
        let opened = streamState
        DispatchQueue.global().async { [self] in
            var s = opened
            do { try send(&s) } catch {
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
        monitor.locked {
            let deadline = Self.now() + UInt64(seconds * 1e9)
            while events.isEmpty, !state.isFinished, Self.now() < deadline { monitor.wait(untilMonotonic: deadline) }
            defer { events.removeAll() }
            return Observation(status: statusLocked(), events: events)
        }
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

    public func startPostcopy() throws {
        throw EngineError("postcopy is not built yet in the embedded engine: use a policy that stays in precopy (policies/precopy.yaml)")
    }

    public func setDowntimeLimit(seconds: Double) throws { monitor.locked { downtimeLimit = seconds } }
    public func setBandwidth(bytesPerSecond: Double?) throws { monitor.locked { bandwidthCap = bytesPerSecond } }
    public func throttle(percent: Int) throws { throw EngineError("throttling is not built yet in the embedded engine") }
    public func pause() throws { throw EngineError("'pause' is only allowed in postcopy, which the embedded engine does not do yet") }
    public func recover(uri: String, after seconds: Double) throws { throw EngineError("'recover' is only allowed in a paused postcopy") }

    public func cancel(reason: String) throws {
        monitor.locked {
            request = .cancel(reason)
            monitor.broadcast()
        }
    }

    /// Blocks until the sender thread has ended (completed, failed or cancelled).
    public func waitUntilFinished() { finished.wait(); finished.signal() }

    public var status: MigrationStatus { monitor.locked { statusLocked() } }

    private func statusLocked() -> MigrationStatus {
        let now = Self.now()
        let elapsed = Double(now - startNanoseconds) / 1e9
        let bandwidth = measuredBandwidth
        return MigrationStatus(
            state: state, elapsedSeconds: elapsed, pass: pass, pageSize: guest.memory.pageSize, totalPages: guest.memory.pageCount,
            remainingPages: remaining, transferredBytes: transferred, dirtyPagesSinceSync: 0,
            secondsSinceSync: Double(now - lastSyncNanoseconds) / 1e9, dirtyPagesRate: lastPassDirtyRate,
            bandwidthBytesPerSecond: bandwidth, expectedDowntimeSeconds: bandwidth > 0 ? Double(remaining) * pageBytes / bandwidth : 0,
            downtimeLimitSeconds: downtimeLimit, postcopyRequests: 0, downtimeSeconds: downtime)
    }

    // MARK: the sender thread

    private func send(_ stream: inout StreamSenderState) throws {
        let memory = guest.memory
        let guestBytes = UnsafeRawBufferPointer(start: memory.base, count: memory.byteCount)
        var ranges = [PageRange(start: 0, count: memory.pageCount)][...]
        var sentInPass: UInt64 = 0
        var thresholdReported = false
        try frame(&stream, .passStart(pass: 1))
        while true {
            switch monitor.locked({ request }) {
            case .cancel(let reason):
                try frame(&stream, .abort(reason: reason))
                try connection.flush()
                monitor.locked {
                    state = .cancelled
                    failure = reason
                    events.append(.stateChanged)
                    monitor.broadcast()
                }
                return
            case .complete(let max):
                try frame(&stream, .passEnd(pass: UInt32(monitor.locked { pass }), pagesSent: sentInPass))
                var pending = PageBitmap(pages: memory.pageCount)
                pending.insert(contentsOf: ranges)
                pending.insert(contentsOf: try tracker.collect())
                if max == nil || pending.count <= max! {
                    try stopAndCopy(&stream, pending: &pending)
                    return
                }
                ranges = pending.ranges(clearing: true)[...]
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
                try frame(&stream, .passStart(pass: UInt32(next)))
                continue
            case .none:
                break
            }
            guard var range = ranges.first else {
                // The pass is over: sync, and the next pass sends what was written meanwhile.
                try frame(&stream, .passEnd(pass: UInt32(monitor.locked { pass }), pagesSent: sentInPass))
                ranges = try tracker.collect()[...]
                sentInPass = 0
                thresholdReported = false
                let next = monitor.locked { () -> Int in
                    sync(pendingPages: ranges.pageCount)
                    events.append(.passCompleted)
                    return pass
                }
                try frame(&stream, .passStart(pass: UInt32(next)))
                continue
            }
            // A chunk of at most 256 pages at a time, so that requests are seen promptly.
            let chunk = PageRange(start: range.start, count: min(range.count, 256))
            range.start += chunk.count
            range.count -= chunk.count
            if range.count == 0 { ranges.removeFirst() } else { ranges[ranges.startIndex] = range }
            let before = connection.encoder.bytes.count
            try stream.send(.pages(start: chunk.start, count: UInt32(chunk.count), zero: false, bytes: []))
            try connection.encoder.appendRange(chunk, of: guestBytes)
            let bytes = UInt64(connection.encoder.bytes.count - before)
            try connection.flushIfFull()
            sentInPass += chunk.count
            let cap = monitor.locked { () -> Double? in
                transferred += bytes
                remaining -= min(remaining, chunk.count)
                let now = Self.now()
                if paceOrigin == nil { paceOrigin = (now, transferred - bytes) }
                if window == nil { window = (now, transferred - bytes) }
                // QEMU's estimate: what is left of this pass against bandwidth × downtime limit.
                let threshold = UInt64(measuredBandwidth * downtimeLimit / pageBytes)
                if !thresholdReported, remaining <= threshold {
                    thresholdReported = true
                    events.append(.pendingBelowThreshold)
                    monitor.broadcast()
                }
                return bandwidthCap
            }
            if let cap { try pace(cap) }
            measureBandwidth()
        }
    }

    /// After a chunk has been sent and paced: the rate over the current window, replaced every
    /// half second (QEMU's mbps is likewise recent). Measured after the pacing sleep, so that a
    /// chunk is never counted before the time it is allowed; no figure from under 100 ms.
    private func measureBandwidth() {
        monitor.locked {
            guard let w = window else { return }
            let now = Self.now(), seconds = Double(now - w.nanoseconds) / 1e9
            if seconds >= 0.5 {
                measuredBandwidth = Double(transferred - w.bytes) / seconds
                window = (now, transferred)
            } else if measuredBandwidth == 0, seconds >= 0.1 {
                measuredBandwidth = Double(transferred - w.bytes) / seconds
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

    /// Sleeps as long as the bytes sent so far are ahead of `cap` bytes per second.
    private func pace(_ cap: Double) throws {
        try connection.flush()
        let (sent, origin) = monitor.locked { (transferred, paceOrigin) }
        guard let origin else { return }
        let due = origin.nanoseconds + UInt64(Double(sent - origin.bytes) / cap * 1e9)
        let now = Self.now()
        if due > now {
            Sys.sleep(nanoseconds: min(due - now, 1_000_000_000))
        } else if now - due > 100_000_000 {
            // Behind by more than 100 ms (the sender was starved): start counting again rather
            // than burst above the cap to catch up.
            monitor.locked { paceOrigin = (now, sent) }
        }
    }

    private func stopAndCopy(_ stream: inout StreamSenderState, pending: inout PageBitmap) throws {
        let stop = Self.now()
        guest.pause()
        pending.insert(contentsOf: try tracker.collect())
        monitor.locked {
            state = .device
            remaining = pending.count
            events.append(.stateChanged)
        }
        let guestBytes = UnsafeRawBufferPointer(start: guest.memory.base, count: guest.memory.byteCount)
        try frame(&stream, .stopAndCopy)
        let before = connection.bytesSent + UInt64(connection.encoder.bytes.count)
        for r in pending.ranges(clearing: true) {
            try connection.encoder.appendRange(r, of: guestBytes)
            try connection.flushIfFull()
        }
        try frame(&stream, .complete)
        try connection.flush()
        guard let ack = try connection.receive() else { throw EngineError("the destination closed the stream before complete-ack") }
        try stream.receive(ack)
        let seconds = Double(Self.now() - stop) / 1e9
        monitor.locked {
            if case let .completeAck(verified, detail) = ack {
                destinationVerified = verified
                destinationDetail = detail
            }
            transferred += connection.bytesSent - before
            remaining = 0
            downtime = seconds
            state = .completed
            completeAnswer = true
            events.append(.stateChanged)
            monitor.broadcast()
        }
    }

    private func frame(_ stream: inout StreamSenderState, _ message: StreamMessage) throws {
        try stream.send(message)
        try connection.send(message)
    }
}

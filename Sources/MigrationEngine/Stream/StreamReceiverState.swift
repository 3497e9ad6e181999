import Traces

/// The destination's side of the protocol: a state machine that names its states and says, for
/// every message from the source (`accept`) and every message the destination is about to send
/// (`send`), whether it is legal now. Anything else ends the stream with an error naming the
/// message and the state; the table is in docs/stream-format.md.
public struct StreamReceiverState: StreamStateMachine, Sendable {
    public enum State: String, Equatable, Sendable, CustomStringConvertible {
        case awaitingHello = "awaiting-hello"
        case precopy
        /// `postcopyListen` accepted (version 5): the stale pages are dropped and the memory
        /// registered for faults; no precopy page may come, only the stop for postcopy.
        case listening
        case stoppedCopy = "stopped-copy"
        case postcopy
        /// The link broke during postcopy: the guest waits for recovery, never for a restart.
        case paused
        /// `complete` received: the destination verifies, then sends `completeAck` (after a
        /// stopped copy, `guestRunning` first).
        case completing
        case completed
        case failed
        public var description: String { rawValue }
    }

    var life = StreamLife<State>(state: .awaitingHello, completed: .completed, failed: .failed)
    public var state: State { life.state }
    /// Why the state is `failed`.
    public var failure: StreamError? { life.failure }
    /// What the source's `hello` said (version: the one agreed).
    public var version: UInt16? { life.version }
    public private(set) var pageSize: UInt32 = 0
    public private(set) var pageCount: UInt64 = 0
    public private(set) var features: StreamFeatures = []
    /// The precopy pass under way, and the pages it has carried so far.
    public private(set) var openPass: UInt32?
    private var lastPass: UInt32 = 0
    private var pagesInPass: UInt64 = 0
    /// The acknowledgement the destination owes; until it is sent the source may send only
    /// `ping` and `abort`.
    public private(set) var owedAck: StreamMessageType?
    /// A `hello` has been accepted on the current connection.
    private var greeted = false
    private var bitmapSent = false
    /// The switch to postcopy began with `postcopyListen`: the stopped copy must end in postcopy.
    private var listened = false
    private var pings = PingBook()

    public init() {}

    /// Checks a message from the source against the state, and moves on. Throws (and fails
    /// the stream) when the message is not legal now.
    public mutating func accept(_ message: StreamMessage) throws(StreamError) {
        try guarded(message) { (s: inout Self) throws(StreamError) in try s.acceptLegal(message) }
    }

    /// Checks a message the destination is about to send, and moves on.
    public mutating func send(_ message: StreamMessage) throws(StreamError) {
        try guarded(message) { (s: inout Self) throws(StreamError) in try s.sendLegal(message) }
    }

    /// The connection broke. In postcopy (or already paused) the destination pauses and waits
    /// for the source to reconnect with `hello` and `resume`; before that the migration fails.
    public mutating func connectionLost() {
        switch life.state {
        case .postcopy, .paused:
            life.state = .paused
            greeted = false
            owedAck = nil
            bitmapSent = false
        case .completed, .failed:
            break
        default:
            life.fail(StreamError(.unexpectedMessage, "the connection was lost in state \(life.state)"))
        }
    }

    private func inBounds(_ r: PageRange) -> Bool { r.start < pageCount && r.count <= pageCount - r.start }

    private func checkRanges(_ message: StreamMessage, _ ranges: [PageRange]) throws(StreamError) {
        for r in ranges where !inBounds(r) {
            throw life.refuse(message, "range \(r) is outside the guest's \(pageCount) pages")
        }
    }

    private mutating func acceptLegal(_ message: StreamMessage) throws(StreamError) {
        if pings.receive(message, greeted: greeted) { return }
        switch message {
        case let .abort(reason):
            life.fail(StreamError(.peerAborted, "the source aborted: \(reason)"))
            return
        default:
            break
        }
        if let owedAck { throw life.refuse(message, "the destination owes \(owedAck) first") }
        switch (life.state, message) {
        case let (.awaitingHello, .hello(version, pageSize, pageCount, features)):
            try StreamVersion.check(version)
            guard pageCount > 0, pageSize >= 512, pageSize & (pageSize - 1) == 0 else {
                throw life.refuse(message, "a guest of \(pageCount) pages of \(pageSize) bytes")
            }
            (life.version, self.pageSize, self.pageCount, self.features) = (version, pageSize, pageCount, features)
            greeted = true
            owedAck = .helloAck
            life.state = .precopy
        case let (.paused, .hello(version, pageSize, pageCount, _)) where !greeted:
            try StreamVersion.check(version)
            guard pageSize == self.pageSize, pageCount == self.pageCount else {
                throw life.refuse(message, "the reconnecting source describes \(pageCount) pages of \(pageSize) bytes, the guest has \(self.pageCount) of \(self.pageSize)")
            }
            life.version = version
            greeted = true
            owedAck = .helloAck
        case let (.precopy, .passStart(pass)):
            guard openPass == nil, pass > lastPass else {
                throw life.refuse(message, openPass.map { "pass \($0) is still open" } ?? "pass \(pass) does not follow pass \(lastPass)")
            }
            openPass = pass
            pagesInPass = 0
        case let (.precopy, .pages(start, count, _, _)):
            guard openPass != nil else { throw life.refuse(message, "no precopy pass is open") }
            try checkRanges(message, [PageRange(start: start, count: UInt64(count))])
            pagesInPass += UInt64(count)
        case let (.precopy, .passEnd(pass, pagesSent)):
            guard pass == openPass else { throw life.refuse(message, "pass \(pass) is not the open pass") }
            guard pagesSent == pagesInPass else {
                throw life.refuse(message, "pass \(pass) says \(pagesSent) pages were sent, \(pagesInPass) arrived")
            }
            lastPass = pass
            openPass = nil
        case (.precopy, .stopAndCopy):
            guard openPass == nil else { throw life.refuse(message, "pass \(openPass!) is still open") }
            life.state = .stoppedCopy
        case let (.precopy, .postcopyListen(discard)):
            guard features.contains(.postcopy) else { throw life.refuse(message, "the source's hello did not offer postcopy") }
            guard openPass == nil else { throw life.refuse(message, "pass \(openPass!) is still open") }
            try checkRanges(message, discard)
            owedAck = .postcopyListenAck
            listened = true
            life.state = .listening
        case (.listening, .stopAndCopy):
            life.state = .stoppedCopy
        case let (.stoppedCopy, .pages(start, count, _, _)) where !listened, let (.postcopy, .pages(start, count, _, _)):
            try checkRanges(message, [PageRange(start: start, count: UInt64(count))])
        case (.stoppedCopy, .deviceState):
            break
        case let (.stoppedCopy, .stamps(start, sequences)):
            try checkRanges(message, [PageRange(start: start, count: UInt64(sequences.count))])
        case let (.stoppedCopy, .postcopyStart(discard)):
            guard features.contains(.postcopy) else { throw life.refuse(message, "the source's hello did not offer postcopy") }
            try checkRanges(message, discard)
            owedAck = .postcopyStartAck
            life.state = .postcopy
        case (.stoppedCopy, .complete) where !listened:
            // The guest runs before the check, and the destination says so first.
            owedAck = .guestRunning
            life.state = .completing
        case (.postcopy, .complete):
            owedAck = .completeAck
            life.state = .completing
        case (.paused, .resume) where greeted:
            guard features.contains(.recovery) else { throw life.refuse(message, "the source's hello did not offer recovery") }
            owedAck = .resumeAck
            bitmapSent = false
        default:
            throw life.refuse(message)
        }
    }

    private mutating func sendLegal(_ message: StreamMessage) throws(StreamError) {
        if pings.send(message, greeted: greeted) { return }
        switch message {
        case .abort:
            life.fail(StreamError(.unexpectedMessage, "the destination aborted in state \(life.state)"))
            return
        default:
            break
        }
        switch (owedAck, message) {
        case let (.helloAck, .helloAck(version)):
            guard version == life.version else { throw life.refuse(message, "the source offered version \(life.version ?? 0), not \(version)") }
            owedAck = nil
        case (.postcopyListenAck, .postcopyListenAck), (.postcopyStartAck, .postcopyStartAck):
            owedAck = nil
        case (.guestRunning, .guestRunning):
            owedAck = .completeAck
        case let (.completeAck, .completeAck(verified, detail)):
            owedAck = nil
            if verified {
                life.state = .completed
            } else {
                life.fail(StreamError(.unexpectedMessage, "the destination could not verify the guest: \(detail)"))
            }
        case let (.resumeAck, .receivedBitmap(ranges)) where !bitmapSent:
            try checkRanges(message, ranges)
            bitmapSent = true
        case (.resumeAck, .resumeAck) where bitmapSent:
            owedAck = nil
            life.state = .postcopy
        case let (nil, .pageRequest(ranges)) where life.state == .postcopy:
            try checkRanges(message, ranges)
        default:
            throw life.refuse(message, "the destination may not send it now")
        }
    }
}

import Traces

/// The source's side of the protocol: what it may send now (`send`) and which return-path
/// messages it expects (`receive`) — above all the acknowledgements that confirm a step. Once
/// `postcopyStart` has gone out the source never returns to a state where it runs the guest:
/// a broken link leaves it `paused`, waiting to `resume`.
public struct StreamSenderState: StreamStateMachine, Sendable {
    public enum State: String, Equatable, Sendable, CustomStringConvertible {
        case idle
        /// `hello` sent; waiting for `helloAck`.
        case greeting
        case precopy
        /// `postcopyListen` sent (version 5); waiting for `postcopyListenAck`, the guest still running here.
        case listening
        /// `postcopyListenAck` received: the stop for postcopy comes next.
        case listened
        case stoppedCopy = "stopped-copy"
        /// `postcopyStart` sent; waiting for `postcopyStartAck`. The guest is the destination's.
        case startingPostcopy = "starting-postcopy"
        case postcopy
        case paused
        /// Reconnected after a break; `hello` sent, waiting for `helloAck`.
        case regreeting
        /// Reconnected and greeted; `resume` must come next.
        case reconnected
        /// `resume` sent; waiting for `receivedBitmap`, then `resumeAck`.
        case resuming
        /// `complete` sent; waiting for `completeAck` (after a stopped copy, `guestRunning` first).
        case completing
        case completed
        case failed
        public var description: String { rawValue }
    }

    var life = StreamLife<State>(state: .idle, completed: .completed, failed: .failed)
    public var state: State { life.state }
    /// Why the state is `failed`.
    public var failure: StreamError? { life.failure }
    public var version: UInt16? { life.version }
    /// The destination's `receivedBitmap` on recovery: the pages it need not be sent again.
    public private(set) var received: [PageRange]?
    public private(set) var pageCount: UInt64 = 0
    private var openPass: UInt32?
    /// `complete` went after a stopped copy: `guestRunning` comes before `completeAck`.
    private var awaitsGuestRunning = false
    /// The stopped copy follows `postcopyListen`: it must end in postcopy.
    private var listened = false
    private var features: StreamFeatures = []
    private var pings = PingBook()

    public init() {}

    /// The state before the link broke in postcopy is kept; anything earlier fails.
    public mutating func connectionLost() {
        switch life.state {
        case .startingPostcopy, .postcopy, .paused, .regreeting, .reconnected, .resuming:
            life.state = .paused
        case .completed, .failed:
            break
        default:
            life.fail(StreamError(.unexpectedMessage, "the connection was lost in state \(life.state)"))
        }
    }

    /// Checks a message the source is about to send, and moves on.
    public mutating func send(_ message: StreamMessage) throws(StreamError) {
        try guarded(message) { (s: inout Self) throws(StreamError) in try s.sendLegal(message) }
    }

    /// Checks a return-path message from the destination, and moves on.
    public mutating func receive(_ message: StreamMessage) throws(StreamError) {
        try guarded(message) { (s: inout Self) throws(StreamError) in try s.receiveLegal(message) }
    }

    private var greeted: Bool { ![.idle, .greeting, .paused, .regreeting].contains(life.state) }

    private mutating func sendLegal(_ message: StreamMessage) throws(StreamError) {
        if pings.send(message, greeted: greeted) { return }
        switch (life.state, message) {
        case let (_, .abort(reason)):
            life.fail(StreamError(.unexpectedMessage, "the source aborted in state \(life.state): \(reason)"))
        case let (.idle, .hello(version, _, pageCount, features)):
            try StreamVersion.check(version)
            (life.version, self.pageCount, self.features) = (version, pageCount, features)
            life.state = .greeting
        case let (.paused, .hello(version, _, pageCount, _)):
            try StreamVersion.check(version)
            guard pageCount == self.pageCount else { throw life.refuse(message, "the guest has \(self.pageCount) pages, not \(pageCount)") }
            life.version = version
            life.state = .regreeting
        case let (.precopy, .passStart(pass)) where openPass == nil:
            openPass = pass
        case let (.precopy, .passEnd(pass, _)) where openPass == pass:
            openPass = nil
        case (.precopy, .pages) where openPass != nil, (.stoppedCopy, .pages) where !listened, (.postcopy, .pages),
             (.stoppedCopy, .deviceState), (.stoppedCopy, .stamps):
            break
        case (.precopy, .stopAndCopy) where openPass == nil, (.listened, .stopAndCopy):
            life.state = .stoppedCopy
        case (.precopy, .postcopyListen) where openPass == nil:
            guard features.contains(.postcopy) else { throw life.refuse(message, "the hello did not offer postcopy") }
            listened = true
            life.state = .listening
        case (.stoppedCopy, .postcopyStart):
            guard features.contains(.postcopy) else { throw life.refuse(message, "the hello did not offer postcopy") }
            life.state = .startingPostcopy
        case (.stoppedCopy, .complete) where !listened:
            awaitsGuestRunning = true
            life.state = .completing
        case (.postcopy, .complete):
            life.state = .completing
        case (.reconnected, .resume):
            guard features.contains(.recovery) else { throw life.refuse(message, "the hello did not offer recovery") }
            received = nil
            life.state = .resuming
        default:
            throw life.refuse(message)
        }
    }

    private mutating func receiveLegal(_ message: StreamMessage) throws(StreamError) {
        if pings.receive(message, greeted: greeted) { return }
        switch (life.state, message) {
        case let (_, .abort(reason)):
            life.fail(StreamError(.peerAborted, "the destination aborted: \(reason)"))
        case let (.greeting, .helloAck(version)) where version == life.version,
             let (.regreeting, .helloAck(version)) where version == life.version:
            life.state = life.state == .regreeting ? .reconnected : .precopy
        case (.listening, .postcopyListenAck):
            life.state = .listened
        case (.startingPostcopy, .postcopyStartAck):
            life.state = .postcopy
        case let (.postcopy, .pageRequest(ranges)), let (.completing, .pageRequest(ranges)):
            // In `completing` too: a request the destination sent before `complete` reached it
            // can arrive after; every page has gone by then, so there is nothing to answer.
            for r in ranges where r.start >= pageCount || r.count > pageCount - r.start {
                throw life.refuse(message, "range \(r) is outside the guest's \(pageCount) pages")
            }
        case let (.resuming, .receivedBitmap(ranges)) where received == nil:
            received = ranges
        case (.resuming, .resumeAck) where received != nil:
            life.state = .postcopy
        case (.completing, .guestRunning) where awaitsGuestRunning:
            awaitsGuestRunning = false
        case let (.completing, .completeAck(verified, detail)) where !awaitsGuestRunning:
            if verified {
                life.state = .completed
            } else {
                life.fail(StreamError(.unexpectedMessage, "the destination could not verify the guest: \(detail)"))
            }
        default:
            throw life.refuse(message, "the source does not expect it now")
        }
    }
}

/// What both sides' state machines share: the state, why it failed, the agreed version, and
/// the rule that the first refused message ends the stream.
struct StreamLife<State: Equatable & CustomStringConvertible & Sendable>: Sendable {
    var state: State
    let completed: State, failed: State
    var failure: StreamError?
    var version: UInt16?

    mutating func fail(_ error: StreamError) {
        if state != failed { failure = error }
        state = failed
    }

    func refuse(_ message: StreamMessage, _ why: String = "") -> StreamError {
        StreamError(.unexpectedMessage, "\(message.type) is not allowed in state \(state)\(why.isEmpty ? "" : ": " + why)")
    }

    /// Nothing after the end; nothing newer than the agreed version.
    func checkLive(_ message: StreamMessage) throws(StreamError) {
        if state == completed || state == failed { throw refuse(message) }
        if let version { try StreamVersion.check(message.type, in: version) }
    }
}

protocol StreamStateMachine {
    associatedtype State: Equatable & CustomStringConvertible & Sendable
    var life: StreamLife<State> { get set }
}

extension StreamStateMachine {
    /// Runs `step` on a live stream; a refusal fails the stream and is rethrown.
    mutating func guarded(_ message: StreamMessage, _ step: (inout Self) throws(StreamError) -> Void) throws(StreamError) {
        do throws(StreamError) {
            try life.checkLive(message)
            try step(&self)
        } catch {
            life.fail(error)
            throw error
        }
    }
}

/// The watchdog's bookkeeping: the pings each way that still await their pong.
struct PingBook: Sendable {
    private var sent: Set<UInt64> = []
    private var received: Set<UInt64> = []

    /// True (and noted) when `message` is a ping this side may send now, or the pong to a ping
    /// it received; false for any other message.
    mutating func send(_ message: StreamMessage, greeted: Bool) -> Bool {
        Self.note(message, greeted: greeted, mine: &sent, theirs: &received)
    }

    /// The same for a message from the peer.
    mutating func receive(_ message: StreamMessage, greeted: Bool) -> Bool {
        Self.note(message, greeted: greeted, mine: &received, theirs: &sent)
    }

    private static func note(_ message: StreamMessage, greeted: Bool, mine: inout Set<UInt64>, theirs: inout Set<UInt64>) -> Bool {
        switch message {
        case let .ping(nonce) where greeted:
            mine.insert(nonce)
            return true
        case let .pong(nonce):
            return theirs.remove(nonce) != nil
        default:
            return false
        }
    }
}

import Foundation
import Migration
import Transport

/// A QMP client: one monitor connection (QEMU's `-qmp unix:PATH,server=on`, or any QMP peer).
/// It reads the greeting, negotiates `qmp_capabilities` (with `oob` when the peer offers it),
/// and then runs commands with ids of its own, so that replies are matched whatever their
/// order (out-of-band replies overtake in-band ones). A reader thread routes replies to their
/// waiting callers and queues events. Every wait has a timeout, and a monitor that closes or
/// breaks fails every waiting and later call with `QMPConnectionError` at once — never a hang.
public final class QMPClient: @unchecked Sendable {
    // @unchecked: every mutable field is read and written under `condition` only.
    private let stream: QMPStream
    private let condition = NSCondition()
    private var greetingMessage: JSONValue?
    private var replies: [Int64: (result: Result<JSONValue, QMPError>, sequence: UInt64)] = [:]
    private var received: UInt64 = 0
    private var outstanding: Set<Int64> = []
    private var queued: [QMPEvent] = []
    private var closedBecause: String?
    private var nextID: Int64 = 1
    private var malformedCount = 0
    /// The reader thread has ended: the channel may be released.
    private var readerDone = false

    /// Events beyond this many, unread, push out the oldest: a client nobody reads from must
    /// not grow without bound (QEMU's own monitor drops events under pressure too).
    public static let maxQueuedEvents = 10_000

    /// The peer's greeting (`{"QMP": {"version": …, "capabilities": […]}}`).
    /// (Set once, in `init`, before any other thread can see the client.)
    public private(set) var greeting: JSONValue
    /// Out-of-band execution was offered and enabled.
    public private(set) var oob: Bool
    /// Where the monitor is.
    public let uri: MigrationURI

    /// Connects to the monitor at `uri` (usually `unix:PATH`), retrying while the socket does
    /// not exist or refuses (a QEMU just started creates it a moment later) for up to
    /// `retrying` seconds, then negotiates capabilities within `timeout` seconds.
    public static func connect(_ uri: MigrationURI, retrying: Double = 1, timeout: Double = 10) throws -> QMPClient {
        let end = Date().addingTimeInterval(retrying)
        var last: any Error = QMPConnectionError(.closed, "no attempt")
        repeat {
            do {
                var options = TransportOptions()
                options.keepAlive = nil
                options.userTimeout = nil
                let channel = try Transport.connect(uri, options: options)
                return try QMPClient(channel: channel, timeout: timeout)
            } catch let error as TransportError {
                last = error
                usleep(20_000)
            }
        } while Date() < end
        throw QMPConnectionError(.closed, "cannot connect to the QMP monitor at \(uri) (tried for \(retrying) s): \(last)")
    }

    /// Speaks QMP over `channel`: waits at most `timeout` seconds for the greeting and for the
    /// answer to `qmp_capabilities`. The client owns the channel from here on.
    public init(channel: any ByteChannel, timeout: Double = 10) throws {
        stream = QMPStream(channel: channel)
        uri = channel.uri
        greeting = .null
        oob = false
        Thread.detachNewThread { [self] in readLoop() }
        do {
            let hello = try waitFor("the QMP greeting", timeout: timeout) { greetingMessage }
            guard let qmp = hello["QMP"], qmp["version"] != nil else {
                throw QMPConnectionError(.protocolViolation, "the peer at \(uri) sent \(hello), not a QMP greeting")
            }
            let offered = qmp["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? []
            greeting = hello
            oob = offered.contains("oob")
            _ = try execute("qmp_capabilities", oob ? ["enable": ["oob"]] : nil, timeout: timeout)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    // MARK: commands

    /// Runs `command` and returns its `return` value; the peer's refusal is thrown as the
    /// `QMPError` it sent (class and desc), a lost connection or no answer within `timeout`
    /// seconds as `QMPConnectionError`.
    @discardableResult
    public func execute(_ command: String, _ arguments: JSONValue? = nil, timeout: Double = 10) throws -> JSONValue {
        try run(command, arguments, outOfBand: false, timeout: timeout).value
    }

    /// `execute`, and where its reply came in the conversation: an event with a lower
    /// `sequence` was sent before the reply, so it is older than what the reply reports.
    public func executeSequenced(_ command: String, _ arguments: JSONValue? = nil, timeout: Double = 10) throws -> (value: JSONValue, sequence: UInt64) {
        try run(command, arguments, outOfBand: false, timeout: timeout)
    }

    /// Runs `command` out of band (`exec-oob`): the peer answers it at once even while its main
    /// thread is blocked, as QEMU's destination may be in postcopy (`migrate-recover`). Needs
    /// `oob` to have been negotiated.
    @discardableResult
    public func executeOOB(_ command: String, _ arguments: JSONValue? = nil, timeout: Double = 10) throws -> JSONValue {
        guard oob else { throw QMPConnectionError(.protocolViolation, "the monitor at \(uri) did not offer out-of-band execution (exec-oob \(command))") }
        return try run(command, arguments, outOfBand: true, timeout: timeout).value
    }

    private func run(_ command: String, _ arguments: JSONValue?, outOfBand: Bool, timeout: Double) throws -> (value: JSONValue, sequence: UInt64) {
        let id = try locked { () throws -> Int64 in
            if let why = closedBecause { throw QMPConnectionError(.closed, "\(command): the QMP monitor at \(uri) is closed: \(why)") }
            defer { nextID += 1 }
            outstanding.insert(nextID)
            return nextID
        }
        var members: [(key: String, value: JSONValue)] = [(outOfBand ? "exec-oob" : "execute", .string(command))]
        if let arguments { members.append(("arguments", arguments)) }
        members.append(("id", .integer(id)))
        do {
            try stream.send(.object(members))
        } catch {
            locked { _ = outstanding.remove(id) }
            fail("sending failed: \(error)")
            // Worded as when the reader sees the end first: which side notices a monitor that
            // died is a race, and the message should not depend on it.
            throw QMPConnectionError(.closed, "\(command): the QMP monitor at \(uri) is closed: cannot write to it: \(error)")
        }
        let reply: (result: Result<JSONValue, QMPError>, sequence: UInt64)
        do {
            reply = try waitFor("the answer to \(command)", timeout: timeout) { replies.removeValue(forKey: id) }
        } catch {
            locked { _ = outstanding.remove(id) }
            throw error
        }
        return (try reply.result.get(), reply.sequence)
    }

    // MARK: events

    /// Takes every queued event (oldest first), waiting up to `timeout` seconds for one when
    /// none is queued; an empty list when none came. A closed monitor is thrown only once the
    /// queue is empty, so that the last events before a peer exits are still read.
    public func events(waiting timeout: Double = 0) throws -> [QMPEvent] {
        condition.lock()
        defer { condition.unlock() }
        let end = Date().addingTimeInterval(max(0, timeout))
        while queued.isEmpty, closedBecause == nil, Date() < end { _ = condition.wait(until: end) }
        if queued.isEmpty, let why = closedBecause { throw QMPConnectionError(.closed, "the QMP monitor at \(uri) is closed: \(why)") }
        defer { queued.removeAll() }
        return queued
    }

    /// Waits up to `timeout` seconds for an event named `name` for which `match` holds; the
    /// events before it stay queued. Nil when none came in time.
    public func waitForEvent(_ name: String, timeout: Double, where match: (QMPEvent) -> Bool = { _ in true }) throws -> QMPEvent? {
        condition.lock()
        defer { condition.unlock() }
        let end = Date().addingTimeInterval(max(0, timeout))
        while true {
            if let i = queued.firstIndex(where: { $0.name == name && match($0) }) { return queued.remove(at: i) }
            if let why = closedBecause { throw QMPConnectionError(.closed, "waiting for \(name): the QMP monitor at \(uri) is closed: \(why)") }
            if Date() >= end { return nil }
            _ = condition.wait(until: end)
        }
    }

    /// Why the monitor is closed, or nil while it is open.
    public var closedReason: String? { locked { closedBecause } }
    /// Messages that were not JSON objects QMP could carry, skipped.
    public var malformedMessages: Int { locked { malformedCount } }

    /// Ends the conversation; waiting calls fail at once. Safe to call twice.
    public func close() {
        fail("closed by this client")
        stream.channel.abort()
        locked {
            // The reader thread releases nothing: once it has seen the end, close the socket.
            let end = Date().addingTimeInterval(1)
            while !readerDone, Date() < end { _ = condition.wait(until: end) }
        }
        stream.channel.close()
    }

    // MARK: the reader thread

    private func readLoop() {
        var ending = "the monitor closed the connection"
        loop: while true {
            do {
                guard let incoming = try stream.next() else { break loop }
                switch incoming {
                case .malformed: locked { malformedCount += 1 }
                case .message(let m): route(m)
                }
            } catch {
                ending = "the connection broke: \(error)"
                break loop
            }
        }
        fail(ending)
        locked {
            readerDone = true
            condition.broadcast()
        }
    }

    private func route(_ m: JSONValue) {
        locked {
            defer { condition.broadcast() }
            received += 1
            // The first message is the greeting, or the sign of a peer that is not QMP.
            if greetingMessage == nil {
                greetingMessage = m
                return
            }
            if let event = QMPEvent(m, sequence: received) {
                queued.append(event)
                if queued.count > Self.maxQueuedEvents { queued.removeFirst(queued.count - Self.maxQueuedEvents) }
                return
            }
            let result: Result<JSONValue, QMPError>
            if let value = m["return"] {
                result = .success(value)
            } else if let e = m["error"] {
                result = .failure(QMPError(className: e["class"]?.stringValue ?? "GenericError", desc: e["desc"]?.stringValue ?? "\(e)"))
            } else {
                malformedCount += 1
                return
            }
            // QEMU answers a command it could not even parse without an id: it belongs to the
            // only command waiting, if there is exactly one.
            guard let id = m["id"]?.integerValue ?? (outstanding.count == 1 ? outstanding.first : nil),
                  outstanding.remove(id) != nil else {
                malformedCount += 1
                return
            }
            replies[id] = (result, received)
        }
    }

    private func fail(_ why: String) {
        locked {
            if closedBecause == nil { closedBecause = why }
            condition.broadcast()
        }
    }

    // MARK: waiting

    private func waitFor<T>(_ what: String, timeout: Double, _ take: () -> T?) throws -> T {
        condition.lock()
        defer { condition.unlock() }
        let end = Date().addingTimeInterval(max(0, timeout))
        while true {
            if let value = take() { return value }
            if let why = closedBecause { throw QMPConnectionError(.closed, "waiting for \(what): the QMP monitor at \(uri) is closed: \(why)") }
            if Date() >= end { throw QMPConnectionError(.timeout, "\(what): no answer from the QMP monitor at \(uri) within \(timeout) s") }
            _ = condition.wait(until: end)
        }
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }
}

import Foundation
import Migration
import QMP
import Synchronization
import Testing
import Transport

/// A raw QMP client for tests: sends bytes or messages as they are, reads replies and events
/// apart, with a deadline on every wait (a server that stops answering fails the test, never
/// hangs it).
final class QMPTestClient: @unchecked Sendable {
    let channel: any ByteChannel
    let stream: QMPStream
    let greeting: JSONValue
    private let lock = NSCondition()
    private var replies: [JSONValue] = []
    private var events: [JSONValue] = []
    private var ended = false

    init(_ uri: MigrationURI) throws {
        var options = TransportOptions()
        // No wait in a test may hang it: a silent server ends the stream after 20 s.
        options.receiveTimeout = 20
        channel = try Transport.connect(uri, options: options)
        stream = QMPStream(channel: channel, maxMessageBytes: 8 << 20)
        guard case .message(let g)? = try stream.next() else { throw QMPError(.genericError, "no greeting") }
        greeting = g
        Thread.detachNewThread { [self] in
            while case .message(let m)? = try? stream.next() {
                lock.lock()
                if m["event"] != nil { events.append(m) } else { replies.append(m) }
                lock.broadcast()
                lock.unlock()
            }
            lock.lock()
            ended = true
            lock.broadcast()
            lock.unlock()
        }
    }

    /// Hangs up (the reader thread holds the client, so this does not wait for deinit).
    func close() { channel.abort() }

    deinit { channel.close() }

    func sendRaw(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try channel.send($0) }
    }

    func send(_ message: JSONValue) throws { try stream.send(message) }

    /// The next reply (in order), or nil after `seconds`.
    func reply(within seconds: Double = 5) -> JSONValue? {
        lock.lock()
        defer { lock.unlock() }
        let end = Date().addingTimeInterval(seconds)
        while replies.isEmpty, !ended, lock.wait(until: end) {}
        // Not `? nil :` — JSONValue takes a nil literal too, and would turn none into null.
        if replies.isEmpty { return Optional.none }
        return replies.removeFirst()
    }

    /// The first event named `name` not yet taken, or nil after `seconds`.
    func event(_ name: String, within seconds: Double = 5) -> JSONValue? {
        lock.lock()
        defer { lock.unlock() }
        let end = Date().addingTimeInterval(seconds)
        while true {
            if let i = events.firstIndex(where: { $0["event"]?.stringValue == name }) { return events.remove(at: i) }
            if ended || !lock.wait(until: end) { return nil }
        }
    }

    /// Sends `execute` with `arguments` and returns the reply.
    func execute(_ command: String, _ arguments: JSONValue? = nil, id: JSONValue? = nil) throws -> JSONValue? {
        var m: [(key: String, value: JSONValue)] = [("execute", .string(command))]
        if let arguments { m.append(("arguments", arguments)) }
        if let id { m.append(("id", id)) }
        try send(.object(m))
        return reply()
    }

    /// Greets: qmp_capabilities (with oob when asked).
    func negotiate(oob: Bool = false) throws {
        let r = try execute("qmp_capabilities", oob ? ["enable": ["oob"]] : nil)
        #expect(r == ["return": [:]], "\(String(describing: r))")
    }
}

extension JSONValue {
    /// `desc` of an error reply.
    var errorDesc: String? { self["error"]?["desc"]?.stringValue }
    var errorClass: String? { self["error"]?["class"]?.stringValue }
}

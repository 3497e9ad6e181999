import Dispatch
import Foundation
import Migration
import Synchronization
import Transport

/// A QMP monitor, as a QEMU process offers one on `-qmp unix:PATH,server`: it serves one client
/// at a time on a `Listener` and takes the next once that one hangs up (QEMU's monitor
/// chardev does the same). Commands come from a `QMPCommandRegistry` filled by the layer
/// above; `emit` sends an event to the client, if one has completed negotiation.
public final class QMPServer: Sendable {
    /// What the greeting says this monitor is.
    public struct Version: Sendable {
        public var major: Int64, minor: Int64, micro: Int64
        public var package: String
        /// QEMU 7.2.0's numbers: the QMP dialect this server speaks.
        public init(major: Int64 = 7, minor: Int64 = 2, micro: Int64 = 0, package: String = "migpilot") {
            self.major = major
            self.minor = minor
            self.micro = micro
            self.package = package
        }
    }

    public let commands: QMPCommandRegistry
    private let listener: Listener
    private let greeting: JSONValue
    private struct Current { var session: QMPSession?; var stopped = false }
    private let current = Mutex(Current())
    private let ended = DispatchSemaphore(value: 0)
    private let started = Mutex(false)

    /// A server on `listener` (see `Transport.listen`); it accepts nothing until `start()`.
    public init(listener: Listener, commands: QMPCommandRegistry, version: Version = Version()) {
        self.listener = listener
        self.commands = commands
        greeting = ["QMP": ["version": ["qemu": ["micro": .integer(version.micro), "minor": .integer(version.minor), "major": .integer(version.major)],
                                        "package": .string(version.package)],
                            "capabilities": ["oob"]]]
    }

    /// Where clients connect.
    public var uri: MigrationURI { listener.uri }

    /// Accepts and serves clients, one at a time, on a thread of its own until `stop()`.
    public func start() {
        guard !started.withLock({ s in defer { s = true }; return s }) else { return }
        DispatchQueue.global().async { [self] in
            defer { ended.signal() }
            while !current.withLock({ $0.stopped }) {
                guard let channel = try? listener.accept() else { return }
                let session = QMPSession(channel: channel, commands: commands, greeting: greeting)
                let stopped = current.withLock { c -> Bool in
                    if !c.stopped { c.session = session }
                    return c.stopped
                }
                if stopped { channel.close(); return }
                session.serve()
                current.withLock { $0.session = nil }
                channel.close()
            }
        }
    }

    /// Sends `{"event": name, "data": data, "timestamp": …}` to the client, if one is past
    /// negotiation (QEMU sends no events before); otherwise the event is dropped, as QEMU
    /// drops events nobody listens to. `data` nil: an event without data (`STOP`).
    public func emit(_ name: String, data: JSONValue? = nil) {
        guard let session = current.withLock({ $0.session }), session.negotiated else { return }
        let now = Date().timeIntervalSince1970
        let seconds = now.rounded(.down)
        var members: [(key: String, value: JSONValue)] = [("event", .string(name))]
        if let data { members.append(("data", data)) }
        members.append(("timestamp", ["seconds": .integer(Int64(seconds)), "microseconds": .integer(Int64((now - seconds) * 1e6))]))
        try? session.stream.send(.object(members))
    }

    /// Stops accepting, hangs up on the client, and waits for the server's thread to end (if
    /// `start()` ran). Safe to call twice.
    public func stop() {
        let (session, already) = current.withLock { c -> (QMPSession?, Bool) in
            defer { c.stopped = true }
            return (c.session, c.stopped)
        }
        guard !already else { return }
        session?.stream.channel.abort()
        // `accept` does not return when its socket is closed under it: wake it with a client.
        if started.withLock({ $0 }) {
            if let wake = try? Transport.connect(listener.uri) { wake.close() }
            ended.wait()
        }
        listener.close()
    }
}

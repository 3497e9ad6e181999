import Migration

/// A two-way byte stream, whatever carries it. One thread may send while another receives
/// (full duplex); two threads must not send (or receive) at the same time.
public protocol ByteChannel: AnyObject, Sendable {
    /// Where this channel goes (for a listener's channel: where it was accepted).
    var uri: MigrationURI { get }
    /// Sends all of `bytes` (however many system calls it takes), or throws.
    func send(_ bytes: UnsafeRawBufferPointer) throws(TransportError)
    /// Sends all of `pieces`, one after another, as if they were one buffer: a gathered
    /// write, so that data need not be copied together first.
    func send(pieces: [UnsafeRawBufferPointer]) throws(TransportError)
    /// Receives what has arrived, at least one byte, at most `buffer.count`; 0 at end of stream.
    func receive(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int
    /// Fills `buffer` unless the stream ends first; returns how much arrived (short only at end
    /// of stream).
    func receiveAll(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int
    /// Tells the peer that nothing more will be sent (it receives end of stream); receiving
    /// goes on.
    func shutdownWrite() throws(TransportError)
    /// Breaks the link from any thread: a send or receive blocked in another thread returns
    /// (end of stream or an error) at once. Sockets are shut both ways; an `exec:` command is
    /// ended. The channel still needs `close()`.
    func abort()
    /// Releases the channel (for `exec:`, ends and reaps the command). Safe to call twice.
    func close()
}

extension ByteChannel {
    public func receiveAll(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        try receivePieces(into: buffer)
    }

    /// `receiveAll` as a loop of `receive` calls.
    func receivePieces(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try receive(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// How channels are set up and watched. The keepalive and user-timeout fields apply to `tcp:`;
/// the rest to `tcp:` and `unix:`.
public struct TransportOptions: Sendable, Equatable {
    /// TCP keepalive probes on an idle connection: first after `idle` seconds, then every
    /// `interval` seconds, and the connection is declared dead after `count` unanswered probes.
    public struct KeepAlive: Sendable, Equatable {
        public var idle: Int32
        public var interval: Int32
        public var count: Int32
        public init(idle: Int32, interval: Int32, count: Int32) {
            self.idle = idle
            self.interval = interval
            self.count = count
        }
    }

    /// TCP_NODELAY: small control messages leave at once.
    public var noDelay = true
    /// Dead-link detection on an idle connection (nil: the kernel's default, off).
    public var keepAlive: KeepAlive? = KeepAlive(idle: 5, interval: 2, count: 3)
    /// TCP_USER_TIMEOUT in seconds: sent data unacknowledged this long ends the connection
    /// with ETIMEDOUT (nil: the kernel's default, many minutes).
    public var userTimeout: Int32? = 15
    /// Progress watchdog: `receive` fails with ETIMEDOUT when nothing arrives for this many
    /// seconds (nil: wait as long as the connection lives).
    public var receiveTimeout: Double? = nil
    /// Large sends and `receiveAll` are cut into `chunkSize` pieces, `inFlight` of them queued
    /// on io_uring at once as one ordered (linked) chain.
    public var chunkSize = 256 << 10
    public var inFlight = 4
    /// `exec:`: how long the command has to end after SIGTERM before SIGKILL.
    public var killGrace: Double = 2

    public init() {}
}

import Glibc
import Migration

/// A `tcp:` or `unix:` stream socket; data moves through io_uring, one ring per direction so
/// that a sender and a receiver thread never share one.
public final class SocketChannel: ByteChannel, @unchecked Sendable {
    public let uri: MigrationURI
    /// The socket, for inspection (getsockopt); the channel owns it.
    public let descriptor: Int32
    private let options: TransportOptions
    private let sendRing: Ring
    private let receiveRing: Ring
    private let closing = Mutex()
    private var closed = false

    init(descriptor: Int32, uri: MigrationURI, options: TransportOptions) throws(TransportError) {
        self.descriptor = descriptor
        self.uri = uri
        self.options = options
        // Room for a chain of chunks, each possibly followed by a linked timeout.
        let entries = UInt32(max(8, 2 * options.inFlight + 2))
        // On failure the caller still owns (and closes) the descriptor.
        sendRing = try Ring(entries: entries)
        receiveRing = try Ring(entries: entries)
    }

    deinit { close() }

    public func send(_ bytes: UnsafeRawBufferPointer) throws(TransportError) {
        try on(uri) { () throws(TransportError) in
            _ = try chained(UnsafeMutableRawBufferPointer(mutating: bytes), sending: true)
        }
    }

    /// A plain blocking `sendmsg` rather than the ring: one call takes a whole gather list
    /// (`abort`'s shutdown ends it as it ends a ring operation).
    public func send(pieces: [UnsafeRawBufferPointer]) throws(TransportError) {
        try on(uri) { () throws(TransportError) in try Sys.writeAll(descriptor, pieces, socket: true) }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        guard buffer.count > 0 else { return 0 }
        return try on(uri) { () throws(TransportError) -> Int in
            receiveRing.prepRecv(descriptor, buffer, flags: 0, tag: 0)
            guard let timeout = options.receiveTimeout else {
                return try result(of: receiveRing.submit(collecting: 1, call: "recv")[0].result, "recv")
            }
            receiveRing.linkLast()
            receiveRing.prepLinkTimeout(nanoseconds: UInt64(timeout * 1e9), tag: 1)
            let done = try receiveRing.submit(collecting: 2, call: "recv")
            let r = done.first { $0.tag == 0 }!.result
            if r == -ECANCELED { throw TransportError(call: "recv (nothing for \(timeout) s)", errno: ETIMEDOUT) }
            return try result(of: r, "recv")
        }
    }

    public func receiveAll(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        // The watchdog is per receive: with one, go piece by piece.
        if options.receiveTimeout != nil { return try receivePieces(into: buffer) }
        return try on(uri) { () throws(TransportError) -> Int in try chained(buffer, sending: false) }
    }

    /// Moves all of `buffer` as linked chains of up to `inFlight` chunks with MSG_WAITALL: each
    /// chain runs in order; a short piece (a signal, the end of the stream) cancels the rest of
    /// its chain, and the next chain resumes where it stopped. Returns the bytes moved (short
    /// only when receiving and the stream ended).
    private func chained(_ buffer: UnsafeMutableRawBufferPointer, sending: Bool) throws(TransportError) -> Int {
        let ring = sending ? sendRing : receiveRing
        let call = sending ? "send" : "recv"
        let flags = sending ? Int32(MSG_NOSIGNAL) | Int32(MSG_WAITALL) : Int32(MSG_WAITALL)
        let chunk = max(4096, options.chunkSize)
        var offset = 0
        while offset < buffer.count {
            var pieces: [Range<Int>] = []
            var start = offset
            while start < buffer.count && pieces.count < max(1, options.inFlight) {
                let end = min(buffer.count, start + chunk)
                pieces.append(start..<end)
                start = end
            }
            for (i, piece) in pieces.enumerated() {
                if i > 0 { ring.linkLast() }
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[piece])
                if sending {
                    ring.prepSend(descriptor, UnsafeRawBufferPointer(slice), flags: flags, tag: UInt64(i))
                } else {
                    ring.prepRecv(descriptor, slice, flags: flags, tag: UInt64(i))
                }
            }
            var results = [Int32](repeating: 0, count: pieces.count)
            for c in try ring.submit(collecting: pieces.count, call: call) { results[Int(c.tag)] = c.result }
            for (i, piece) in pieces.enumerated() {
                let r = results[i]
                if r == -ECANCELED || r == -EINTR || r == -EAGAIN { break }
                let n = try result(of: r, call)
                offset += n
                if n == 0 && !sending { return offset }
                if n < piece.count { break }
            }
        }
        return offset
    }

    private func result(of r: Int32, _ call: String) throws(TransportError) -> Int {
        if r < 0 { throw TransportError(call: call, errno: -r) }
        return Int(r)
    }

    public func shutdownWrite() throws(TransportError) {
        try on(uri) { () throws(TransportError) in try Sys.shutdown(descriptor, Int32(SHUT_WR)) }
    }

    public func abort() {
        closing.locked {
            if !closed { _ = try? Sys.shutdown(descriptor, Int32(SHUT_RDWR)) }
        }
    }

    public func close() {
        closing.locked {
            guard !closed else { return }
            closed = true
            Sys.close(descriptor)
        }
    }
}

/// A small lock for close-once bookkeeping.
final class Mutex: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }
}

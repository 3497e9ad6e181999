import Synchronization
import Transport

/// Frames over a byte channel: messages out through a `FrameEncoder` (flushed in large writes),
/// messages in through an incremental `FrameDecoder`. One per side of a migration. Like its
/// channel it is full duplex: one thread may send while another receives; two threads that
/// both send (or both receive) must take turns under a lock of their own.
final class StreamConnection: @unchecked Sendable {
    let channel: any ByteChannel
    var encoder: FrameEncoder
    var decoder: FrameDecoder
    private(set) var bytesSent: UInt64 = 0
    /// When bytes last arrived (the monotonic clock), for `LinkWatchdog` on another thread.
    private let lastReceive = Atomic<UInt64>(Sys.monotonicNanoseconds())
    var nanosecondsSinceLastReceive: UInt64 {
        let now = Sys.monotonicNanoseconds(), last = lastReceive.load(ordering: .relaxed)
        return now > last ? now - last : 0
    }
    /// Flush the encoder once it holds this much.
    static let flushBytes = 4 << 20
    /// Receive at most this much a call.
    static let receiveBytes = 1 << 20

    init(channel: any ByteChannel, pageSize: UInt32? = nil) {
        self.channel = channel
        encoder = FrameEncoder(pageSize: pageSize, reservingCapacity: Self.flushBytes + StreamFrame.maxPayload)
        decoder = FrameDecoder(pageSize: pageSize)
    }

    /// Touches the memory of the encoder's first flush (and of a data frame or two past it,
    /// what a batch may overrun by) and of the decoder's first receive now: left to the
    /// migration, their first touch would be the sender's in pass 1 (≈ 1,300 page faults,
    /// 6–20 ms on this machine) and in the wait for `hello-ack` (256 faults, 0.5–3.4 ms).
    func touchBuffers() {
        encoder.touch(Self.flushBytes + (1 << 20))
        decoder.reserve(Self.receiveBytes)
    }

    func send(_ message: StreamMessage) throws {
        try encoder.append(message)
        try flushIfFull()
    }

    func flushIfFull() throws { if encoder.count >= Self.flushBytes { try flush() } }

    func flush() throws {
        guard encoder.count > 0 else { return }
        try encoder.withPieces { pieces in
            // Page data left in guest memory (stop-and-copy) leaves from there, in one gathered
            // write with the headers around it.
            if pieces.count == 1 { try channel.send(pieces[0]) } else { try channel.send(pieces: pieces) }
        }
        bytesSent += UInt64(encoder.count)
        encoder.removeAll()
    }

    /// The next message, reading from the channel as needed; `pages` data goes to `pages` in
    /// place. Nil at the end of the stream (after checking it did not end inside a frame).
    func receive(pages: FrameDecoder.PagesInPlace = { _, _, _, _ in }) throws -> StreamMessage? {
        while true {
            if let message = try decoder.next(pagesInPlace: pages) { return message }
            let n = try decoder.receive(atMost: Self.receiveBytes) { buffer in try channel.receive(into: buffer) }
            lastReceive.store(Sys.monotonicNanoseconds(), ordering: .relaxed)
            if n == 0 {
                try decoder.finish()
                return nil
            }
        }
    }
}

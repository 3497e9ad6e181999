@testable import MigrationEngine
import Traces

/// Shared material of the stream tests: one message of every type, and helpers to encode and
/// to decode in seeded random chunks.
enum StreamSamples {
    static func bytes(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SeededRandom(seed: seed)
        return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    /// Every message type at least once; the first is the `hello` that sets the page size.
    static func messages(pageSize: UInt32) -> [StreamMessage] {
        [
            .hello(version: 5, pageSize: pageSize, pageCount: 1 << 20, features: [.postcopy, .recovery]),
            .helloAck(version: 5),
            .passStart(pass: 1),
            .pages(start: 5, count: 3, zero: false, bytes: bytes(3 * Int(pageSize), seed: 1)),
            .pages(start: 1 << 19, count: 700, zero: true, bytes: []),
            .pages(start: 0, count: 1, zero: false, bytes: bytes(Int(pageSize), seed: 2)),
            .passEnd(pass: 1, pagesSent: 704),
            .stopAndCopy,
            .deviceState(progress: [0, 12_345_678_901]),
            .deviceState(progress: []),
            .stamps(start: 7, sequences: [1, 0, .max]),
            .postcopyStart(discard: [PageRange(start: 3, count: 9), PageRange(start: 100, count: 1)]),
            .postcopyStart(discard: []),
            .postcopyListen(discard: [PageRange(start: 8, count: 2)]),
            .postcopyListenAck,
            .postcopyStartAck,
            .pageRequest([PageRange(start: 77, count: 1)]),
            .receivedBitmap([PageRange(start: 0, count: 4096), PageRange(start: 5000, count: 12)]),
            .resume,
            .resumeAck,
            .ping(nonce: 0xDEAD_BEEF_0123_4567),
            .pong(nonce: 0xDEAD_BEEF_0123_4567),
            .complete,
            .guestRunning,
            .completeAck(verified: true, detail: "1048576 pages verified"),
            .completeAck(verified: false, detail: "page 7: stale (sequence 3, expected 4) ✗"),
            .abort(reason: "link down"),
        ]
    }

    /// The frames of `messages`, and the stream offset where each one starts (plus the end).
    static func encode(_ messages: [StreamMessage]) throws -> (bytes: [UInt8], starts: [Int]) {
        var encoder = FrameEncoder()
        var starts: [Int] = []
        for m in messages {
            starts.append(encoder.bytes.count)
            try encoder.append(m)
        }
        starts.append(encoder.bytes.count)
        return (encoder.bytes, starts)
    }

    /// Feeds `bytes` in chunks of 1...`maxChunk` bytes (`feed` or `receive`, at random), collecting messages until the first
    /// error; then `finish()`. Returns the messages and the error, if any.
    static func decode(_ bytes: [UInt8], seed: UInt64, maxChunk: Int = 700, pageSize: UInt32? = nil) -> ([StreamMessage], StreamError?) {
        var rng = SeededRandom(seed: seed)
        var decoder = FrameDecoder(pageSize: pageSize)
        var out: [StreamMessage] = []
        var at = 0
        do throws(StreamError) {
            while at < bytes.count {
                let n = min(bytes.count - at, 1 + Int(rng.below(UInt64(maxChunk))))
                if rng.below(2) == 0 {
                    decoder.feed(bytes[at..<at + n])
                } else {
                    // As a transport reading straight into the decoder: room for more than arrives.
                    let filled = decoder.receive(atMost: n + Int(rng.below(100))) { room in
                        bytes[at..<at + n].withUnsafeBytes { room.copyMemory(from: $0) }
                        return n
                    }
                    precondition(filled == n)
                }
                at += n
                while let m = try decoder.next() { out.append(m) }
            }
            try decoder.finish()
            return (out, nil)
        } catch {
            return (out, error)
        }
    }
}

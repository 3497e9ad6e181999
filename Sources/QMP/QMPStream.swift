import Synchronization
import Transport

/// One QMP peer's byte channel cut into messages. QMP is a stream of JSON objects, not of
/// lines: QEMU's own parser accepts a message split over lines or several on one line, so
/// this splits on the end of each top-level value (braces and brackets outside strings).
/// What cannot be a message — garbage between messages, a value that does not parse, one
/// longer than `maxMessageBytes` — is reported as `.malformed` and skipped, and the stream
/// goes on, as QEMU's monitor does.
public final class QMPStream: Sendable {
    /// A message, or what could not be one.
    public enum Incoming: Sendable, Equatable {
        case message(JSONValue)
        case malformed(String)
    }

    /// QEMU takes messages up to 64 MiB; nothing a migration needs comes near 1 MiB.
    public static let defaultMaxMessageBytes = 1 << 20

    public let channel: any ByteChannel
    public let maxMessageBytes: Int
    private let reader: Mutex<Splitter>
    private let writing = Mutex(())

    public init(channel: any ByteChannel, maxMessageBytes: Int = QMPStream.defaultMaxMessageBytes) {
        self.channel = channel
        self.maxMessageBytes = maxMessageBytes
        self.reader = Mutex(Splitter(limit: maxMessageBytes))
    }

    /// The next message, or nil at the end of the stream. One thread reads.
    public func next() throws(TransportError) -> Incoming? {
        try reader.withLock { (splitter: inout Splitter) throws(TransportError) -> Incoming? in
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 1)
            defer { chunk.deallocate() }
            while true {
                if let item = splitter.next() { return item }
                let n = try channel.receive(into: chunk)
                if n == 0 { return splitter.finish() }
                splitter.append(ArraySlice(chunk[0..<n]))
            }
        }
    }

    /// Sends one message and QEMU's line end ("\r\n"). Any thread; messages never interleave.
    public func send(_ message: JSONValue) throws(TransportError) {
        let bytes = Array((message.description + "\r\n").utf8)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count, alignment: 1)
        defer { buffer.deallocate() }
        buffer.copyBytes(from: bytes)
        try writing.withLock { (_: inout ()) throws(TransportError) in try channel.send(UnsafeRawBufferPointer(buffer)) }
    }

    /// Finds where each top-level value ends. Kept apart from the channel so that it can be fed
    /// any bytes (a test, a fuzzer).
    struct Splitter: Sendable {
        let limit: Int
        private var pending: [UInt8] = []
        private var scanned = 0
        private var depth = 0
        private var inString = false
        private var escaped = false
        private var start: Int?          // where the value being scanned began
        private var oversized = false    // the value being scanned is dropped when it ends
        private var garbageStart: Int?   // bytes outside any value, reported at the next space

        init(limit: Int) { self.limit = limit }

        mutating func append(_ bytes: ArraySlice<UInt8>) { pending.append(contentsOf: bytes) }

        /// The end of the stream: whatever is left unfinished is malformed.
        mutating func finish() -> Incoming? {
            if start != nil || garbageStart != nil {
                reset()
                return .malformed("the stream ended inside a message")
            }
            return nil
        }

        private mutating func reset() {
            pending.removeAll(keepingCapacity: true)
            scanned = 0; depth = 0; inString = false; escaped = false
            start = nil; oversized = false; garbageStart = nil
        }

        /// Drops the bytes before `index` (already consumed).
        private mutating func consume(upTo index: Int) {
            pending.removeFirst(index)
            scanned -= index
            if let s = start { start = s - index }
            if let g = garbageStart { garbageStart = g - index }
        }

        mutating func next() -> Incoming? {
            while scanned < pending.count {
                let b = pending[scanned]
                scanned += 1
                if start != nil {
                    if let item = scanInsideValue(b) { return item }
                    continue
                }
                switch b {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    if let g = garbageStart {
                        // Garbage ends where a message begins: report it, keep the message.
                        scanned -= 1
                        consume(upTo: scanned)
                        _ = g
                        garbageStart = nil
                        return .malformed("expected a JSON object, got text outside any message")
                    }
                    start = scanned - 1
                    depth = 1
                case 0x20, 0x0A, 0x0D, 0x09:
                    if garbageStart != nil {
                        consume(upTo: scanned)
                        garbageStart = nil
                        return .malformed("expected a JSON object, got text outside any message")
                    }
                    consume(upTo: scanned)
                default:
                    if garbageStart == nil { garbageStart = scanned - 1 }
                    // A long run of garbage is reported (and dropped) in pieces, never hoarded.
                    if scanned - garbageStart! > limit {
                        consume(upTo: scanned)
                        garbageStart = nil
                        return .malformed("expected a JSON object, got more than \(limit) bytes of text outside any message")
                    }
                }
            }
            // Nothing complete yet. An oversized value keeps only its scanning state.
            if let s = start, scanned - s > limit {
                oversized = true
                consume(upTo: scanned)
                start = 0
            }
            return nil
        }

        private mutating func scanInsideValue(_ b: UInt8) -> Incoming? {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                return nil
            }
            switch b {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return endValue() }
            default: break
            }
            return nil
        }

        private mutating func endValue() -> Incoming {
            let s = start!
            let text = Array(pending[s..<scanned])
            let wasOversized = oversized || text.count > limit
            consume(upTo: scanned)
            start = nil
            oversized = false
            if wasOversized { return .malformed("message longer than \(limit) bytes") }
            do { return .message(try JSONParser.parse(text)) } catch { return .malformed("JSON parse error, \(error)") }
        }
    }
}

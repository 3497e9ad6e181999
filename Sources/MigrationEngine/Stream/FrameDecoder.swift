import Traces

/// Turns a byte stream back into messages, incrementally: `feed` whatever arrived from the
/// socket (or `receive` into the decoder's own buffer), then call `next()` until it returns nil (a partial frame waits for more bytes). At
/// the end of the input call `finish()`: it is the only place that reports a truncated stream.
///
/// Every frame is checked whole — magic, length limit, CRC32C, type, flags, payload shape —
/// before a message comes out. The first error ends the stream: it names what failed and the
/// stream byte offset, and every later call throws it again.
public struct FrameDecoder: Sendable {
    /// Received bytes live in `buffer[head..<tail]`; the rest of `buffer` is room to receive into.
    private var buffer: [UInt8] = []
    /// Index in `buffer` of the first byte not yet decoded.
    private var head = 0
    /// Index in `buffer` one past the last byte received.
    private var tail = 0
    /// Stream offset of `buffer[0]`.
    private var base = 0
    private var failure: StreamError?
    public let maxPayload: Int
    /// The page size `pages` runs are checked against: from `init` or the `hello` decoded.
    public private(set) var pageSize: Int?
    /// The protocol version of the `hello` or `helloAck` decoded; until then every type of the
    /// current version is accepted.
    public private(set) var version: UInt16?

    public init(pageSize: UInt32? = nil, maxPayload: Int = StreamFrame.maxPayload) {
        self.pageSize = pageSize.map(Int.init)
        self.maxPayload = maxPayload
    }

    /// Stream bytes decoded into messages so far.
    public var offset: Int { base + head }
    /// Bytes received but not yet decoded (a partial frame).
    public var pending: Int { tail - head }

    /// Makes room for `n` more bytes after `tail`. Decoded bytes are dropped once they are at
    /// least as many as the pending ones, so that the buffer stays within a few frames and each
    /// byte is moved at most once on average.
    private mutating func makeRoom(_ n: Int) {
        if head > 0, head >= tail - head {
            let (from, count) = (head, tail - head)
            buffer.withUnsafeMutableBytes { b in
                if count > 0 { b.baseAddress!.copyMemory(from: b.baseAddress! + from, byteCount: count) }
            }
            base += head
            tail -= head
            head = 0
        }
        let free = buffer.count - tail
        if free < n { buffer.append(contentsOf: repeatElement(0, count: max(n - free, buffer.count))) }
    }

    /// Makes room for a receive of `n` bytes now (the buffer's memory is touched), so that the
    /// first `receive(atMost: n)` does not pay for it.
    public mutating func reserve(_ n: Int) { makeRoom(n) }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer) {
        guard !chunk.isEmpty else { return }
        makeRoom(chunk.count)
        let at = tail
        buffer.withUnsafeMutableBytes { b in (b.baseAddress! + at).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count) }
        tail += chunk.count
    }

    /// Lets a transport read straight into the decoder's buffer, without the copy `feed`
    /// makes: `read` gets `atMost` writable bytes and returns how many it filled (0 to atMost).
    /// Returns that count.
    @discardableResult
    public mutating func receive(atMost: Int, _ read: (UnsafeMutableRawBufferPointer) throws -> Int) rethrows -> Int {
        makeRoom(atMost)
        let at = tail
        let got = try buffer.withUnsafeMutableBytes { b in try read(UnsafeMutableRawBufferPointer(rebasing: b[at..<at + atMost])) }
        precondition((0...atMost).contains(got), "receive: the reader says it filled \(got) of \(atMost) bytes")
        tail += got
        return got
    }

    /// Bytes held in the buffer, decoded or not (tests check that it stays bounded).
    var storedBytes: Int { buffer.count }

    public mutating func feed(_ chunk: some Collection<UInt8>) {
        if let done: Void = chunk.withContiguousStorageIfAvailable({ feed(UnsafeRawBufferPointer($0)) }) { return done }
        feed(Array(chunk))
    }

    /// The next whole message, nil when the buffered bytes end inside a frame.
    public mutating func next() throws(StreamError) -> StreamMessage? {
        try next(copyPages: true) { (_, _, _, _) throws(StreamError) in }
    }

    /// The page data of a `pages` run, valid only during the call of `next(pagesInPlace:)`.
    public typealias PagesInPlace = (_ start: UInt64, _ count: UInt32, _ zero: Bool, _ data: UnsafeRawBufferPointer) throws(StreamError) -> Void

    /// Like `next()`, except that the page data of a `pages` frame is not copied into the
    /// message: once the whole frame has passed every check, `pages` is called with a view of
    /// it in the decoder's buffer (to be copied straight into guest memory), and the message
    /// returned has empty `bytes`. Other messages come out as from `next()`.
    ///
    /// The frame checks know nothing of the state: `pages` must first ask the state machine
    /// (`StreamReceiverState.accept(.pages(start:count:zero:bytes: []))`, which checks the run
    /// against the state and the guest's size) and write only if that passes. An error it
    /// throws ends the stream like any other.
    public mutating func next(pagesInPlace pages: PagesInPlace) throws(StreamError) -> StreamMessage? {
        try next(copyPages: false, inPlace: pages)
    }

    private mutating func next(copyPages: Bool, inPlace: PagesInPlace) throws(StreamError) -> StreamMessage? {
        if let failure { throw failure }
        do {
            return try decodeFrame(copyPages: copyPages, inPlace: inPlace)
        } catch {
            failure = error
            throw error
        }
    }

    /// Call at the end of the input: throws `truncated` if it ended inside a frame.
    public mutating func finish() throws(StreamError) {
        if let failure { throw failure }
        let have = pending
        guard have > 0 else { return }
        let error: StreamError
        if have < StreamFrame.headerSize {
            error = StreamError(.truncated, at: offset, "the stream ends \(have) bytes into a \(StreamFrame.headerSize)-byte frame header")
        } else {
            let length = buffer.withUnsafeBytes { Int($0.u32(head + 8)) }
            error = StreamError(.truncated, at: offset, "the stream ends \(have - StreamFrame.headerSize) bytes into a payload of \(length) bytes")
        }
        failure = error
        throw error
    }

    private mutating func decodeFrame(copyPages: Bool, inPlace: PagesInPlace) throws(StreamError) -> StreamMessage? {
        let at = offset
        let (head, tail, maxPayload, version, pageSize) = (head, tail, maxPayload, version, pageSize)
        let outcome = buffer.withUnsafeBytes { all in Result { () throws(StreamError) -> (StreamMessage, Int)? in
            let p = UnsafeRawBufferPointer(rebasing: all[head..<tail])
            // The magic is checked on as many of its bytes as have arrived.
            for i in 0..<min(4, p.count) where p[i] != UInt8(truncatingIfNeeded: StreamFrame.magic >> (8 * i)) {
                throw StreamError(.badMagic, at: at, "a frame must start with \"MPSF\"; byte \(i) is 0x\(String(p[i], radix: 16))")
            }
            guard p.count >= StreamFrame.headerSize else { return nil }
            let length = Int(p.u32(8))
            guard length <= maxPayload else {
                throw StreamError(.lengthOverLimit, at: at + 8, "payload length \(length) is over the limit of \(maxPayload)")
            }
            guard p.count >= StreamFrame.headerSize + length else { return nil }
            let payload = UnsafeRawBufferPointer(rebasing: p[StreamFrame.headerSize..<StreamFrame.headerSize + length])
            let crc = StreamFrame.checksum(header: p.baseAddress!, payload: payload.baseAddress, length: length)
            guard crc == p.u32(12) else {
                throw StreamError(.crcMismatch, at: at, "frame CRC32C is 0x\(String(p.u32(12), radix: 16)), its bytes give 0x\(String(crc, radix: 16))")
            }
            guard let type = StreamMessageType(rawValue: p[4]) else {
                throw StreamError(.unknownType, at: at + 4, "frame type \(p[4]) is not a message type")
            }
            try StreamVersion.check(type, in: version ?? StreamVersion.current, at: at + 4)
            let flags = p[5]
            guard flags & ~(type == .pages ? StreamFrame.zeroFlag : 0) == 0 else {
                throw StreamError(.badFlags, at: at + 5, "\(type) frame has undefined flag bits 0x\(String(flags, radix: 16))")
            }
            guard p.u16(6) == 0 else {
                throw StreamError(.badFlags, at: at + 6, "\(type) frame has a nonzero reserved field")
            }
            let reader = PayloadReader(bytes: payload, offset: at + StreamFrame.headerSize, type: type)
            let message = try reader.message(zero: flags & StreamFrame.zeroFlag != 0, pageSize: pageSize, copyPages: copyPages)
            if !copyPages, case let .pages(start, count, zero, _) = message {
                try inPlace(start, count, zero, UnsafeRawBufferPointer(rebasing: payload[StreamFrame.pagesPrefix...]))
            }
            return (message, StreamFrame.headerSize + length)
        } }
        guard let (message, size) = try outcome.get() else { return nil }
        self.head += size
        switch message {
        case let .hello(version, pageSize, _, _):
            self.version = version
            self.pageSize = Int(pageSize)
        case let .helloAck(version):
            self.version = version
        default:
            break
        }
        return message
    }
}

extension UnsafeRawBufferPointer {
    func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
    func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

    /// `count` little-endian u64s from `at`: on a little-endian host one copy.
    func u64s(from at: Int, count: Int) -> [UInt64] {
        #if _endian(little)
        [UInt64](unsafeUninitializedCapacity: count) { out, initialized in
            UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: self[at..<at + 8 * count]))
            initialized = count
        }
        #else
        (0..<count).map { u64(at + 8 * $0) }
        #endif
    }
}

/// Reads one payload whose CRC has matched; every shape error names the stream offset.
private struct PayloadReader {
    let bytes: UnsafeRawBufferPointer
    /// Stream offset of `bytes[0]`.
    let offset: Int
    let type: StreamMessageType

    func malformed(_ at: Int, _ detail: String) -> StreamError {
        StreamError(.malformedPayload, at: offset + at, "\(type): \(detail)")
    }

    func size(_ expected: Int) throws(StreamError) {
        guard bytes.count == expected else { throw malformed(0, "payload is \(bytes.count) bytes, must be \(expected)") }
    }

    func text(from at: Int) throws(StreamError) -> String {
        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: bytes[at...]), as: UTF8.self) else {
            throw malformed(at, "text is not valid UTF-8")
        }
        return s
    }

    func ranges() throws(StreamError) -> [PageRange] {
        guard bytes.count >= StreamFrame.rangesPrefix else { throw malformed(0, "payload is \(bytes.count) bytes, shorter than its range count") }
        let n = Int(bytes.u32(0))
        try size(StreamFrame.rangesPrefix + n * StreamFrame.rangeSize)
        guard bytes.u32(4) == 0 else { throw malformed(4, "reserved field is not zero") }
        var out: [PageRange] = []
        out.reserveCapacity(n)
        for i in 0..<n {
            let at = StreamFrame.rangesPrefix + i * StreamFrame.rangeSize
            let range = PageRange(start: bytes.u64(at), count: bytes.u64(at + 8))
            guard range.count > 0, range.start <= UInt64.max - range.count else {
                throw malformed(at, "range \(i) (start \(range.start), count \(range.count)) is empty or runs past the last page number")
            }
            out.append(range)
        }
        return out
    }

    func message(zero: Bool, pageSize: Int?, copyPages: Bool) throws(StreamError) -> StreamMessage {
        switch type {
        case .hello:
            try size(24)
            let version = bytes.u16(0)
            try StreamVersion.check(version, at: offset)
            guard bytes.u16(2) == 0 else { throw malformed(2, "reserved field is not zero") }
            let pageSize = bytes.u32(4)
            guard pageSize >= 512, pageSize <= 1 << 30, pageSize & (pageSize - 1) == 0 else {
                throw malformed(4, "page size \(pageSize) is not a power of two from 512 bytes to 1 GiB")
            }
            return .hello(version: version, pageSize: pageSize, pageCount: bytes.u64(8), features: StreamFeatures(rawValue: bytes.u64(16)))
        case .helloAck:
            try size(4)
            try StreamVersion.check(bytes.u16(0), at: offset)
            guard bytes.u16(2) == 0 else { throw malformed(2, "reserved field is not zero") }
            return .helloAck(version: bytes.u16(0))
        case .pages:
            guard bytes.count >= StreamFrame.pagesPrefix else { throw malformed(0, "payload is \(bytes.count) bytes, shorter than a run's start and count") }
            guard let pageSize else { throw malformed(0, "pages before hello: the page size is not known") }
            let start = bytes.u64(0), count = bytes.u32(8)
            guard count > 0, start <= UInt64.max - UInt64(count) else { throw malformed(0, "run (start \(start), count \(count)) is empty or runs past the last page number") }
            guard bytes.u32(12) == 0 else { throw malformed(12, "reserved field is not zero") }
            let data = bytes.count - StreamFrame.pagesPrefix
            let expected = zero ? 0 : Int(count) * pageSize
            guard data == expected else {
                throw malformed(0, "a \(zero ? "zero " : "")run of \(count) pages of \(pageSize) bytes must carry \(expected) bytes, not \(data)")
            }
            let copied = copyPages ? Array(UnsafeRawBufferPointer(rebasing: bytes[StreamFrame.pagesPrefix...])) : []
            return .pages(start: start, count: count, zero: zero, bytes: copied)
        case .passStart:
            try size(4)
            return .passStart(pass: bytes.u32(0))
        case .passEnd:
            try size(16)
            guard bytes.u32(4) == 0 else { throw malformed(4, "reserved field is not zero") }
            return .passEnd(pass: bytes.u32(0), pagesSent: bytes.u64(8))
        case .completeAck:
            guard bytes.count >= 1, bytes[0] <= 1 else { throw malformed(0, "verdict byte must be 0 or 1") }
            return .completeAck(verified: bytes[0] == 1, detail: try text(from: 1))
        case .postcopyStart: return .postcopyStart(discard: try ranges())
        case .postcopyListen: return .postcopyListen(discard: try ranges())
        case .pageRequest: return .pageRequest(try ranges())
        case .receivedBitmap: return .receivedBitmap(try ranges())
        case .ping, .pong:
            try size(8)
            return type == .ping ? .ping(nonce: bytes.u64(0)) : .pong(nonce: bytes.u64(0))
        case .abort: return .abort(reason: try text(from: 0))
        case .deviceState:
            guard bytes.count >= 8 else { throw malformed(0, "payload is \(bytes.count) bytes, shorter than its count") }
            let n = Int(bytes.u32(0))
            try size(8 + 8 * n)
            guard bytes.u32(4) == 0 else { throw malformed(4, "reserved field is not zero") }
            return .deviceState(progress: (0..<n).map { bytes.u64(8 + 8 * $0) })
        case .stamps:
            guard bytes.count >= 16 else { throw malformed(0, "payload is \(bytes.count) bytes, shorter than its start and count") }
            let start = bytes.u64(0), n = Int(bytes.u32(8))
            try size(16 + 8 * n)
            guard n > 0, start <= UInt64.max - UInt64(n) else { throw malformed(0, "stamps (start \(start), count \(n)) are empty or run past the last page number") }
            guard bytes.u32(12) == 0 else { throw malformed(12, "reserved field is not zero") }
            return .stamps(start: start, sequences: bytes.u64s(from: 16, count: n))
        case .stopAndCopy, .complete, .guestRunning, .postcopyStartAck, .postcopyListenAck, .resume, .resumeAck:
            try size(0)
            switch type {
            case .stopAndCopy: return .stopAndCopy
            case .complete: return .complete
            case .guestRunning: return .guestRunning
            case .postcopyStartAck: return .postcopyStartAck
            case .postcopyListenAck: return .postcopyListenAck
            case .resume: return .resume
            default: return .resumeAck
            }
        }
    }
}

import CUring
import Traces

/// The fixed frame header (docs/stream-format.md): every integer little-endian.
///
///     0  magic    u32  "MPSF" (0x4653504D)
///     4  type     u8   StreamMessageType
///     5  flags    u8   bit 0: zero run (pages only); other bits 0
///     6  reserved u16  0
///     8  length   u32  payload bytes that follow the header
///    12  crc      u32  CRC32C of header bytes 0..<12, then of the payload
public enum StreamFrame {
    public static let magic: UInt32 = 0x4653_504D
    public static let headerSize = 16
    /// The largest payload either side sends or accepts (a run of 8,191 4 KiB pages fits).
    public static let maxPayload = 32 << 20
    /// Flag bit 0 of a `pages` frame: the run is all zeros and carries no page bytes.
    static let zeroFlag: UInt8 = 1
    /// Bytes of a `pages` payload before the page data (start u64, count u32, reserved u32).
    static let pagesPrefix = 16
    /// Bytes of a range-list payload before the ranges (count u32, reserved u32), and per range.
    static let rangesPrefix = 8, rangeSize = 16

    /// CRC32C of the header's first 12 bytes at `header`, continued over `payload` bytes.
    static func checksum(header: UnsafeRawPointer, payload: UnsafeRawPointer?, length: Int) -> UInt32 {
        mp_crc32c(mp_crc32c(0, header, 12), payload, length)
    }
}

/// Turns messages into frames, appending to a buffer meant to be reused: write the frames of
/// one batch, send them (`withPieces`), `removeAll()`, repeat. Knows the page size from the `hello` it encodes (or from `init`), so
/// that a `pages` run of the wrong size is refused here too.
public struct FrameEncoder: @unchecked Sendable {
    // @unchecked: `inPlace` points into guest memory, which outlives the batch that refers to it.
    private var buffer: FrameBytes
    /// A copy of the frames in the buffer, without the page data left in place.
    public var bytes: [UInt8] { buffer.array }
    /// Page data of frames that the buffer does not hold (`appendRange(_:of:inPlace: true)`): each
    /// goes into the stream at offset `at` of `bytes`.
    private var inPlace: [(at: Int, data: UnsafeRawBufferPointer)] = []
    private var inPlaceBytes = 0
    /// Bytes of stream encoded since the last `removeAll`: the buffer's and the page data in place.
    public var count: Int { buffer.count + inPlaceBytes }
    public private(set) var pageSize: Int?
    /// The largest payload this encoder writes (the peer's decoder must accept it).
    public let maxPayload: Int

    public init(pageSize: UInt32? = nil, maxPayload: Int = StreamFrame.maxPayload, reservingCapacity capacity: Int = 0) {
        self.pageSize = pageSize.map(Int.init)
        self.maxPayload = maxPayload
        buffer = FrameBytes(reservingCapacity: capacity)
    }

    /// Writes the buffer's first `count` bytes and empties it again: its memory is then
    /// touched (faulted in) before the first batch that needs it.
    public mutating func touch(_ count: Int) {
        buffer.append(contentsOf: repeatElement(0, count: count))
        removeAll()
    }

    /// Empties the buffer, keeping its capacity, and forgets the page data in place.
    public mutating func removeAll() {
        buffer.removeAll()
        inPlace.removeAll(keepingCapacity: true)
        inPlaceBytes = 0
    }

    /// The stream encoded so far as pieces to send in order (one gathered write): stretches of
    /// the buffer and, between them, the page data left in place. One piece when there is none.
    public func withPieces<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        try self.buffer.withUnsafeBytes { buffer in
            var pieces: [UnsafeRawBufferPointer] = []
            pieces.reserveCapacity(2 * inPlace.count + 1)
            var from = 0
            for (at, data) in inPlace {
                pieces.append(UnsafeRawBufferPointer(rebasing: buffer[from..<at]))
                pieces.append(data)
                from = at
            }
            pieces.append(UnsafeRawBufferPointer(rebasing: buffer[from...]))
            return try body(pieces)
        }
    }

    /// Appends one frame carrying `message`. Throws (appending nothing) when the message cannot
    /// be sent as is: a payload over the limit or a page run whose bytes do not fit its count.
    public mutating func append(_ message: StreamMessage) throws(StreamError) {
        switch message {
        case let .hello(version, pageSize, pageCount, features):
            try frame(.hello) { out in
                out.put(version); out.put(UInt16(0)); out.put(pageSize); out.put(pageCount); out.put(features.rawValue)
            }
            self.pageSize = Int(pageSize)
        case let .helloAck(version):
            try frame(.helloAck) { out in out.put(version); out.put(UInt16(0)) }
        case let .pages(start, count, zero, data):
            try checkRun(count: count, zero: zero, byteCount: data.count)
            try frame(.pages, flags: zero ? StreamFrame.zeroFlag : 0) { out in
                out.put(start); out.put(count); out.put(UInt32(0)); out.append(contentsOf: data)
            }
        case let .passStart(pass):
            try frame(.passStart) { out in out.put(pass) }
        case let .passEnd(pass, pagesSent):
            try frame(.passEnd) { out in out.put(pass); out.put(UInt32(0)); out.put(pagesSent) }
        case let .completeAck(verified, detail):
            try frame(.completeAck) { out in out.append(verified ? 1 : 0); out.append(contentsOf: detail.utf8) }
        case let .postcopyStart(ranges), let .postcopyListen(ranges), let .pageRequest(ranges), let .receivedBitmap(ranges):
            try frame(message.type) { out in
                out.put(UInt32(truncatingIfNeeded: ranges.count)); out.put(UInt32(0))
                for r in ranges { out.put(r.start); out.put(r.count) }
            }
        case let .ping(nonce), let .pong(nonce):
            try frame(message.type) { out in out.put(nonce) }
        case let .deviceState(progress):
            try frame(.deviceState) { out in
                out.put(UInt32(truncatingIfNeeded: progress.count)); out.put(UInt32(0))
                for p in progress { out.put(p) }
            }
        case let .stamps(start, sequences):
            try frame(.stamps) { out in
                out.put(start); out.put(UInt32(truncatingIfNeeded: sequences.count)); out.put(UInt32(0))
                out.putAll(sequences)
            }
        case let .abort(reason):
            try frame(.abort) { out in out.append(contentsOf: reason.utf8) }
        case .stopAndCopy, .complete, .guestRunning, .postcopyStartAck, .postcopyListenAck, .resume, .resumeAck:
            try frame(message.type) { _ in }
        }
    }

    /// Appends a `pages` frame straight from guest memory: `memory` holds `count` pages from
    /// page `start` (count × pageSize bytes), copied once into the buffer, its CRC computed in
    /// the same pass.
    public mutating func appendPages(start: UInt64, count: UInt32, from memory: UnsafeRawBufferPointer) throws(StreamError) {
        try checkRun(count: count, zero: false, byteCount: memory.count)
        let frameStart = beginFrame(.pages, flags: 0)
        buffer.put(start); buffer.put(count); buffer.put(UInt32(0))
        try endFrame(frameStart, pageData: memory)
    }

    /// Pages per data frame that `appendRange` writes. Small frames are cheap to make and to
    /// take apart: each page is checked for zeros and copied while it is in the cache, the
    /// frame's CRC is computed while the frame is, and the destination checks and copies a
    /// frame while the bytes it just received are still in its cache. (The header costs 32
    /// bytes per 64 KiB.)
    public static let dataRunPages: UInt64 = 16

    /// Appends the frames that carry `range` of a guest whose memory is `guest` (page p at
    /// byte p × pageSize): consecutive all-zero pages as zero runs, the others as data runs of
    /// at most `dataRunPages`, no run longer than a payload allows. Returns how many pages went
    /// as zero runs.
    ///
    /// The page data is copied into the buffer, its CRC computed as it is copied. `inPlace`: it
    /// is not copied; its CRC is computed over guest memory and `withPieces` sends it from there. Only for a guest that does not run until the
    /// batch has been sent (stop-and-copy): the CRC must cover exactly the bytes that leave.
    @discardableResult
    public mutating func appendRange(_ range: PageRange, of guest: UnsafeRawBufferPointer, inPlace: Bool = false) throws(StreamError) -> UInt64 {
        guard let pageSize else { throw StreamError(.malformedPayload, "pages before hello: the page size is not known") }
        guard range.start <= UInt64(guest.count / pageSize), range.count <= UInt64(guest.count / pageSize) - range.start else {
            throw StreamError(.malformedPayload, "range \(range) is outside a guest of \(guest.count / pageSize) pages")
        }
        let longest = UInt64((maxPayload - StreamFrame.pagesPrefix) / pageSize)
        let longestData = min(longest, Self.dataRunPages)
        var page = range.start, zeroPages: UInt64 = 0
        while page < range.end {
            if Self.isZero(guest, page: page, pageSize: pageSize) {
                var end = page + 1
                while end < range.end, end - page < longest, Self.isZero(guest, page: end, pageSize: pageSize) { end += 1 }
                try append(.pages(start: page, count: UInt32(end - page), zero: true, bytes: []))
                zeroPages += end - page
                page = end
                continue
            }
            var end = page
            repeat {
                end += 1
            } while end < range.end && end - page < longestData && !Self.isZero(guest, page: end, pageSize: pageSize)
            let frameStart = beginFrame(.pages, flags: 0)
            buffer.put(page); buffer.put(UInt32(end - page)); buffer.put(UInt32(0))
            try endFrame(frameStart, pageData: UnsafeRawBufferPointer(rebasing: guest[Int(page) * pageSize..<Int(end) * pageSize]), inPlace: inPlace)
            page = end
        }
        return zeroPages
    }

    /// Whether a page is all zeros, stopping at the first cache line that is not: a page with
    /// data (its stamp is in its first line) costs one line here, not a read of the whole page
    /// ahead of the copy and the CRC, which read it anyway.
    private static func isZero(_ guest: UnsafeRawBufferPointer, page: UInt64, pageSize: Int) -> Bool {
        let base = guest.baseAddress! + Int(page) * pageSize
        for line in stride(from: 0, to: pageSize, by: 64) {
            var acc: UInt64 = 0
            for i in stride(from: line, to: line + 64, by: 8) { acc |= base.loadUnaligned(fromByteOffset: i, as: UInt64.self) }
            if acc != 0 { return false }
        }
        return true
    }

    private func checkRun(count: UInt32, zero: Bool, byteCount: Int) throws(StreamError) {
        guard let pageSize else {
            throw StreamError(.malformedPayload, "pages before hello: the page size is not known")
        }
        let expected = zero ? 0 : Int(count) * pageSize
        guard count > 0, byteCount == expected else {
            throw StreamError(.malformedPayload, "a \(zero ? "zero " : "")run of \(count) pages of \(pageSize) bytes must carry \(expected) bytes, not \(byteCount)")
        }
    }

    /// Appends a frame of `type` whose payload `body` writes; fills in length and CRC.
    mutating func frame(_ type: StreamMessageType, flags: UInt8 = 0, body: (inout FrameBytes) -> Void) throws(StreamError) {
        try rawFrame(type: type.rawValue, flags: flags, body: body)
    }

    /// A frame with any type byte (tests use it to forge frames the encoder would refuse).
    mutating func rawFrame(type: UInt8, flags: UInt8, body: (inout FrameBytes) -> Void) throws(StreamError) {
        let start = beginFrame(rawType: type, flags: flags)
        body(&buffer)
        try endFrame(start)
    }

    /// Writes a header whose length and CRC `endFrame` fills in once the payload follows it;
    /// returns where the frame starts.
    private mutating func beginFrame(_ type: StreamMessageType, flags: UInt8) -> Int { beginFrame(rawType: type.rawValue, flags: flags) }

    private mutating func beginFrame(rawType type: UInt8, flags: UInt8) -> Int {
        let start = buffer.count
        buffer.put(StreamFrame.magic); buffer.append(type); buffer.append(flags); buffer.put(UInt16(0))
        buffer.put(UInt32(0)); buffer.put(UInt32(0))
        return start
    }

    /// Fills in the length and CRC of the frame that starts at `start` and runs to the end of
    /// the buffer, then follows it with `pageData`: copied into the buffer as its CRC is
    /// computed, or, `inPlace`, left where it is for `withPieces` to send from there. A payload
    /// over the limit is taken out again.
    private mutating func endFrame(_ start: Int, pageData: UnsafeRawBufferPointer? = nil, inPlace: Bool = false) throws(StreamError) {
        let inBuffer = buffer.count - start - StreamFrame.headerSize
        let length = inBuffer + (pageData?.count ?? 0)
        guard length <= maxPayload else {
            let type = buffer[start + 4]
            buffer.truncate(to: start)
            throw StreamError(.lengthOverLimit, "a \(StreamMessageType(rawValue: type).map { "\($0)" } ?? "type-\(type)") payload of \(length) bytes is over the limit of \(maxPayload)")
        }
        var crc = buffer.withUnsafeMutableBytes { p in
            let header = p.baseAddress! + start
            header.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 8, as: UInt32.self)
            return StreamFrame.checksum(header: header, payload: header + StreamFrame.headerSize, length: inBuffer)
        }
        if let pageData, inPlace {
            crc = mp_crc32c(crc, pageData.baseAddress, pageData.count)
            self.inPlace.append((buffer.count, pageData))
            inPlaceBytes += pageData.count
        } else if let pageData {
            crc = buffer.append(copying: pageData, crc: crc)
        }
        buffer.withUnsafeMutableBytes { p in p.storeBytes(of: crc.littleEndian, toByteOffset: start + 12, as: UInt32.self) }
    }
}

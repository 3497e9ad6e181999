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

/// Turns messages into frames, appending to `bytes`, a buffer meant to be reused: write the
/// frames of one batch, send `bytes` (with `withPieces` when page data was left in place),
/// `removeAll()`, repeat. Knows the page size from the `hello` it encodes (or from `init`), so
/// that a `pages` run of the wrong size is refused here too.
public struct FrameEncoder: @unchecked Sendable {
    // @unchecked: `inPlace` points into guest memory, which outlives the batch that refers to it.
    public private(set) var bytes: [UInt8] = []
    /// Page data of frames that `bytes` does not hold (`appendRange(_:of:inPlace: true)`): each
    /// goes into the stream at offset `at` of `bytes`.
    private var inPlace: [(at: Int, data: UnsafeRawBufferPointer)] = []
    private var inPlaceBytes = 0
    /// Bytes of stream encoded since the last `removeAll`: `bytes` and the page data in place.
    public var count: Int { bytes.count + inPlaceBytes }
    public private(set) var pageSize: Int?
    /// The largest payload this encoder writes (the peer's decoder must accept it).
    public let maxPayload: Int

    public init(pageSize: UInt32? = nil, maxPayload: Int = StreamFrame.maxPayload, reservingCapacity capacity: Int = 0) {
        self.pageSize = pageSize.map(Int.init)
        self.maxPayload = maxPayload
        bytes.reserveCapacity(capacity)
    }

    /// Writes the buffer's first `count` bytes and empties it again: its memory is then
    /// touched (faulted in) before the first batch that needs it.
    public mutating func touch(_ count: Int) {
        bytes.append(contentsOf: repeatElement(0, count: count))
        removeAll()
    }

    /// Empties the buffer, keeping its capacity, and forgets the page data in place.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        inPlace.removeAll(keepingCapacity: true)
        inPlaceBytes = 0
    }

    /// The stream encoded so far as pieces to send in order (one gathered write): stretches of
    /// `bytes` and, between them, the page data left in place.
    public func withPieces<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { buffer in
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
        case let .postcopyStart(ranges), let .pageRequest(ranges), let .receivedBitmap(ranges):
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
        case .stopAndCopy, .complete, .guestRunning, .postcopyStartAck, .resume, .resumeAck:
            try frame(message.type) { _ in }
        }
    }

    /// Appends a `pages` frame straight from guest memory: `memory` holds `count` pages from
    /// page `start` (count × pageSize bytes), copied once into the buffer.
    public mutating func appendPages(start: UInt64, count: UInt32, from memory: UnsafeRawBufferPointer) throws(StreamError) {
        try checkRun(count: count, zero: false, byteCount: memory.count)
        try frame(.pages) { out in
            out.put(start); out.put(count); out.put(UInt32(0)); out.append(contentsOf: memory)
        }
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
    /// `inPlace`: the page data is not copied into `bytes`; its CRC is computed over guest
    /// memory and `withPieces` sends it from there. Only for a guest that does not run until the
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
            let frameStart = beginFrame(.pages, flags: 0)
            bytes.put(page); bytes.put(UInt32(0)); bytes.put(UInt32(0))  // count filled in below
            var end = page
            repeat {
                end += 1
            } while end < range.end && end - page < longestData && !Self.isZero(guest, page: end, pageSize: pageSize)
            let data = UnsafeRawBufferPointer(rebasing: guest[Int(page) * pageSize..<Int(end) * pageSize])
            if !inPlace { bytes.append(contentsOf: data) }
            bytes.withUnsafeMutableBytes { p in
                p.storeBytes(of: UInt32(end - page).littleEndian, toByteOffset: frameStart + StreamFrame.headerSize + 8, as: UInt32.self)
            }
            try endFrame(frameStart, inPlace: inPlace ? data : nil)
            if inPlace {
                self.inPlace.append((bytes.count, data))
                inPlaceBytes += data.count
            }
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
    mutating func frame(_ type: StreamMessageType, flags: UInt8 = 0, body: (inout [UInt8]) -> Void) throws(StreamError) {
        try rawFrame(type: type.rawValue, flags: flags, body: body)
    }

    /// A frame with any type byte (tests use it to forge frames the encoder would refuse).
    mutating func rawFrame(type: UInt8, flags: UInt8, body: (inout [UInt8]) -> Void) throws(StreamError) {
        let start = beginFrame(rawType: type, flags: flags)
        body(&bytes)
        try endFrame(start)
    }

    /// Writes a header whose length and CRC `endFrame` fills in once the payload follows it;
    /// returns where the frame starts.
    private mutating func beginFrame(_ type: StreamMessageType, flags: UInt8) -> Int { beginFrame(rawType: type.rawValue, flags: flags) }

    private mutating func beginFrame(rawType type: UInt8, flags: UInt8) -> Int {
        let start = bytes.count
        bytes.put(StreamFrame.magic); bytes.append(type); bytes.append(flags); bytes.put(UInt16(0))
        bytes.put(UInt32(0)); bytes.put(UInt32(0))
        return start
    }

    /// Fills in the length and CRC of the frame that starts at `start` and runs to the end of
    /// the buffer, followed by `inPlace` when its data is sent from where it lies; a payload
    /// over the limit is taken out again.
    private mutating func endFrame(_ start: Int, inPlace: UnsafeRawBufferPointer? = nil) throws(StreamError) {
        let inBuffer = bytes.count - start - StreamFrame.headerSize
        let length = inBuffer + (inPlace?.count ?? 0)
        guard length <= maxPayload else {
            let type = bytes[start + 4]
            bytes.removeSubrange(start...)
            throw StreamError(.lengthOverLimit, "a \(StreamMessageType(rawValue: type).map { "\($0)" } ?? "type-\(type)") payload of \(length) bytes is over the limit of \(maxPayload)")
        }
        bytes.withUnsafeMutableBytes { p in
            let header = p.baseAddress! + start
            header.storeBytes(of: UInt32(length).littleEndian, toByteOffset: 8, as: UInt32.self)
            var crc = StreamFrame.checksum(header: header, payload: header + StreamFrame.headerSize, length: inBuffer)
            if let inPlace { crc = mp_crc32c(crc, inPlace.baseAddress, inPlace.count) }
            header.storeBytes(of: crc.littleEndian, toByteOffset: 12, as: UInt32.self)
        }
    }
}

extension [UInt8] {
    /// Appends `value` little-endian.
    mutating func put<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends every value little-endian: on a little-endian host one copy (a switch's stamps
    /// are a megabyte; value by value they took milliseconds of the downtime).
    mutating func putAll(_ values: [UInt64]) {
        #if _endian(little)
        values.withUnsafeBytes { append(contentsOf: $0) }
        #else
        for v in values { put(v) }
        #endif
    }
}

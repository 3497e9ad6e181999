import Glibc

/// One interval of a trace: the pages written in it and, when the trace records them, read.
public struct TraceInterval: Equatable, Sendable {
    public var written: [PageRange]
    public var read: [PageRange]?
}

/// An open trace file, mapped read-only. Opening checks the header, the trailer, the index and
/// (unless told not to) the CRC32C of every block, so a damaged file fails here with the byte
/// offset of the damage — never later with a partial answer.
public final class TraceReader: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init; the mapping is read-only.
    public let path: String
    public let header: TraceHeader
    /// Pages that hold data at the start of the trace; nil means every page does.
    public let initialData: [PageRange]?
    /// Pages written in each interval (from the index; no decoding needed).
    public let writtenPages: [UInt64]
    /// Pages read in each interval, when the trace records reads.
    public let readPages: [UInt64]?
    public let summary: TraceSummary
    /// Provenance added when the trace was finished (a recorder's cost, say).
    public let notes: [ProvenanceEntry]
    /// Bytes in the file.
    public let fileSize: Int

    private struct Block {
        let offset: Int
        let firstInterval: Int
        let intervals: Int
        let payloadLength: Int
        var payloadOffset: Int { offset + TraceFormat.blockHeaderSize }
    }

    private let blocks: [Block]
    private let file: UnsafeRawBufferPointer?

    public var intervalCount: Int { writtenPages.count }
    public var durationSeconds: Double { Double(intervalCount) * header.intervalSeconds }
    /// Header provenance followed by the notes added at the end.
    public var provenance: [ProvenanceEntry] { header.provenance + notes }

    public init(path: String, verifyChecksums: Bool = true) throws(TraceError) {
        self.path = path
        let fd: Int32
        do {
            fd = try Sys.open(path, O_RDONLY)
        } catch {
            throw .io(error, path: path)
        }
        defer { Sys.close(fd) }
        do {
            fileSize = try Sys.fileSize(fd)
            file = try Sys.mapReadOnly(fd, size: fileSize)
        } catch {
            throw .io(error, path: path)
        }
        let bytes = file ?? UnsafeRawBufferPointer(start: nil, count: 0)
        do throws(TraceError) {
            let (header, flags, headerSize) = try TraceHeader.decode(bytes)
            self.header = header
            let (indexOffset, indexLength) = try Self.trailer(bytes, after: headerSize)
            var index = try Self.readIndex(bytes, from: indexOffset, length: indexLength, header: header)
            // Blocks must tile the file from the end of the header to the index, with nothing
            // unchecked in between: every byte of the file is covered by some check.
            var expected = headerSize
            var initial: [PageRange]? = nil
            if flags & TraceFormat.flagHasInitialSet != 0 {
                let b = try Self.blockHeader(bytes, at: expected, tag: TraceFormat.initialBlockTag, name: "initial-data block")
                if verifyChecksums { try Self.verify(bytes, b, name: "initial-data block") }
                var pos = b.payloadOffset
                let ranges = RangeBuffer()
                let n = try PageSetCoding.decode(bytes, position: &pos, end: b.payloadOffset + b.payloadLength,
                                                 pageLimit: header.pageCount, what: "initial-data block", into: ranges)
                initial = Array(ranges.view(n))
                expected = b.payloadOffset + b.payloadLength
            }
            self.initialData = initial
            var nextInterval = 0
            for (i, entry) in index.blocks.enumerated() {
                let name = "block \(i)"
                guard entry.offset == expected else {
                    throw TraceError(.malformed, at: indexOffset, "the index places \(name) at byte \(entry.offset), but the previous block ends at byte \(expected)")
                }
                let b = try Self.blockHeader(bytes, at: entry.offset, tag: TraceFormat.intervalBlockTag, name: name)
                guard b.firstInterval == entry.firstInterval, b.intervals == entry.intervals, b.firstInterval == nextInterval, b.intervals > 0 else {
                    throw TraceError(.malformed, at: entry.offset, "\(name) holds intervals \(b.firstInterval)..<\(b.firstInterval + b.intervals); the index expects \(nextInterval)..<\(nextInterval + entry.intervals)")
                }
                if verifyChecksums { try Self.verify(bytes, b, name: name) }
                index.blocks[i] = b
                nextInterval += b.intervals
                expected = b.payloadOffset + b.payloadLength
            }
            guard expected == indexOffset else {
                throw TraceError(.malformed, at: expected, "\(indexOffset - expected) bytes between the last block and the index belong to nothing")
            }
            guard nextInterval == index.writtenPages.count else {
                throw TraceError(.malformed, at: indexOffset, "the blocks hold \(nextInterval) intervals; the index counts \(index.writtenPages.count)")
            }
            blocks = index.blocks
            writtenPages = index.writtenPages
            readPages = index.readPages
            summary = index.summary
            notes = index.notes
        } catch var error {
            error.path = path
            if let file { Sys.unmap(file) }
            throw error
        }
    }

    deinit {
        if let file { Sys.unmap(file) }
    }

    /// Decodes interval `i`.
    public func interval(_ i: Int) throws(TraceError) -> TraceInterval {
        guard i >= 0, i < intervalCount else {
            throw TraceError(.invalidArgument, at: nil, "interval \(i) is outside 0..<\(intervalCount)", path: path)
        }
        var result = TraceInterval(written: [], read: nil)
        do {
            try decode(from: i, to: i + 1) { view in
                result = TraceInterval(written: Array(view.written), read: view.read.map(Array.init))
            }
        } catch let error as TraceError {
            throw error
        } catch {
            throw TraceError(.malformed, at: nil, "\(error)", path: path)  // the body above throws nothing else
        }
        return result
    }

    /// One decoded interval, valid only during the call that hands it over.
    public struct IntervalView {
        public let index: Int
        public let written: UnsafeBufferPointer<PageRange>
        public let read: UnsafeBufferPointer<PageRange>?
    }

    /// Decodes intervals `from..<to` in order and hands each to `body`; buffers are reused, so
    /// this runs without allocating per interval.
    public func forEachInterval(from: Int = 0, to: Int? = nil, _ body: (IntervalView) throws -> Void) throws {
        try decode(from: from, to: to ?? intervalCount, body)
    }

    private func decode(from: Int, to: Int, _ body: (IntervalView) throws -> Void) throws {
        guard let file, from < to else { return }
        let written = RangeBuffer(), read = RangeBuffer()
        var b = blockIndex(containing: from)
        while b < blocks.count, blocks[b].firstInterval < to {
            let block = blocks[b]
            var pos = block.payloadOffset
            let end = block.payloadOffset + block.payloadLength
            for i in block.firstInterval..<(block.firstInterval + block.intervals) {
                var writtenCount = 0, readCount = 0
                do {
                    writtenCount = try PageSetCoding.decode(file, position: &pos, end: end, pageLimit: header.pageCount,
                                                            what: "block \(b), interval \(i)", into: written)
                    if header.hasReads {
                        readCount = try PageSetCoding.decode(file, position: &pos, end: end, pageLimit: header.pageCount,
                                                             what: "block \(b), interval \(i) reads", into: read)
                    }
                } catch var error {
                    // A block that passed its CRC but does not decode was written wrong; still an error, never a guess.
                    error.path = path
                    throw error
                }
                guard i >= from, i < to else { continue }
                try body(IntervalView(index: i, written: written.view(writtenCount), read: header.hasReads ? read.view(readCount) : nil))
            }
            b += 1
        }
    }

    private func blockIndex(containing interval: Int) -> Int {
        var lo = 0, hi = blocks.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if blocks[mid].firstInterval + blocks[mid].intervals <= interval { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    // MARK: structure checks

    private static func trailer(_ file: UnsafeRawBufferPointer, after headerSize: Int) throws(TraceError) -> (Int, Int) {
        let size = file.count
        let t = size - TraceFormat.trailerSize
        guard t >= headerSize, file[(size - 8)...].elementsEqual(TraceFormat.trailerMagic) else {
            throw diagnoseMissingTrailer(file, from: headerSize)
        }
        var r = ByteReader(file, from: t, to: size, what: "trailer")
        let indexOffset = try r.u64()
        let indexLength = try r.u64()
        _ = try r.u32()
        let stored = try r.u32()
        guard stored == crc32c(UnsafeRawBufferPointer(rebasing: file[t..<(t + 20)])) else {
            throw TraceError(.checksumMismatch, at: t, "the trailer (bytes \(t)..<\(size)) fails its CRC32C check")
        }
        guard indexOffset >= UInt64(headerSize), indexLength > 0, indexOffset + indexLength == UInt64(t) else {
            throw TraceError(.malformed, at: t, "the trailer places the index at bytes \(indexOffset)..<\(indexOffset &+ indexLength), which does not end where the trailer starts (byte \(t))")
        }
        return (Int(indexOffset), Int(indexLength))
    }

    /// No trailer: walk the blocks from the header to say where the file stops making sense.
    private static func diagnoseMissingTrailer(_ file: UnsafeRawBufferPointer, from start: Int) -> TraceError {
        var at = start
        var n = 0
        while at < file.count {
            guard at + TraceFormat.blockHeaderSize <= file.count else {
                return TraceError(.truncated, at: file.count, "the file ends inside the header of the block that starts at byte \(at) (\(n) complete blocks before it); no trailer")
            }
            let tag = file[at..<(at + 4)]
            if tag.elementsEqual(TraceFormat.indexTag) {
                return TraceError(.truncated, at: at, "the index starts at byte \(at) but the 32-byte trailer that ends the file is missing or damaged (file is \(file.count) bytes)")
            }
            guard tag.elementsEqual(TraceFormat.intervalBlockTag) || tag.elementsEqual(TraceFormat.initialBlockTag) else {
                return TraceError(.malformed, at: at, "expected a block or the index at byte \(at), found neither; and the file has no trailer")
            }
            let length = Int(file.loadUnaligned(fromByteOffset: at + 16, as: UInt32.self).littleEndian)
            let end = at + TraceFormat.blockHeaderSize + length
            guard end <= file.count else {
                return TraceError(.truncated, at: file.count, "the file ends inside the block that starts at byte \(at) (it needs \(end - file.count) more bytes); no trailer")
            }
            at = end
            n += 1
        }
        return TraceError(.truncated, at: file.count, "the file ends after \(n) complete blocks with no index and no trailer")
    }

    private static func blockHeader(_ file: UnsafeRawBufferPointer, at offset: Int, tag: [UInt8], name: String) throws(TraceError) -> Block {
        guard offset + TraceFormat.blockHeaderSize <= file.count else {
            throw TraceError(.truncated, at: offset, "\(name) header runs past the end of the file")
        }
        guard file[offset..<(offset + 4)].elementsEqual(tag) else {
            throw TraceError(.malformed, at: offset, "\(name) does not start with its tag '\(String(decoding: tag, as: UTF8.self))'")
        }
        var r = ByteReader(file, from: offset + 4, to: offset + TraceFormat.blockHeaderSize, what: name)
        let first = try r.u64()
        let intervals = try r.u32()
        let length = Int(try r.u32())
        guard first <= UInt64(Int32.max), offset + TraceFormat.blockHeaderSize + length <= file.count else {
            throw TraceError(.malformed, at: offset, "\(name) header is damaged (it claims \(length) payload bytes from interval \(first))")
        }
        return Block(offset: offset, firstInterval: Int(first), intervals: Int(intervals), payloadLength: length)
    }

    private static func verify(_ file: UnsafeRawBufferPointer, _ b: Block, name: String) throws(TraceError) {
        let headerPart = UnsafeRawBufferPointer(rebasing: file[(b.offset + 4)..<(b.offset + 20)])
        let payload = UnsafeRawBufferPointer(rebasing: file[b.payloadOffset..<(b.payloadOffset + b.payloadLength)])
        let stored = file.loadUnaligned(fromByteOffset: b.offset + 20, as: UInt32.self).littleEndian
        guard stored == crc32c(payload, continuing: crc32c(headerPart)) else {
            throw TraceError(.checksumMismatch, at: b.offset, "\(name) (bytes \(b.offset)..<\(b.payloadOffset + b.payloadLength)) fails its CRC32C check")
        }
    }

    private struct Index {
        var blocks: [Block]
        var writtenPages: [UInt64]
        var readPages: [UInt64]?
        var summary: TraceSummary
        var notes: [ProvenanceEntry]
    }

    private static func readIndex(_ file: UnsafeRawBufferPointer, from offset: Int, length: Int, header: TraceHeader) throws(TraceError) -> Index {
        let stored = file.loadUnaligned(fromByteOffset: file.count - TraceFormat.trailerSize + 16, as: UInt32.self).littleEndian
        guard stored == crc32c(UnsafeRawBufferPointer(rebasing: file[offset..<(offset + length)])) else {
            throw TraceError(.checksumMismatch, at: offset, "the index (bytes \(offset)..<\(offset + length)) fails its CRC32C check")
        }
        guard length >= 4, file[offset..<(offset + 4)].elementsEqual(TraceFormat.indexTag) else {
            throw TraceError(.malformed, at: offset, "the index does not start with its tag 'INDX'")
        }
        var r = ByteReader(file, from: offset + 4, to: offset + length, what: "index")
        let blockCount = try r.count(atMost: UInt64(r.remaining / 3), "block count")
        var blocks: [Block] = []
        blocks.reserveCapacity(blockCount)
        for _ in 0..<blockCount {
            let o = try r.count(atMost: UInt64(file.count), "block offset")
            let first = try r.count(atMost: UInt64(Int32.max), "first interval")
            let n = try r.count(atMost: UInt64(Int32.max), "interval count")
            blocks.append(Block(offset: o, firstInterval: first, intervals: n, payloadLength: 0))
        }
        let intervals = try r.count(atMost: UInt64(r.remaining), "interval count")
        var written: [UInt64] = []
        var read: [UInt64] = []
        written.reserveCapacity(intervals)
        for _ in 0..<intervals {
            written.append(try r.varint())
            if header.hasReads { read.append(try r.varint()) }
        }
        let unique = try r.varint()
        let uniqueRead = try r.varint()
        let windowCount = try r.count(atMost: 64, "window count")
        var windows: [WorkingSetWindow] = []
        for _ in 0..<windowCount {
            windows.append(WorkingSetWindow(windowNanoseconds: try r.varint(), completeWindows: try r.varint(),
                                            meanPages: try r.f64(), maxPages: try r.varint()))
        }
        let noteCount = try r.count(atMost: UInt64(r.remaining), "note count")
        var notes: [ProvenanceEntry] = []
        for _ in 0..<noteCount { notes.append(ProvenanceEntry(try r.string("note key"), try r.string("note value"))) }
        guard r.remaining == 0 else {
            throw TraceError(.malformed, at: r.position, "\(r.remaining) bytes left over at the end of the index")
        }
        return Index(blocks: blocks, writtenPages: written, readPages: header.hasReads ? read : nil,
                     summary: TraceSummary(uniqueWrittenPages: unique, uniqueReadPages: uniqueRead, windows: windows),
                     notes: notes)
    }
}

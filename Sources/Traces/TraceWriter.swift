import Glibc

/// Writes a trace file interval by interval. The file appears under its name only when
/// `finish` succeeds; until then it is `NAME.partial`, so a crash never leaves a file that
/// looks whole.
public final class TraceWriter {
    public let path: String
    private let partialPath: String
    private var header: TraceHeader
    private let hasInitialSet: Bool
    private let fd: Int32
    private var fileOffset = 0
    private var pending = ByteWriter()

    private var block = ByteWriter()
    private var blockFirstInterval = 0
    private var blockIntervals = 0
    private var blocks: [(offset: Int, firstInterval: Int, intervals: Int)] = []

    private var writtenPages: [UInt64] = []
    private var readPages: [UInt64] = []
    private var pageEnd: UInt64 = 0
    private var tracker: WorkingSetTracker
    private var notes: [ProvenanceEntry] = []
    private var finished = false

    /// Starts `path`. `initialData` lists the pages that hold data at the start of the trace;
    /// nil means every page does.
    public init(path: String, header: TraceHeader, initialData: [PageRange]? = nil) throws(TraceError) {
        guard header.intervalNanoseconds > 0 else { throw TraceError(.invalidArgument, at: nil, "interval must be positive", path: path) }
        self.path = path
        self.partialPath = path + ".partial"
        self.header = header
        self.hasInitialSet = initialData != nil
        self.tracker = WorkingSetTracker(intervalNanoseconds: header.intervalNanoseconds)
        do {
            fd = try Sys.open(partialPath, O_WRONLY | O_CREAT | O_TRUNC)
        } catch {
            throw .io(error, path: partialPath)
        }
        pending.raw(header.encoded(hasInitialSet: hasInitialSet))
        if let initialData {
            var payload = ByteWriter()
            try PageSetCoding.encode(initialData, into: &payload)
            pageEnd = initialData.last?.end ?? 0
            appendBlock(tag: TraceFormat.initialBlockTag, firstInterval: 0, intervals: 0, payload: payload.bytes)
        }
    }

    deinit {
        if !finished {
            Sys.close(fd)
            unlink(partialPath)
        }
    }

    public var intervalCount: Int { writtenPages.count }

    /// Appends the next interval: the pages written in it and, if the header says so, read.
    /// Ranges must be sorted and disjoint.
    public func append(written: [PageRange], read: [PageRange]? = nil) throws(TraceError) {
        guard !finished else { throw TraceError(.invalidArgument, at: nil, "append after finish", path: path) }
        guard (read != nil) == header.hasReads else {
            throw TraceError(.invalidArgument, at: nil, header.hasReads ? "this trace records reads: pass them" : "this trace records no reads", path: path)
        }
        if blockIntervals == 0 { blockFirstInterval = writtenPages.count }
        writtenPages.append(try PageSetCoding.encode(written, into: &block))
        if let read { readPages.append(try PageSetCoding.encode(read, into: &block)) }
        pageEnd = max(pageEnd, written.last?.end ?? 0, read?.last?.end ?? 0)
        tracker.add(written: written, read: read)
        blockIntervals += 1
        if block.bytes.count >= TraceFormat.blockPayloadTarget || blockIntervals >= TraceFormat.blockIntervalLimit {
            try closeBlock()
        }
    }

    /// A provenance entry known only at the end (a recorder's own cost, say).
    public func addNote(_ key: String, _ value: String) { notes.append(ProvenanceEntry(key, value)) }

    /// Writes the index and trailer and gives the file its name. `pageCount`, when given,
    /// replaces the header's (a recorder learns it as it goes).
    public func finish(pageCount: UInt64? = nil) throws(TraceError) {
        guard !finished else { return }
        if let pageCount { header.pageCount = pageCount }
        guard pageEnd <= header.pageCount else {
            throw TraceError(.invalidArgument, at: nil, "page \(pageEnd - 1) is beyond the trace's \(header.pageCount) pages", path: path)
        }
        try closeBlock()
        let indexOffset = fileOffset + pending.bytes.count
        var index = ByteWriter()
        index.raw(TraceFormat.indexTag)
        index.varint(UInt64(blocks.count))
        for b in blocks {
            index.varint(UInt64(b.offset))
            index.varint(UInt64(b.firstInterval))
            index.varint(UInt64(b.intervals))
        }
        index.varint(UInt64(writtenPages.count))
        for (i, n) in writtenPages.enumerated() {
            index.varint(n)
            if header.hasReads { index.varint(readPages[i]) }
        }
        let summary = tracker.summary
        index.varint(summary.uniqueWrittenPages)
        index.varint(summary.uniqueReadPages)
        index.varint(UInt64(summary.windows.count))
        for w in summary.windows {
            index.varint(w.windowNanoseconds)
            index.varint(w.completeWindows)
            index.f64(w.meanPages)
            index.varint(w.maxPages)
        }
        index.varint(UInt64(notes.count))
        for n in notes {
            index.string(n.key)
            index.string(n.value)
        }
        pending.raw(index.bytes)
        var trailer = ByteWriter()
        trailer.u64(UInt64(indexOffset))
        trailer.u64(UInt64(index.bytes.count))
        trailer.u32(crc32c(index.bytes))
        trailer.u32(crc32c(trailer.bytes))
        trailer.raw(TraceFormat.trailerMagic)
        pending.raw(trailer.bytes)
        do throws(SystemCallError) {
            try flush()
            if pageCount != nil { try Sys.pwriteAll(fd, header.encoded(hasInitialSet: hasInitialSet), at: 0) }
            _ = try systemCall("fsync(\(partialPath))") { fsync(fd) }
            Sys.close(fd)
            _ = try systemCall("rename(\(partialPath))") { rename(partialPath, path) }
        } catch {
            throw .io(error, path: path)
        }
        finished = true
    }

    private func appendBlock(tag: [UInt8], firstInterval: Int, intervals: Int, payload: [UInt8]) {
        var h = ByteWriter()
        h.raw(tag)
        h.u64(UInt64(firstInterval))
        h.u32(UInt32(intervals))
        h.u32(UInt32(payload.count))
        let crc = crc32c(payload, continuing: crc32c(Array(h.bytes[4...])))
        h.u32(crc)
        pending.raw(h.bytes)
        pending.raw(payload)
    }

    private func closeBlock() throws(TraceError) {
        guard blockIntervals > 0 else { return }
        blocks.append((fileOffset + pending.bytes.count, blockFirstInterval, blockIntervals))
        appendBlock(tag: TraceFormat.intervalBlockTag, firstInterval: blockFirstInterval, intervals: blockIntervals, payload: block.bytes)
        block.bytes.removeAll(keepingCapacity: true)
        blockIntervals = 0
        if pending.bytes.count >= 1 << 20 {
            do { try flush() } catch { throw .io(error, path: partialPath) }
        }
    }

    private func flush() throws(SystemCallError) {
        try Sys.pwriteAll(fd, pending.bytes, at: fileOffset)
        fileOffset += pending.bytes.count
        pending.bytes.removeAll(keepingCapacity: true)
    }
}

/// How one interval's set of pages is written: a varint range count, then per range the gap
/// from the end of the previous range (from page 0 for the first) and the length minus one,
/// both varints. Sorted, disjoint ranges make every number small.
enum PageSetCoding {
    /// Appends `ranges` (sorted, disjoint; adjacent ones are merged) and returns the pages they cover.
    @discardableResult
    static func encode(_ ranges: some Collection<PageRange>, into w: inout ByteWriter) throws(TraceError) -> UInt64 {
        var merged: [PageRange] = []
        merged.reserveCapacity(ranges.count)
        for r in ranges where r.count > 0 {
            if let last = merged.last {
                guard r.start >= last.end else {
                    throw TraceError(.invalidArgument, at: nil, "page ranges must be sorted and disjoint: \(r) follows \(last)")
                }
                if r.start == last.end {
                    merged[merged.count - 1].count += r.count
                    continue
                }
            }
            merged.append(r)
        }
        w.varint(UInt64(merged.count))
        var previousEnd: UInt64 = 0
        var pages: UInt64 = 0
        for r in merged {
            w.varint(r.start - previousEnd)
            w.varint(r.count - 1)
            previousEnd = r.end
            pages += r.count
        }
        return pages
    }

    /// Decodes one set at `position` (advanced past it) into `out` from index 0, growing it as
    /// needed; returns how many ranges it holds. Every range must end at or before `pageLimit`.
    @inline(__always)
    static func decode(_ file: UnsafeRawBufferPointer, position: inout Int, end: Int, pageLimit: UInt64,
                       what: String, into out: RangeBuffer) throws(TraceError) -> Int {
        var r = ByteReader(file, from: position, to: end, what: what)
        let setStart = position
        // Each range takes at least two bytes: a larger count is damage, not a reason to allocate.
        let n = try r.count(atMost: UInt64(r.remaining / 2), "range count")
        out.reserve(n)
        var pos = r.position
        var previousEnd: UInt64 = 0
        let base = file.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let ranges = out.storage
        for i in 0..<n {
            let gap: UInt64, lengthMinusOne: UInt64
            if end - pos >= 20 {
                let b0 = base[pos], b1 = base[pos + 1]
                if (b0 | b1) < 0x80 {
                    // The common case: a small gap and a short range, one byte each.
                    gap = UInt64(b0)
                    lengthMinusOne = UInt64(b1)
                    pos += 2
                } else {
                    gap = readVarintUnchecked(base, &pos)
                    lengthMinusOne = readVarintUnchecked(base, &pos)
                }
            } else {
                r.position = pos
                gap = try r.varint()
                lengthMinusOne = try r.varint()
                pos = r.position
            }
            let start = previousEnd &+ gap
            let rangeEnd = start &+ lengthMinusOne &+ 1
            // Ends strictly increase unless a sum wrapped past 2^64: one comparison catches both.
            guard start >= previousEnd, rangeEnd > start else {
                throw TraceError(.malformed, at: setStart, "\(what): a page range reaches beyond page 2^64")
            }
            ranges[i] = PageRange(start: start, count: rangeEnd - start)
            previousEnd = rangeEnd
        }
        guard previousEnd <= pageLimit else {
            throw TraceError(.malformed, at: setStart, "\(what): a page range reaches page \(previousEnd), past the trace's \(pageLimit) pages")
        }
        position = pos
        return n
    }

    /// A LEB128 varint with no bounds check: the caller guarantees ten readable bytes. Bits past
    /// the 64th are dropped; the caller's range checks reject the nonsense they make.
    @inline(__always)
    private static func readVarintUnchecked(_ p: UnsafePointer<UInt8>, _ pos: inout Int) -> UInt64 {
        var byte = p[pos]
        if byte < 0x80 {
            pos += 1
            return UInt64(byte)
        }
        let second = p[pos + 1]
        if second < 0x80 {
            pos += 2
            return UInt64(byte & 0x7f) | UInt64(second) << 7
        }
        pos += 1
        var result = UInt64(byte & 0x7f)
        var shift: UInt64 = 7
        repeat {
            byte = p[pos]
            pos += 1
            result |= UInt64(byte & 0x7f) &<< shift
            shift += 7
        } while byte >= 0x80 && shift < 70
        return result
    }
}

/// Scratch space for decoded ranges, reused from interval to interval so that decoding does
/// not allocate.
final class RangeBuffer {
    private(set) var storage: UnsafeMutablePointer<PageRange>
    private var capacity: Int

    init(capacity: Int = 1024) {
        self.capacity = capacity
        storage = .allocate(capacity: capacity)
    }

    deinit { storage.deallocate() }

    func reserve(_ n: Int) {
        guard n > capacity else { return }
        storage.deallocate()
        capacity = max(n, capacity * 2)
        storage = .allocate(capacity: capacity)
    }

    func view(_ count: Int) -> UnsafeBufferPointer<PageRange> { UnsafeBufferPointer(start: storage, count: count) }
}

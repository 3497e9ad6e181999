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

    /// Decodes one set at `position` (advanced past it) into `out` (appended). Every range must
    /// end at or before `pageLimit`. Returns the pages the set covers.
    @inline(__always)
    static func decode(_ file: UnsafeRawBufferPointer, position: inout Int, end: Int, pageLimit: UInt64,
                       what: String, into out: inout [PageRange]) throws(TraceError) -> UInt64 {
        var r = ByteReader(file, from: position, to: end, what: what)
        let setStart = position
        // Each range takes at least two bytes: a larger count is damage, not a reason to allocate.
        let n = try r.count(atMost: UInt64(r.remaining / 2), "range count")
        out.reserveCapacity(out.count + n)
        var pos = r.position
        var previousEnd: UInt64 = 0
        var pages: UInt64 = 0
        let base = file.baseAddress!.assumingMemoryBound(to: UInt8.self)
        for _ in 0..<n {
            let gap: UInt64, lengthMinusOne: UInt64
            if end - pos >= 20 {
                // Fast path: two varints of at most ten bytes each fit before `end`.
                gap = readVarintUnchecked(base, &pos)
                lengthMinusOne = readVarintUnchecked(base, &pos)
            } else {
                r.position = pos
                gap = try r.varint()
                lengthMinusOne = try r.varint()
                pos = r.position
            }
            let (start, o1) = previousEnd.addingReportingOverflow(gap)
            let (rangeEnd, o2) = start.addingReportingOverflow(lengthMinusOne &+ 1)
            guard !o1, !o2, lengthMinusOne != .max, rangeEnd <= pageLimit else {
                throw TraceError(.malformed, at: setStart, "\(what): a page range reaches page \(o1 || o2 ? "beyond 2^64" : "\(rangeEnd)"), past the trace's \(pageLimit) pages")
            }
            out.append(PageRange(start: start, count: rangeEnd - start))
            pages &+= rangeEnd - start
            previousEnd = rangeEnd
        }
        position = pos
        return pages
    }

    /// A LEB128 varint with no bounds check: the caller guarantees ten readable bytes. Bits past
    /// the 64th are dropped; the caller's range checks reject the nonsense they make.
    @inline(__always)
    private static func readVarintUnchecked(_ p: UnsafePointer<UInt8>, _ pos: inout Int) -> UInt64 {
        var byte = p[pos]
        pos += 1
        if byte < 0x80 { return UInt64(byte) }
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

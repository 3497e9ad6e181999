/// A run of consecutive pages: `count` pages from page number `start`. Traces, bitmaps and
/// the migration stream describe memory as ranges, never as page lists.
public struct PageRange: Hashable, Sendable, CustomStringConvertible {
    public var start: UInt64
    public var count: UInt64

    public init(start: UInt64, count: UInt64) {
        self.start = start
        self.count = count
    }

    /// One past the last page.
    public var end: UInt64 { start + count }

    public var description: String { count == 1 ? "\(start)" : "\(start)..<\(end)" }
}

extension Array where Element == PageRange {
    /// Sorted, coalesced ranges covering `pages` (any order, repeats allowed). Sorts in place.
    public static func coalescing(pages: inout [UInt64]) -> [PageRange] {
        pages.sort()
        var out: [PageRange] = []
        out.reserveCapacity(pages.count / 2 + 1)
        for page in pages {
            if let last = out.last, page < last.end { continue }
            if let last = out.last, page == last.end {
                out[out.count - 1].count += 1
            } else {
                out.append(PageRange(start: page, count: 1))
            }
        }
        return out
    }

    /// The same sorted ranges, begun at `position` and wrapped around: first the pages at or
    /// after it, then those before. A pass that syncs before its end goes on from where it was,
    /// as QEMU's does (its `last_seen_block` and `last_page` outlive a sync), rather than start
    /// again at page 0 and leave the top of memory for last every time.
    public func rotated(at position: UInt64) -> [PageRange] {
        guard let split = firstIndex(where: { $0.end > position }) else { return self }
        // One array, sized once: the pass's queue is rebuilt at every refused completion.
        var out: [PageRange] = []
        out.reserveCapacity(count + 1)
        out.append(contentsOf: self[split...])
        out.append(contentsOf: self[..<split])
        let first = out[0]
        if first.start < position {
            out[0] = PageRange(start: position, count: first.end - position)
            out.append(PageRange(start: first.start, count: position - first.start))
        }
        return out
    }
}

extension Sequence where Element == PageRange {
    /// The number of pages the ranges cover.
    /// Inlinable so that callers in other modules get it specialised: unspecialised, a
    /// switch's ten thousand ranges took milliseconds of its downtime.
    @inlinable public var pageCount: UInt64 { reduce(0) { $0 + $1.count } }
}

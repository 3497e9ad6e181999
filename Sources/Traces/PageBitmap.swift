/// A set of page numbers as a bitmap that grows on demand, with range operations that work a
/// 64-bit word at a time. Used for unique-page and working-set counts, synthetic workloads and
/// (later) the destination's received bitmap.
public struct PageBitmap: Sendable, Equatable {
    public private(set) var words: [UInt64]
    /// Number of pages set.
    public private(set) var count: UInt64 = 0

    public init(pages: UInt64 = 0) {
        words = [UInt64](repeating: 0, count: Int((pages + 63) / 64))
    }

    public func contains(_ page: UInt64) -> Bool {
        let w = Int(page / 64)
        return w < words.count && words[w] & (1 << (page % 64)) != 0
    }

    private mutating func grow(toCover page: UInt64) {
        let need = Int(page / 64) + 1
        if need > words.count { words.append(contentsOf: repeatElement(0, count: max(need - words.count, words.count / 2))) }
    }

    /// Sets one page; true when it was not set before.
    @discardableResult
    public mutating func insert(_ page: UInt64) -> Bool {
        grow(toCover: page)
        let w = Int(page / 64), bit: UInt64 = 1 << (page % 64)
        if words[w] & bit != 0 { return false }
        words[w] |= bit
        count += 1
        return true
    }

    /// Sets every page of `range`; returns how many were not set before.
    @discardableResult
    public mutating func insert(_ range: PageRange) -> UInt64 {
        guard range.count > 0 else { return 0 }
        grow(toCover: range.end - 1)
        let added = forEachWord(of: range) { word, mask in
            let new = mask & ~word
            word |= mask
            return new.nonzeroBitCount
        }
        count += added
        return added
    }

    /// Clears every page of `range`; returns how many were set.
    @discardableResult
    public mutating func remove(_ range: PageRange) -> UInt64 {
        let clamped = PageRange(start: range.start, count: min(range.end, UInt64(words.count) * 64) - min(range.start, UInt64(words.count) * 64))
        guard clamped.count > 0 else { return 0 }
        let removed = forEachWord(of: clamped) { word, mask in
            let hit = word & mask
            word &= ~mask
            return hit.nonzeroBitCount
        }
        count -= removed
        return removed
    }

    /// Calls `body` with each word `range` touches and the mask of its pages in that word;
    /// returns the sum of what `body` returns.
    private mutating func forEachWord(of range: PageRange, _ body: (inout UInt64, UInt64) -> Int) -> UInt64 {
        var total: UInt64 = 0
        words.withUnsafeMutableBufferPointer { w in
            Self.forEachMask(of: range) { wi, mask in total += UInt64(body(&w[wi], mask)) }
        }
        return total
    }

    /// How many pages of `range` are set.
    public func count(in range: PageRange) -> UInt64 {
        let clamped = PageRange(start: range.start, count: min(range.end, UInt64(words.count) * 64) - min(range.start, UInt64(words.count) * 64))
        var total: UInt64 = 0
        Self.forEachMask(of: clamped) { wi, mask in total += UInt64((words[wi] & mask).nonzeroBitCount) }
        return total
    }

    /// Calls `body` with the index of each word `range` touches and the mask of its pages there.
    private static func forEachMask(of range: PageRange, _ body: (Int, UInt64) -> Void) {
        var page = range.start
        let end = range.end
        while page < end {
            let wi = Int(page / 64), bit = page % 64
            let n = min(64 - bit, end - page)
            body(wi, n == 64 ? ~0 : ((1 << n) - 1) << bit)
            page += n
        }
    }

    /// Sets every page of `pages` (an interval's set) and returns how many were new.
    /// Inlinable so that callers in other modules get it specialised (see `pageCount`).
    @discardableResult @inlinable
    public mutating func insert(contentsOf pages: some Sequence<PageRange>) -> UInt64 {
        var added: UInt64 = 0
        for r in pages { added += insert(r) }
        return added
    }

    /// Adds every page of `other`.
    public mutating func formUnion(_ other: PageBitmap) {
        if other.words.count > words.count { words.append(contentsOf: repeatElement(0, count: other.words.count - words.count)) }
        var added: UInt64 = 0
        words.withUnsafeMutableBufferPointer { w in
            other.words.withUnsafeBufferPointer { o in
                for i in o.indices where o[i] != 0 {
                    added += UInt64((o[i] & ~w[i]).nonzeroBitCount)
                    w[i] |= o[i]
                }
            }
        }
        count += added
    }

    /// Removes every page of `other`.
    public mutating func subtract(_ other: PageBitmap) {
        var removed: UInt64 = 0
        words.withUnsafeMutableBufferPointer { w in
            other.words.withUnsafeBufferPointer { o in
                for i in 0..<min(w.count, o.count) where o[i] != 0 {
                    removed += UInt64((o[i] & w[i]).nonzeroBitCount)
                    w[i] &= ~o[i]
                }
            }
        }
        count -= removed
    }

    /// Sets every page below `pages`.
    public mutating func insertAll(below pages: UInt64) { insert(PageRange(start: 0, count: pages)) }

    /// Clears the bits of `mask` in word `index` (page `64 × index + bit`); returns how many
    /// were set. Lets a caller walk `words` and take pages a word at a time.
    @discardableResult
    public mutating func remove(mask: UInt64, inWord index: Int) -> Int {
        guard index < words.count else { return 0 }
        let hit = words[index] & mask
        words[index] &= ~hit
        count -= UInt64(hit.nonzeroBitCount)
        return hit.nonzeroBitCount
    }

    /// Sets the bits of `mask` in word `index`; returns how many were not set before.
    @discardableResult
    public mutating func insert(mask: UInt64, inWord index: Int) -> Int {
        if index >= words.count { grow(toCover: UInt64(index) * 64) }
        let new = mask & ~words[index]
        words[index] |= new
        count += UInt64(new.nonzeroBitCount)
        return new.nonzeroBitCount
    }

    /// Number of maximal runs of set pages (what a range list of the set would hold).
    public var runCount: Int {
        var runs = 0
        var previousTopBit: UInt64 = 0
        for w in words {
            runs += (w & ~((w << 1) | previousTopBit)).nonzeroBitCount
            previousTopBit = w >> 63
        }
        return runs
    }

    /// Clears every page, keeping the capacity.
    public mutating func removeAll() {
        guard count > 0 else { return }
        words.withUnsafeMutableBufferPointer { w in
            for i in w.indices { w[i] = 0 }
        }
        count = 0
    }

    /// The set pages as sorted, coalesced ranges; clears the bitmap when `clearing` is true.
    public mutating func ranges(clearing: Bool) -> [PageRange] {
        var out: [PageRange] = []
        out.reserveCapacity(runCount)  // one allocation: grown run by run, it was many
        words.withUnsafeMutableBufferPointer { w in
            var open: UInt64? = nil
            for wi in w.indices {
                let word = w[wi]
                if word == 0 {
                    if let s = open { out.append(PageRange(start: s, count: UInt64(wi) * 64 - s)); open = nil }
                    continue
                }
                if word == ~0 {
                    if open == nil { open = UInt64(wi) * 64 }
                    if clearing { w[wi] = 0 }
                    continue
                }
                var bit: UInt64 = 0
                while bit < 64 {
                    if open == nil {
                        let skip = UInt64((word >> bit).trailingZeroBitCount)
                        if skip + bit >= 64 { break }
                        bit += skip
                        open = UInt64(wi) * 64 + bit
                    } else {
                        let run = UInt64((~word >> bit).trailingZeroBitCount)
                        if run + bit >= 64 { break }
                        bit += run
                        out.append(PageRange(start: open!, count: UInt64(wi) * 64 + bit - open!))
                        open = nil
                    }
                }
                if clearing { w[wi] = 0 }
            }
            if let s = open { out.append(PageRange(start: s, count: UInt64(w.count) * 64 - s)) }
        }
        if clearing { count = 0 }
        return out
    }
}

/// One line of /proc/PID/maps.
struct ProcessMapping: Equatable, Sendable {
    var start: UInt64
    var end: UInt64
    var permissions: String
    var path: String

    var isWritable: Bool { permissions.hasPrefix("rw") || permissions.dropFirst().first == "w" }
    var isFileBacked: Bool { path.hasPrefix("/") }
    /// Kernel-provided areas a process cannot meaningfully dirty.
    var isSpecial: Bool { path.hasPrefix("[v") }

    /// Parses one maps line: `start-end perms offset dev inode [path]`.
    init?(line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5 else { return nil }
        let bounds = fields[0].split(separator: "-")
        guard bounds.count == 2, let s = UInt64(bounds[0], radix: 16), let e = UInt64(bounds[1], radix: 16), s < e else { return nil }
        start = s
        end = e
        permissions = String(fields[1])
        path = fields.count > 5 ? String(fields[5].drop { $0 == " " }) : ""
    }

    init(start: UInt64, end: UInt64, permissions: String, path: String) {
        self.start = start
        self.end = end
        self.permissions = permissions
        self.path = path
    }

    /// The writable mappings of a process, the ones whose pages a migration would copy.
    static func writable(pid: Int32) throws(SystemCallError) -> [ProcessMapping] {
        let text = String(decoding: try Sys.readWholeFile("/proc/\(pid)/maps"), as: UTF8.self)
        return text.split(separator: "\n").compactMap { ProcessMapping(line: $0) }.filter { $0.isWritable && !$0.isSpecial }
    }
}

/// Gives every virtual page of the target a stable trace page number, allocated the first time
/// the page's mapping is seen: a page keeps its number while mappings come, grow and go.
struct AddressSpaceIndex {
    private struct Segment {
        let firstVirtualPage: UInt64
        let pages: UInt64
        let firstTracePage: UInt64
    }

    private var segments: [Segment] = []  // sorted by firstVirtualPage, disjoint
    private(set) var pageCount: UInt64 = 0

    /// Trace runs for the virtual pages `first..<first+count`, allocating what is new.
    mutating func traceRuns(firstVirtualPage first: UInt64, count: UInt64) -> [(virtualPage: UInt64, tracePage: UInt64, count: UInt64)] {
        var out: [(UInt64, UInt64, UInt64)] = []
        var v = first
        let end = first + count
        var i = segmentIndex(atOrAfter: v)
        if i > 0, segments[i - 1].firstVirtualPage + segments[i - 1].pages > v { i -= 1 }
        while v < end {
            if i < segments.count, segments[i].firstVirtualPage <= v {
                let s = segments[i]
                let n = min(end, s.firstVirtualPage + s.pages) - v
                out.append((v, s.firstTracePage + (v - s.firstVirtualPage), n))
                v += n
                i += 1
            } else {
                let gapEnd = i < segments.count ? min(end, segments[i].firstVirtualPage) : end
                let s = Segment(firstVirtualPage: v, pages: gapEnd - v, firstTracePage: pageCount)
                segments.insert(s, at: i)
                pageCount += s.pages
                out.append((v, s.firstTracePage, s.pages))
                v = gapEnd
                i += 1
            }
        }
        return out
    }

    private func segmentIndex(atOrAfter v: UInt64) -> Int {
        var lo = 0, hi = segments.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if segments[mid].firstVirtualPage < v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

import Traces

/// A trace decoded once and kept in memory, so that many simulations (policies, bandwidths,
/// tuning points) replay it without decoding it again.
public final class TraceWorkload: Sendable {
    public let name: String
    public let pageSize: Int
    public let pageCount: UInt64
    public let intervalSeconds: Double
    /// Pages written per interval, as (64-page word, bit mask) pairs in word order: applying an
    /// interval to a bitmap costs one OR per word it touches, however the pages are scattered.
    public let writes: [[WordMask]]
    /// Pages touched (written or read) per interval: what faults in postcopy.
    public let touches: [[WordMask]]
    /// Pages holding data at the start; nil when every page does.
    public let initialData: [PageRange]?

    public init(_ trace: TraceReader) throws {
        var writes: [[WordMask]] = [], touches: [[WordMask]] = []
        writes.reserveCapacity(trace.intervalCount)
        try trace.forEachInterval { view in
            writes.append(WordMask.masks(of: view.written))
            if let read = view.read { touches.append(WordMask.masks(of: Array(view.written) + Array(read))) }
        }
        self.name = String(trace.path.split(separator: "/").last ?? "")
        self.pageSize = Int(trace.header.pageSize)
        self.pageCount = trace.header.pageCount
        self.intervalSeconds = trace.header.intervalSeconds
        self.writes = writes
        self.touches = trace.header.hasReads ? touches : writes
        self.initialData = trace.initialData
    }

    public convenience init(path: String) throws { try self.init(TraceReader(path: path)) }

    public var durationSeconds: Double { Double(writes.count) * intervalSeconds }
}

/// The pages of one 64-page word of a bitmap: word `index` holds pages 64·index ..< 64·index + 64.
public struct WordMask: Sendable, Equatable {
    public var index: UInt32
    public var mask: UInt64

    /// The word masks of a set of ranges (any order, overlaps allowed), in word order.
    public static func masks(of ranges: some Sequence<PageRange>) -> [WordMask] {
        var out: [WordMask] = []
        var bitmap = PageBitmap()
        for r in ranges { bitmap.insert(r) }
        for (i, w) in bitmap.words.enumerated() where w != 0 { out.append(WordMask(index: UInt32(i), mask: w)) }
        return out
    }
}

import Traces

/// A trace decoded once and kept in memory, so that many simulations (policies, bandwidths,
/// tuning points) replay it without decoding it again.
public final class TraceWorkload: Sendable {
    public let name: String
    public let pageSize: Int
    public let pageCount: UInt64
    public let intervalSeconds: Double
    /// Pages written per interval.
    public let writes: [[PageRange]]
    /// Pages touched (written or read) per interval: what faults in postcopy.
    public let touches: [[PageRange]]
    /// Pages holding data at the start; nil when every page does.
    public let initialData: [PageRange]?

    public init(_ trace: TraceReader) throws {
        var writes: [[PageRange]] = [], touches: [[PageRange]] = []
        writes.reserveCapacity(trace.intervalCount)
        try trace.forEachInterval { view in
            let w = Array(view.written)
            writes.append(w)
            if let read = view.read {
                var union = PageBitmap(pages: trace.header.pageCount)
                union.insert(contentsOf: w)
                union.insert(contentsOf: read)
                touches.append(union.ranges(clearing: true))
            }
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

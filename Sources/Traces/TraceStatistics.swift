/// The headline figures of a trace, as `trace info` prints them: read from the index and the
/// summary, so they cost no decoding.
public struct TraceStatistics: Codable, Sendable, Equatable {
    /// Dirty pages per second over the intervals.
    public struct Rates: Codable, Sendable, Equatable {
        public var min: Double
        public var median: Double
        public var p99: Double
        public var max: Double
    }

    public var path: String
    public var pageSize: UInt32
    public var pages: UInt64
    public var intervalSeconds: Double
    public var intervals: Int
    public var durationSeconds: Double
    public var dirtyPagesPerSecond: Rates
    public var uniquePages: UInt64
    /// Mean distinct pages written per window, keyed by window ("1s", "10s").
    public var wssPages: [String: Double]
    public var initialDataPages: UInt64
    public var fileBytes: Int
    public var provenance: [String: String]

    enum CodingKeys: String, CodingKey {
        case path, pages, intervals, provenance
        case pageSize = "page_size"
        case intervalSeconds = "interval_s"
        case durationSeconds = "duration_s"
        case dirtyPagesPerSecond = "dirty_pages_per_s"
        case uniquePages = "unique_pages"
        case wssPages = "wss_pages"
        case initialDataPages = "initial_data_pages"
        case fileBytes = "file_bytes"
    }

    public init(_ trace: TraceReader) {
        let h = trace.header
        path = trace.path
        pageSize = h.pageSize
        pages = h.pageCount
        intervalSeconds = h.intervalSeconds
        intervals = trace.intervalCount
        durationSeconds = trace.durationSeconds
        let rates = trace.writtenPages.map { Double($0) / h.intervalSeconds }.sorted()
        dirtyPagesPerSecond = Rates(min: rates.first ?? 0, median: percentile(rates, 50), p99: percentile(rates, 99), max: rates.last ?? 0)
        uniquePages = trace.summary.uniqueWrittenPages
        var wss: [String: Double] = [:]
        for w in trace.summary.windows { wss[w.name] = w.meanPages }
        wssPages = wss
        initialDataPages = trace.initialData?.pageCount ?? h.pageCount
        fileBytes = trace.fileSize
        var p: [String: String] = [:]
        for e in trace.provenance { p[e.key] = e.value }
        provenance = p
    }
}

/// The `p`-th percentile of sorted values, interpolated between closest ranks (the median of an
/// even count is the mean of the middle two).
public func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let rank = p / 100 * Double(sorted.count - 1)
    let lo = Int(rank.rounded(.down)), hi = Int(rank.rounded(.up))
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - Double(lo))
}

/// Figures a writer computes while it writes, stored in the index so that `trace info` need
/// not decode the intervals.
public struct TraceSummary: Equatable, Sendable {
    /// Distinct pages written over the whole trace.
    public var uniqueWrittenPages: UInt64
    /// Distinct pages read over the whole trace (0 when the trace has no reads).
    public var uniqueReadPages: UInt64
    /// The writable working set over windows of fixed length.
    public var windows: [WorkingSetWindow]

    public func window(nanoseconds: UInt64) -> WorkingSetWindow? { windows.first { $0.windowNanoseconds == nanoseconds } }
}

/// Distinct pages written within consecutive, non-overlapping windows of one length.
public struct WorkingSetWindow: Equatable, Sendable {
    public var windowNanoseconds: UInt64
    /// Complete windows in the trace; 0 when the trace is shorter than one window, and then the
    /// figures describe the whole (shorter) trace.
    public var completeWindows: UInt64
    public var meanPages: Double
    public var maxPages: UInt64

    /// `1s`, `10s`, `500ms`: the window's length as a name.
    public var name: String {
        windowNanoseconds % 1_000_000_000 == 0 ? "\(windowNanoseconds / 1_000_000_000)s" : "\(windowNanoseconds / 1_000_000)ms"
    }
}

/// Counts distinct pages over the whole trace and per window while intervals are appended.
struct WorkingSetTracker {
    private struct Window {
        let nanoseconds: UInt64
        let intervals: Int
        var pages = PageBitmap()
        var intervalsSeen = 0
        var completed: UInt64 = 0
        var sum: Double = 0
        var max: UInt64 = 0
    }

    private var unique = PageBitmap()
    private var uniqueRead = PageBitmap()
    private var windows: [Window]

    init(intervalNanoseconds: UInt64) {
        windows = TraceFormat.summaryWindows.map { w in
            Window(nanoseconds: w, intervals: max(1, Int((w + intervalNanoseconds / 2) / intervalNanoseconds)))
        }
    }

    mutating func add(written: [PageRange], read: [PageRange]?) {
        for r in written { unique.insert(r) }
        for r in read ?? [] { uniqueRead.insert(r) }
        for i in windows.indices {
            for r in written { windows[i].pages.insert(r) }
            windows[i].intervalsSeen += 1
            if windows[i].intervalsSeen == windows[i].intervals {
                let n = windows[i].pages.count
                windows[i].completed += 1
                windows[i].sum += Double(n)
                windows[i].max = Swift.max(windows[i].max, n)
                windows[i].pages.removeAll()
                windows[i].intervalsSeen = 0
            }
        }
    }

    var summary: TraceSummary {
        TraceSummary(
            uniqueWrittenPages: unique.count, uniqueReadPages: uniqueRead.count,
            windows: windows.map { w in
                w.completed > 0
                    ? WorkingSetWindow(windowNanoseconds: w.nanoseconds, completeWindows: w.completed,
                                       meanPages: w.sum / Double(w.completed), maxPages: w.max)
                    : WorkingSetWindow(windowNanoseconds: w.nanoseconds, completeWindows: 0,
                                       meanPages: Double(w.pages.count), maxPages: w.pages.count)
            })
    }
}

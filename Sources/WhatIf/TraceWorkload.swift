import Synchronization
import Traces

/// A trace as simulations replay it: intervals are decoded the first time a simulation reaches
/// them and kept, so many simulations (policies, bandwidths, tuning points) share one decoding,
/// and a migration that ends after 20 s of a 10-minute trace decodes 20 s of it.
public final class TraceWorkload: Sendable {
    public let name: String
    public let pageSize: Int
    public let pageCount: UInt64
    public let intervalSeconds: Double
    public let intervalCount: Int
    /// Pages holding data at the start; nil when every page does.
    public let initialData: [PageRange]?

    private let trace: TraceReader
    private struct Decoded: Sendable {
        var writes: [[WordMask]?]
        var touches: [[WordMask]?]
        var error: TraceError?
    }
    private let decoded: Mutex<Decoded>

    public init(_ trace: TraceReader) {
        self.trace = trace
        name = String(trace.path.split(separator: "/").last ?? "")
        pageSize = Int(trace.header.pageSize)
        pageCount = trace.header.pageCount
        intervalSeconds = trace.header.intervalSeconds
        intervalCount = trace.intervalCount
        initialData = trace.initialData
        decoded = Mutex(Decoded(writes: Array(repeating: nil, count: trace.intervalCount),
                                touches: Array(repeating: nil, count: trace.intervalCount)))
    }

    public convenience init(path: String) throws(TraceError) { self.init(try TraceReader(path: path)) }

    public var durationSeconds: Double { Double(intervalCount) * intervalSeconds }

    /// Pages written in interval `i`, as (64-page word, bit mask) pairs in word order: applying
    /// an interval to a bitmap costs one OR per word it touches, however scattered the pages.
    public func writes(_ i: Int) -> [WordMask] { masks(i).writes }

    /// Pages touched (written or read) in interval `i`: what faults in postcopy.
    public func touches(_ i: Int) -> [WordMask] { masks(i).touches }

    /// The first decoding error, if any interval could not be decoded (its sets then count as
    /// empty). Opening checked every block's CRC32C, so this means a writer's bug, not damage.
    public var decodingError: TraceError? { decoded.withLock { $0.error } }

    private func masks(_ i: Int) -> (writes: [WordMask], touches: [WordMask]) {
        if let hit = decoded.withLock({ d in d.writes[i].map { ($0, d.touches[i]!) } }) { return hit }
        var writes: [WordMask] = [], touches: [WordMask] = []
        var failure: TraceError?
        do {
            let interval = try trace.interval(i)
            writes = WordMask.masks(of: interval.written)
            touches = interval.read.map { WordMask.masks(of: interval.written + $0) } ?? writes
        } catch {
            failure = error
        }
        decoded.withLock { d in
            d.writes[i] = writes
            d.touches[i] = touches
            if d.error == nil { d.error = failure }
        }
        return (writes, touches)
    }
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

import Migration

/// One transfer observation: `bytes` sent in total by `seconds` after the transfer began.
public struct TransferSample: Codable, Sendable, Equatable {
    public var seconds: Double
    public var bytes: Double

    public init(seconds: Double, bytes: Double) {
        self.seconds = seconds
        self.bytes = bytes
    }
}

/// Which transfer samples the bandwidth estimate looks at: the most recent ones, so that the
/// link's current speed counts rather than its history, and never the very first ones (the
/// connection set-up and the slow start of the transfer) as long as 3 others remain.
public struct BandwidthWindow: Codable, Sendable, Equatable {
    /// At most this many of the newest samples.
    public var lastSamples: Int
    /// Only samples at most this many seconds older than the newest.
    public var lastSeconds: Double
    /// Leave out this many samples from the start of the series while at least 3 others remain.
    public var skipFirst: Int

    public init(lastSamples: Int = 30, lastSeconds: Double = 10, skipFirst: Int = 2) {
        self.lastSamples = lastSamples
        self.lastSeconds = lastSeconds
        self.skipFirst = skipFirst
    }

    enum CodingKeys: String, CodingKey {
        case lastSamples = "last_samples"
        case lastSeconds = "last_seconds"
        case skipFirst = "skip_first"
    }
}

/// The link's bandwidth B with its standard error: the least-squares slope of cumulative bytes
/// over time in a recent window (GSL `gsl_fit_linear`), or a value known in advance. Carries the
/// samples it came from.
public struct BandwidthEstimate: Codable, Sendable, Equatable {
    /// B, bytes per second.
    public var bytesPerSecond: Double
    /// Standard error of B (from the scatter of the samples about the line).
    public var standardError: Double
    /// The samples of the window that was fitted (empty for a known bandwidth).
    public var samples: [TransferSample]

    public var bandwidth: Bandwidth { Bandwidth(bytesPerSecond: bytesPerSecond) }

    enum CodingKeys: String, CodingKey {
        case bytesPerSecond = "bytes_per_second"
        case standardError = "standard_error"
        case samples
    }

    /// A bandwidth known in advance (a configured link, a what-if), with the error it is given.
    public init(_ bandwidth: Bandwidth, standardError: Double = 0) {
        bytesPerSecond = bandwidth.bytesPerSecond
        self.standardError = standardError
        samples = []
    }

    /// The slope of `series` (the whole series since the transfer began, in time order) over
    /// `window` (widened to the newest 3 samples when fewer fall in it). A stalled link gives 0.
    public init(fitting series: [TransferSample], window: BandwidthWindow = BandwidthWindow()) throws(ModelError) {
        for (i, s) in series.enumerated() {
            guard s.seconds.isFinite, s.bytes.isFinite, s.bytes >= 0 else {
                throw .invalidSample(index: i, problem: "(\(s.seconds) s, \(s.bytes) bytes) is not a transfer sample")
            }
            if i > 0, s.seconds < series[i - 1].seconds || s.bytes < series[i - 1].bytes {
                throw .invalidSample(index: i, problem: "(\(s.seconds) s, \(s.bytes) bytes) goes back from (\(series[i - 1].seconds) s, \(series[i - 1].bytes) bytes)")
            }
        }
        let usable = series.dropFirst(min(window.skipFirst, max(0, series.count - 3)))
        let newest = usable.last?.seconds ?? 0
        let inWindow = usable.suffix(window.lastSamples).drop { $0.seconds < newest - window.lastSeconds }
        let recent = inWindow.count >= 3 ? inWindow : usable.suffix(3)
        let times = Set(recent.map(\.seconds)).count
        guard times >= 3 else { throw .tooFewSamples(given: times, needed: 3) }
        let line = try GSL.line(x: recent.map(\.seconds), y: recent.map(\.bytes))
        bytesPerSecond = line.slope
        standardError = line.slopeVariance.squareRoot()
        samples = Array(recent)
    }
}

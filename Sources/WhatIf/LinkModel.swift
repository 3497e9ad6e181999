/// The link a simulated migration runs over, and what goes wrong with it.
public struct LinkModel: Sendable, Equatable {
    public var bandwidthBytesPerSecond: Double
    /// The rate of the stop-and-copy and of the switch to postcopy; nil: `bandwidthBytesPerSecond`.
    /// Different when precopy runs under a cap on a faster link: QEMU flushes the final copy
    /// regardless of its rate limit (`ram_save_complete`), and so does the embedded engine.
    public var switchoverBytesPerSecond: Double?
    public var roundTripSeconds: Double
    /// Bytes of framing per page sent; a zero page costs only this.
    public var pageHeaderBytes: Int
    /// Windows during which the channel is broken: nothing passes.
    public var failures: [Failure]

    /// The channel breaks at `atSeconds` (since the migration started) for `forSeconds`.
    public struct Failure: Sendable, Equatable {
        public var atSeconds: Double
        public var forSeconds: Double
        public init(atSeconds: Double, forSeconds: Double) {
            self.atSeconds = atSeconds
            self.forSeconds = forSeconds
        }
        public var endSeconds: Double { atSeconds + forSeconds }
    }

    public init(bandwidthBytesPerSecond: Double, switchoverBytesPerSecond: Double? = nil, roundTripSeconds: Double = 0.001,
                pageHeaderBytes: Int = 8, failures: [Failure] = []) {
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.switchoverBytesPerSecond = switchoverBytesPerSecond
        self.roundTripSeconds = roundTripSeconds
        self.pageHeaderBytes = pageHeaderBytes
        self.failures = failures.sorted { $0.atSeconds < $1.atSeconds }
    }

    func isDown(at t: Double) -> Bool { failures.contains { t >= $0.atSeconds && t < $0.endSeconds } }
}

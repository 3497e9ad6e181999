/// What a switch did before the guest stopped, while it still ran on the source: a
/// stop-and-copy's flush (the pending pages sent at the link's full rate, past the bandwidth
/// cap) or a switch to postcopy's listen (protocol version 5, `postcopy-listen`: the stale
/// pages the destination dropped). As pages and runs (one frame or one listed range each), and
/// the seconds it took, up to the destination's answer. The downtime then carries only what
/// the guest wrote meanwhile (`StopLoad`). docs/model.md ("Switchover") prices both.
public struct AheadLoad: Sendable, Equatable {
    public var seconds: Double
    public var pages: UInt64
    public var runs: UInt64

    public init(seconds: Double, pages: UInt64, runs: UInt64) {
        self.seconds = seconds
        self.pages = pages
        self.runs = runs
    }
}

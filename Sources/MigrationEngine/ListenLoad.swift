/// What a switch to postcopy did before the guest stopped (protocol version 5,
/// `postcopy-listen`): the stale pages the destination dropped while the guest still ran on
/// the source, as pages and runs (one listed range each), and the seconds from the request to
/// its acknowledgement. The switch's downtime then carries only what the guest wrote meanwhile
/// (`StopLoad`). docs/model.md ("Switchover") prices both.
public struct ListenLoad: Sendable, Equatable {
    public var seconds: Double
    public var pages: UInt64
    public var runs: UInt64

    public init(seconds: Double, pages: UInt64, runs: UInt64) {
        self.seconds = seconds
        self.pages = pages
        self.runs = runs
    }
}

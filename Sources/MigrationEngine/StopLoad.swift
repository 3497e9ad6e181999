import Traces

/// What the guest's stop on the source carried, counted as it was sent: the pending pages of a
/// stop-and-copy, or the stale pages a switch to postcopy listed for the destination to drop;
/// in both cases as runs (one frame or one listed range each), and the bytes sent from the
/// stop until the destination resumed (QEMU's `downtime-bytes`). A downtime is priced per page
/// and per run (docs/model.md, "Switchover"); these are the counts to price it by.
public struct StopLoad: Sendable, Equatable {
    public var pages: UInt64
    public var runs: UInt64
    public var bytes: UInt64

    public init(pages: UInt64, runs: UInt64, bytes: UInt64) {
        self.pages = pages
        self.runs = runs
        self.bytes = bytes
    }
}

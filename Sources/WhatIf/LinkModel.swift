import Migration

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
    /// What the engine spends with the guest stopped besides the pending pages on the wire.
    public var switchoverCost: SwitchoverCost
    /// Windows during which the channel is broken: nothing passes.
    public var failures: [Failure]
    /// What the source shows the policy of the pages dirtied since the last sync: exactly (the
    /// embedded engine) or only at syncs (QEMU), so that a prediction of a QEMU migration makes
    /// the decisions QEMU's figures lead to.
    public var dirtyCounts: DirtyCountVisibility

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
                pageHeaderBytes: Int = 8, switchoverCost: SwitchoverCost = .embeddedEngine, failures: [Failure] = [],
                dirtyCounts: DirtyCountVisibility = .exact) {
        self.bandwidthBytesPerSecond = bandwidthBytesPerSecond
        self.switchoverBytesPerSecond = switchoverBytesPerSecond
        self.roundTripSeconds = roundTripSeconds
        self.pageHeaderBytes = pageHeaderBytes
        self.switchoverCost = switchoverCost
        self.failures = failures.sorted { $0.atSeconds < $1.atSeconds }
        self.dirtyCounts = dirtyCounts
    }

    func isDown(at t: Double) -> Bool { failures.contains { t >= $0.atSeconds && t < $0.endSeconds } }
}

/// The switch's own work, beyond sending the pending pages at the switchover rate (which is the
/// per-pending-page cost, measured as the engine's uncapped rate): what makes a
/// real downtime tens of milliseconds where the pages alone take one or two. Both switches send
/// the device state and every guest page's stamp (`stampBytesPerPage`, on the wire at the
/// switchover rate) and wait for an answer (a round trip, `LinkModel.roundTripSeconds`); a
/// stop-and-copy's destination checks the stamp of every page it holds data in once its guest
/// runs, after the downtime and before it answers complete-ack; a switch to postcopy's
/// destination registers userfaultfd and gets rid of the stale pages as `StaleRunDrop.auto`
/// says (long runs moved out, the rest dropped; each way a cost per run and per page it held)
/// before it answers postcopy-start-ack — or, `listensAhead`, most of them before the guest
/// stops. docs/model.md ("Switchover") gives the formulas and the measurements behind
/// `embeddedEngine`.
public struct SwitchoverCost: Sendable, Equatable {
    /// Either switch: stopping the guest, the last dirty-log collect, the device state's frames.
    public var fixedSeconds: Double
    /// Stop-and-copy, per page the destination holds data in (the pages it never wrote are
    /// known zero and skipped): the destination checking the page's stamp, once its guest
    /// runs — in the total time, not in the downtime.
    public var checkSecondsPerPage: Double
    /// Stop-and-copy, per run of pending pages: each run is a frame or more on both sides (a
    /// header and a CRC, a piece of the gathered write, a decode and an install), which the
    /// switchover rate, measured on long runs, does not contain.
    public var secondsPerPendingRun: Double
    /// Switch to postcopy: the destination's guest start (and, unless `listensAhead`, its
    /// userfaultfd registration).
    public var postcopyFixedSeconds: Double
    /// Switch to postcopy: the destination drops what is stale before the guest stops
    /// (migpilot's engine, protocol version 5: `postcopy-listen`), and the downtime drops only
    /// what the guest wrote meanwhile; false: every stale page inside the downtime (QEMU, and
    /// a migpilot source of protocol version 4).
    /// That first half is priced as a round trip, its list's bytes and the drops (per run and
    /// per held page, as inside the downtime): its fixed part, the registration, is within
    /// the round trip here (a listen with at most 100 stale runs took 0.63–1.37 ms, 5 runs).
    public var listensAhead: Bool
    /// Stop-and-copy under a cap (the passes slower than the switchover rate): the pending
    /// pages go at the switchover rate just before the guest stops, the guest still running,
    /// and the downtime carries only what it wrote meanwhile (migpilot's engine, unless
    /// `migrate --no-flush-ahead`); false: every pending page inside the downtime (QEMU). That
    /// burst is priced as the stop's pages are (bytes at the switchover rate, per run, first
    /// touches), plus a round trip: the source awaits the destination before it stops.
    public var flushesAhead: Bool
    /// Switch to postcopy, per run of stale pages the destination drops (every run
    /// `StaleRunDrop.auto` does not move: MADV_DONTNEED, batched).
    public var secondsPerStaleRun: Double
    /// Switch to postcopy, per stale page of a dropped run that the destination holds (it
    /// received the page before): dropping it frees a populated page, where a page never
    /// written costs nothing.
    public var secondsPerStalePage: Double
    /// Switch to postcopy, per run of stale pages the destination moves out (UFFDIO_MOVE, one
    /// call each).
    public var secondsPerMovedRun: Double
    /// Switch to postcopy, per stale page of a moved run that the destination holds.
    public var secondsPerMovedPage: Double
    /// Switch to postcopy, once when any run is moved: the scratch region and the first move.
    public var moveFixedSeconds: Double
    /// Bytes per guest page the switch sends as the stamps' table (any switch).
    public var stampBytesPerPage: Int
    /// Stop-and-copy, per pending data page that lands where the destination has written
    /// nothing yet: the kernel's first touch of a fresh page, which the switchover rate
    /// (measured into populated memory) does not contain. 0 for a pre-populated destination
    /// (≈ 6.3 µs here for a fresh one: 0.65 GB/s).
    public var firstTouchSecondsPerPage: Double

    public init(fixedSeconds: Double = 0, checkSecondsPerPage: Double = 0, secondsPerPendingRun: Double = 0,
                postcopyFixedSeconds: Double = 0, flushesAhead: Bool = false, listensAhead: Bool = false,
                secondsPerStaleRun: Double = 0, secondsPerStalePage: Double = 0,
                secondsPerMovedRun: Double = 0, secondsPerMovedPage: Double = 0, moveFixedSeconds: Double = 0, stampBytesPerPage: Int = 0,
                firstTouchSecondsPerPage: Double = 0) {
        self.fixedSeconds = fixedSeconds
        self.checkSecondsPerPage = checkSecondsPerPage
        self.secondsPerPendingRun = secondsPerPendingRun
        self.postcopyFixedSeconds = postcopyFixedSeconds
        self.flushesAhead = flushesAhead
        self.listensAhead = listensAhead
        self.secondsPerStaleRun = secondsPerStaleRun
        self.secondsPerStalePage = secondsPerStalePage
        self.secondsPerMovedRun = secondsPerMovedRun
        self.secondsPerMovedPage = secondsPerMovedPage
        self.moveFixedSeconds = moveFixedSeconds
        self.stampBytesPerPage = stampBytesPerPage
        self.firstTouchSecondsPerPage = firstTouchSecondsPerPage
    }

    /// Nothing but the pages and a round trip: QEMU's own estimate of the downtime.
    public static let none = SwitchoverCost()

    /// migpilot's embedded engine on this machine: the stop's and the switch's own terms are the
    /// mean of the two calibrations `scripts/prediction-vs-measurement.py` made for the prediction
    /// tables of 2026-12-04, 19:43 and 20:24 (Benchmarks/README.md), the first since the source
    /// waits for the destination before it stops the guest; they gave fixed 0 and 0, per pending
    /// run 1.75 and 1.60 µs, postcopy fixed 336 µs and 0, per stale run 871 and 678 ns, per
    /// held stale page 0 and 345 ns: the terms are that noisy here. No first touch: the
    /// simulator's passes run at the link's rate, as into populated memory, and a
    /// stop-and-copy's first touches alone would make a fresh destination look slower at the
    /// stop than in the passes before it. A prediction of a fresh destination behind a cap
    /// slower than the first touch (the prediction table, 1 Gbit/s) passes it explicitly.
    /// The moved runs' terms (UFFDIO_MOVE): per run `Benchmarks/stale-drop.sh`'s fit (one
    /// thread), per page and fixed measured in migrations (docs/model.md, "Switchover").
    /// It flushes a capped stop's pending pages ahead and listens ahead (protocol version 5).
    public static let embeddedEngine = SwitchoverCost(
        fixedSeconds: 0, checkSecondsPerPage: 88e-9, secondsPerPendingRun: 1.674e-6, postcopyFixedSeconds: 168e-6, flushesAhead: true, listensAhead: true,
        secondsPerStaleRun: 775e-9,
        secondsPerStalePage: 173e-9, secondsPerMovedRun: 1.07e-6, secondsPerMovedPage: 60e-9, moveFixedSeconds: 3.0e-3, stampBytesPerPage: 8)
}

/// How the destination of a switch to postcopy gets rid of the stale pages it holds: what the
/// embedded engine does and what the what-if simulator prices. A dropped run (MADV_DONTNEED,
/// 1,024 runs to a process_madvise call) costs little a run and frees each page there and
/// then, inside the downtime. A moved run (UFFDIO_MOVE into a scratch region, one call a run,
/// the pages freed later, once the guest runs) costs little a page but more a run, and moving
/// at all costs a few milliseconds more (the scratch region and the kernel's first move).
/// `auto` therefore moves the runs of at least `shortestMovedRun` pages, and only when they
/// hold at least `fewestMovedPages` together; it drops the rest. Measured inside migrations
/// here (Benchmarks/README.md, "The switch's stale pages"): numpy-stencil's 12 runs of 127,000
/// pages 30–33 ms dropped, 9–11.5 ms moved; memcached's 17,000 runs of about two pages 35 ms
/// all moved, 11.7–14.2 ms for the short ones dropped.
public enum StaleRunDrop: String, CaseIterable, Sendable {
    case auto, move, drop

    public static let shortestMovedRun: UInt64 = 64
    public static let fewestMovedPages: UInt64 = 16_384

    /// Which of the stale runs of these lengths (in pages) are moved out; the others are dropped.
    public func moves(runsOf lengths: [UInt64]) -> [Bool] {
        switch self {
        case .move: return lengths.map { _ in true }
        case .drop: return lengths.map { _ in false }
        case .auto:
            let long = lengths.map { $0 >= Self.shortestMovedRun }
            let longPages = zip(lengths, long).reduce(0) { $0 + ($1.1 ? $1.0 : 0) }
            return longPages >= Self.fewestMovedPages ? long : lengths.map { _ in false }
        }
    }
}

import ArgumentParser
import Migration
import WhatIf

/// `whatif`'s model of what a switch costs besides its pages on the wire, one option per term
/// of `SwitchoverCost`; each defaults to migpilot's embedded engine as measured here, and
/// `scripts/prediction-vs-measurement.py` measures them again and passes them.
struct SwitchoverCostOptions: ParsableArguments {
    private static let engine = SwitchoverCost.embeddedEngine

    @Option(help: ArgumentHelp("Either switch: fixed time with the guest stopped (pause, last dirty-log collect, device state); default \(TimeSpan(seconds: engine.fixedSeconds)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var switchoverFixed = TimeSpan(seconds: engine.fixedSeconds)
    @Option(help: ArgumentHelp("Stop-and-copy: time per page the destination holds data in, for its stamp check once its guest runs (in the total time, not the downtime); default \(TimeSpan(seconds: engine.checkSecondsPerPage)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var switchoverCheckPerPage = TimeSpan(seconds: engine.checkSecondsPerPage)
    @Option(help: ArgumentHelp("Stop-and-copy: time per run of pending pages (a frame's own work on both sides, beyond its bytes at the switchover rate); default \(TimeSpan(seconds: engine.secondsPerPendingRun)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var switchoverPerRun = TimeSpan(seconds: engine.secondsPerPendingRun)
    @Option(help: ArgumentHelp("Switch to postcopy: fixed time at the destination (userfaultfd registration, guest start); default \(TimeSpan(seconds: engine.postcopyFixedSeconds)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var postcopySwitchFixed = TimeSpan(seconds: engine.postcopyFixedSeconds)
    @Flag(inversion: .prefixedNo,
          help: "Stop-and-copy under a cap: the pending pages go at the switchover rate just before the guest stops, and the downtime only what it writes meanwhile (migpilot's engine); --no-flush-ahead: every pending page inside the downtime (QEMU; migrate --no-flush-ahead).")
    var flushAhead = engine.flushesAhead
    @Flag(inversion: .prefixedNo,
          help: "Switch to postcopy: the destination drops what is stale before the guest stops, and the downtime only what the guest writes meanwhile (migpilot's engine, protocol version 5: postcopy-listen); --no-postcopy-listen: every stale page inside the downtime (QEMU; a migpilot source of protocol version 4).")
    var postcopyListen = engine.listensAhead
    @Option(help: ArgumentHelp("Switch to postcopy: time per short run of stale pages the destination drops (MADV_DONTNEED, batched); default \(TimeSpan(seconds: engine.secondsPerStaleRun)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var postcopySwitchPerRun = TimeSpan(seconds: engine.secondsPerStaleRun)
    @Option(help: ArgumentHelp("Switch to postcopy: time per stale page of a dropped run the destination holds (freeing it); default \(TimeSpan(seconds: engine.secondsPerStalePage)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var postcopySwitchPerPage = TimeSpan(seconds: engine.secondsPerStalePage)
    @Option(help: ArgumentHelp("Switch to postcopy: time per long run of stale pages the destination moves out (one UFFDIO_MOVE); default \(TimeSpan(seconds: engine.secondsPerMovedRun)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var postcopySwitchPerMovedRun = TimeSpan(seconds: engine.secondsPerMovedRun)
    @Option(help: ArgumentHelp("Switch to postcopy: time per stale page of a moved run the destination holds; default \(TimeSpan(seconds: engine.secondsPerMovedPage)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var postcopySwitchPerMovedPage = TimeSpan(seconds: engine.secondsPerMovedPage)
    @Option(help: ArgumentHelp("Switch to postcopy: fixed time when the destination moves any run out (its scratch region, the first move); default \(TimeSpan(seconds: engine.moveFixedSeconds)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var postcopySwitchMoveFixed = TimeSpan(seconds: engine.moveFixedSeconds)
    @Option(help: ArgumentHelp("Either switch: bytes per guest page of the stamps' table, sent at the switchover rate.",
                               valueName: "bytes"))
    var switchoverStampBytes = engine.stampBytesPerPage
    @Option(help: ArgumentHelp("Stop-and-copy: time per pending data page landing on destination memory not written yet (a fresh destination's first touch, e.g. 6.3us here, behind a link slower than that); default \(TimeSpan(seconds: engine.firstTouchSecondsPerPage)).",
                               valueName: "time"), transform: Parse.timeSpan)
    var switchoverFirstTouch = TimeSpan(seconds: engine.firstTouchSecondsPerPage)

    var cost: SwitchoverCost {
        SwitchoverCost(fixedSeconds: switchoverFixed.seconds, checkSecondsPerPage: switchoverCheckPerPage.seconds,
                       secondsPerPendingRun: switchoverPerRun.seconds, postcopyFixedSeconds: postcopySwitchFixed.seconds,
                       flushesAhead: flushAhead, listensAhead: postcopyListen,
                       secondsPerStaleRun: postcopySwitchPerRun.seconds,
                       secondsPerStalePage: postcopySwitchPerPage.seconds, secondsPerMovedRun: postcopySwitchPerMovedRun.seconds,
                       secondsPerMovedPage: postcopySwitchPerMovedPage.seconds, moveFixedSeconds: postcopySwitchMoveFixed.seconds,
                       stampBytesPerPage: switchoverStampBytes,
                       firstTouchSecondsPerPage: switchoverFirstTouch.seconds)
    }
}

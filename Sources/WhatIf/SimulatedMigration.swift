import Migration
import Traces

/// A migration of a trace's guest over a modelled link, on a virtual clock: the what-if
/// backend. Page-level, with QEMU's mechanics: pass 1 sends every page (a zero page costs only
/// its header); the guest's writes mark a dirty bitmap that a sync turns into the next pass,
/// which goes on from where the last one had got to (a sync before the end of a pass, when a
/// completion is refused, does not send the sender back to page 0), wrapping around;
/// stop-and-copy sends what is pending with the guest stopped; postcopy starts the guest on the
/// destination, pushes the rest in address order and serves a page the guest touches first
/// as a remote fault (a round trip plus its transfer); a broken channel pauses postcopy until
/// a recovery handshake succeeds. The guest runs the trace from `startInterval`, looping, each
/// interval's pages spread evenly over the interval in address order, as the embedded engine's
/// trace replay writes them. The stop-and-copy and the switch to postcopy run at the link's
/// switchover rate, which a bandwidth cap does not limit.
public final class SimulatedMigration: MigrationControl {
    public let workload: TraceWorkload
    public let link: LinkModel

    // Clocks: `time` is the migration's (virtual seconds since start); `guestTime` is how far the
    // guest has run through the trace (it stops during stop-and-copy and slows when throttled).
    private(set) var time = 0.0
    private var guestTime = 0.0
    private let startInterval: Int
    // How far the guest got: `nextInterval` intervals in full, and of the next one the pages of
    // its first `maskCursor` words plus the bits `maskTaken` of the word after (nil counts: not
    // started).
    private var nextInterval = 0
    private var intervalPages: Int?
    private var appliedInInterval = 0
    private var maskCursor = 0
    private var maskTaken: UInt64 = 0

    private(set) var state = MigrationState.none
    private var pass = 0
    /// Pages to send in the current pass (QEMU's migration bitmap), and how far the pass got.
    private var toSend = PageBitmap()
    private var cursor = 0
    /// Pages the guest dirtied since the last sync (QEMU's dirty log).
    private var dirty = PageBitmap()
    /// Pages holding data (nil: all of them); the others cost only a header.
    private var holdsData: PageBitmap?
    /// Pages the destination has received as data: where a page lands on memory not yet
    /// written there, the stop-and-copy pays its first touch.
    private var landed = PageBitmap()
    private var lastSync = 0.0
    private var lastPassDirtyRate = 0.0
    private var thresholdReported = false

    private var downtimeLimit = 0.3
    private var bandwidthCap: Double?
    private var throttlePercent = 0
    private var transferred: Double = 0
    private var debtBytes: Double = 0

    private var events: [MigrationEvent] = []
    private(set) var downtime: Double?
    private(set) var switchTime: Double?
    private(set) var remainingAtSwitch: UInt64?
    private(set) var postcopyDoneTime: Double?
    private(set) var remoteFaults: UInt64 = 0
    private(set) var faultStallSeconds = 0.0
    private(set) var pausedSeconds = 0.0
    private var pausedSince: Double?
    private(set) var recoveries = 0
    private var recoveryAttempts = 0
    private var recoveryAt: Double?
    private var handshakeDoneAt: Double?
    private var failuresStarted = 0
    private(set) var failureReason: String?

    public init(workload: TraceWorkload, link: LinkModel, startInterval: Int = 0) {
        self.workload = workload
        self.link = link
        self.startInterval = workload.intervalCount == 0 ? 0 : startInterval % workload.intervalCount
    }

    var pageCost: Double { Double(workload.pageSize + link.pageHeaderBytes) }
    var zeroCost: Double { Double(link.pageHeaderBytes) }
    /// The table of every page's stamp, sent by either switch.
    var stampBytes: Double { Double(workload.pageCount) * Double(link.switchoverCost.stampBytesPerPage) }
    var bandwidth: Double { min(link.bandwidthBytesPerSecond, bandwidthCap ?? .infinity) }
    /// The final copy's rate: the cap holds precopy's passes back, not the stop.
    var switchoverBandwidth: Double { link.switchoverBytesPerSecond ?? link.bandwidthBytesPerSecond }
    /// Pages that fit the downtime limit at the current bandwidth.
    var thresholdPages: UInt64 { UInt64(max(0, bandwidth * downtimeLimit / pageCost)) }

    // MARK: MigrationControl

    public func start() throws {
        guard state == .none else { throw SimulationError.wrongState("start", state) }
        state = .active
        pass = 1
        toSend = PageBitmap(pages: workload.pageCount)
        toSend.insertAll(below: workload.pageCount)
        dirty = PageBitmap(pages: workload.pageCount)
        landed = PageBitmap(pages: workload.pageCount)
        if let initial = workload.initialData {
            var data = PageBitmap(pages: workload.pageCount)
            data.insert(contentsOf: initial)
            holdsData = data
        }
        events.append(.stateChanged)
    }

    public func nextObservation(within seconds: Double) throws -> Observation {
        let deadline = time + seconds
        while events.isEmpty, !state.isFinished, time < deadline {
            step(until: deadline)
        }
        defer { events.removeAll() }
        return Observation(status: status, events: events, recoveryAttempts: recoveryAttempts)
    }

    public func complete(maxPendingPages: UInt64?) throws -> Bool {
        guard state == .active else { throw SimulationError.wrongState("complete", state) }
        sync()
        if let max = maxPendingPages, toSend.count > max {
            events.append(.completionRefused(pendingPages: toSend.count))
            return false
        }
        // Stop-and-copy: the guest is stopped; everything pending goes with the stamps and the
        // destination's guest runs (the downtime ends). Then the destination checks the pages it
        // holds data in, those it had and those landing now, before its verdict completes the
        // migration. Flushing ahead, what is pending now went just before, and the stop carries
        // what the guest wrote meanwhile.
        let work = link.switchoverCost
        if work.flushesAhead, switchoverBandwidth > bandwidth { flushAhead(work) }
        let pending = burst(of: toSend, work)
        let stop = pending.seconds + stampBytes / switchoverBandwidth + link.roundTripSeconds + work.fixedSeconds
        let check = Double(Int(landed.count) + pending.fresh) * work.checkSecondsPerPage
        transferred += pending.bytes + stampBytes
        toSend.removeAll()
        time += stop + check
        downtime = stop
        state = .completed
        events.append(.stateChanged)
        return true
    }

    /// The stop's burst begun with the guest still running (the engine's flush ahead, when a
    /// cap holds the passes below the switchover rate): what is pending goes at that rate,
    /// priced per page, run and first touch as in the stop, then a round trip (the source
    /// awaits the destination); the guest writes on into the dirty log, which becomes the
    /// stop's pending set.
    private func flushAhead(_ work: SwitchoverCost) {
        let flushed = burst(of: toSend, work)
        let seconds = flushed.seconds + link.roundTripSeconds
        for i in toSend.words.indices where toSend.words[i] != 0 { _ = landed.insert(mask: toSend.words[i] & dataWord(i), inWord: i) }
        transferred += flushed.bytes
        toSend.removeAll()
        time += seconds
        guestTime += seconds * guestSpeed
        catchUpGuest()
        toSend.formUnion(dirty)
        dirty.removeAll()
    }

    public func startPostcopy() throws {
        guard state == .active else { throw SimulationError.wrongState("start-postcopy", state) }
        sync()
        // The guest stops, the source sends the device state with the stamps and the list of
        // pages the destination must discard (16 bytes a run); the destination drops them, run
        // by run, registers userfaultfd and starts. Listening ahead, the list holds only what
        // the guest wrote while the destination dropped the rest.
        let work = link.switchoverCost
        var stale = toSend
        if work.listensAhead {
            let dropped = listen(work)
            stale = dirty
            stale.subtract(dropped)
            toSend.formUnion(dirty)
            dirty.removeAll()
        }
        let runs = stale.runCount
        let bytes = Double(runs * 16) + stampBytes
        let switchover = bytes / switchoverBandwidth + link.roundTripSeconds + work.fixedSeconds + work.postcopyFixedSeconds
            + staleDropSeconds(stale, work)
        transferred += bytes
        time += switchover
        downtime = switchover
        switchTime = time
        remainingAtSwitch = toSend.count
        cursor = 0
        state = .postcopyActive
        // The destination's guest goes on from the start of the interval the source's was in
        // (the device state says which interval, not how far into it).
        guestTime = Double(nextInterval) * workload.intervalSeconds
        restartInterval()
        events.append(.stateChanged)
        if toSend.count == 0 { finishPostcopy() }
    }

    /// The switch's first half when the engine listens ahead (`postcopy-listen`): the stale
    /// pages known now go to the destination (16 bytes a run), which registers userfaultfd and
    /// drops them while the guest runs on here, writing into the dirty log. Returns the pages
    /// dropped.
    private func listen(_ work: SwitchoverCost) -> PageBitmap {
        let dropped = toSend
        let bytes = Double(dropped.runCount * 16)
        let seconds = bytes / switchoverBandwidth + link.roundTripSeconds + staleDropSeconds(dropped, work)
        landed.subtract(dropped)
        transferred += bytes
        time += seconds
        guestTime += seconds * guestSpeed
        catchUpGuest()
        return dropped
    }

    public func setDowntimeLimit(seconds: Double) throws { downtimeLimit = seconds }
    public func setBandwidth(bytesPerSecond: Double?) throws { bandwidthCap = bytesPerSecond }
    public func throttle(percent: Int) throws { throttlePercent = max(0, min(99, percent)) }

    public func pause() throws {
        guard state == .postcopyActive else { throw SimulationError.wrongState("pause", state) }
        enterPaused(.channelBroken(reason: "paused on request"))
    }

    public func recover(uri: String, after seconds: Double) throws {
        guard state == .postcopyPaused else { throw SimulationError.wrongState("recover", state) }
        recoveryAt = time + max(0, seconds)
    }

    public func cancel(reason: String) throws {
        guard !state.isPostcopy else { throw SimulationError.wrongState("cancel", state) }  // postcopy cannot go back
        state = .cancelled
        failureReason = reason
        events.append(.stateChanged)
    }

    public var status: MigrationStatus {
        let since = link.dirtyCounts == .exact
            ? (pages: dirty.count, seconds: time - lastSync)
            : DirtyCountVisibility.derived(pass: pass, rate: lastPassDirtyRate, secondsSinceSync: time - lastSync, totalPages: workload.pageCount)
        return MigrationStatus(
            state: state, elapsedSeconds: time, pass: pass, pageSize: workload.pageSize, totalPages: workload.pageCount,
            remainingPages: toSend.count, transferredBytes: UInt64(transferred), dirtyPagesSinceSync: since.pages,
            secondsSinceSync: since.seconds, dirtyPagesRate: lastPassDirtyRate, bandwidthBytesPerSecond: bandwidth,
            expectedDowntimeSeconds: Double(toSend.count) * pageCost / bandwidth, downtimeLimitSeconds: downtimeLimit,
            postcopyRequests: remoteFaults, downtimeSeconds: downtime)
    }

    // MARK: the clock

    /// Advances to the earliest of: `deadline`, a failure starting or ending, a scheduled
    /// recovery step — or earlier, when a pass ends, what is pending crosses the downtime
    /// threshold, or postcopy finishes. In postcopy in slices of at most `faultSlice`, so that
    /// the guest's touches and the push interleave as they do in time.
    private func step(until deadline: Double) {
        var next = deadline
        if state.isPostcopy { next = min(next, time + Self.faultSlice) }
        for f in link.failures {
            if f.atSeconds > time { next = min(next, f.atSeconds) }
            if f.endSeconds > time { next = min(next, f.endSeconds) }
        }
        if let r = recoveryAt { next = min(next, r) }
        if let h = handshakeDoneAt { next = min(next, h) }
        next = max(next, time)

        let (used, ended) = transfer(seconds: next - time)
        guestTime += used * guestSpeed
        time += used
        catchUpGuest()
        switch ended {
        case .passEnded:
            sync()
            events.append(.passCompleted)
            checkThreshold()
        case .belowThreshold:
            thresholdReported = true
            events.append(.pendingBelowThreshold)
        case .allSent:
            if state == .postcopyActive { finishPostcopy() }
        case nil:
            handleChannel()
        }
    }

    static let faultSlice = 0.01

    private var guestSpeed: Double {
        switch state {
        case .none, .setup, .active, .postcopyActive, .postcopyPaused, .postcopyRecover: 1 - Double(throttlePercent) / 100
        default: 0
        }
    }

    private enum TransferEnd { case passEnded, belowThreshold, allSent }

    /// Sends for up to `seconds`; returns the time used (less when a transfer event happened)
    /// and that event.
    private func transfer(seconds: Double) -> (Double, TransferEnd?) {
        guard seconds > 0, !link.isDown(at: time) else { return (seconds, nil) }
        switch state {
        case .active:
            var budget = bandwidth * seconds - debtBytes
            debtBytes = 0
            let stopAt = thresholdReported ? nil : thresholdPages
            let spent = send(budget: &budget, stopAtRemaining: stopAt)
            if toSend.count == 0 { return (spent / bandwidth, .passEnded) }
            if let stopAt, toSend.count <= stopAt { return (spent / bandwidth, .belowThreshold) }
            return (seconds, nil)
        case .postcopyActive:
            // Faulted pages go first; a burst of them larger than one step is carried over the
            // next steps, and postcopy ends only once the link has carried the last one.
            let capacity = bandwidth * seconds
            let paid = min(debtBytes, capacity)
            debtBytes -= paid
            var budget = capacity - paid
            if debtBytes > 0 { return (seconds, nil) }
            let spent = budget > 0 ? send(budget: &budget, stopAtRemaining: nil) : 0
            if toSend.count == 0 { return ((paid + spent) / bandwidth, .allSent) }
            return (seconds, nil)
        default:
            return (seconds, nil)
        }
    }

    /// Sends pages of `toSend` in address order from the cursor while the budget lasts (and,
    /// with `stopAtRemaining`, until only that many remain). Returns the bytes spent.
    private func send(budget: inout Double, stopAtRemaining: UInt64?) -> Double {
        var spent = 0.0
        let words = toSend.words.count
        // Moved out for the loop and back (as in `apply`): a class property written per word
        // pays a dynamic exclusivity check each time.
        var landed = PageBitmap()
        swap(&landed, &self.landed)
        defer { swap(&landed, &self.landed) }
        let floor = stopAtRemaining ?? 0
        while budget > 0, toSend.count > floor {
            if cursor >= words { cursor = 0 }  // wraps around to what was dirtied behind it
            let word = toSend.words[cursor]
            if word == 0 { cursor += 1; continue }
            let data = dataWord(cursor)
            let n = UInt64(word.nonzeroBitCount)
            let wordCost = Double((word & data).nonzeroBitCount) * pageCost + Double((word & ~data).nonzeroBitCount) * zeroCost
            if wordCost <= budget, toSend.count - n >= floor {
                toSend.remove(mask: word, inWord: cursor)
                _ = landed.insert(mask: word & data, inWord: cursor)
                budget -= wordCost
                spent += wordCost
                cursor += 1
                continue
            }
            // Page by page within the word.
            var w = word
            while w != 0, budget > 0, toSend.count > floor {
                let bit = UInt64(w.trailingZeroBitCount)
                let mask: UInt64 = 1 << bit
                let c = data & mask != 0 ? pageCost : zeroCost
                if c > budget { budget = 0; break }
                toSend.remove(mask: mask, inWord: cursor)
                _ = landed.insert(mask: mask & data, inWord: cursor)
                budget -= c
                spent += c
                w &= ~mask
            }
            if w == 0 { cursor += 1 }
        }
        transferred += spent
        return spent
    }

    private func sync() {
        let elapsed = time - lastSync
        if elapsed > 0 { lastPassDirtyRate = Double(dirty.count) / elapsed }
        toSend.formUnion(dirty)
        dirty.removeAll()
        lastSync = time
        pass += 1
        thresholdReported = false
    }

    private func checkThreshold() {
        if toSend.count <= thresholdPages {
            thresholdReported = true
            events.append(.pendingBelowThreshold)
        }
    }

    /// Applies what the guest wrote (in postcopy: touched) up to `guestTime`: the intervals
    /// before the current one in full, and of the current one the share due by now — its pages
    /// in address order at an even rate, the order and pace of the engine's replay. A sync
    /// then finds what a running guest would have dirtied by that moment, not whole intervals
    /// landing at their ends.
    private func catchUpGuest() {
        guard workload.intervalCount > 0 else { return }
        while true {
            let fraction = (guestTime - Double(nextInterval) * workload.intervalSeconds) / workload.intervalSeconds
            guard fraction > 0 else { return }
            let index = (startInterval + nextInterval) % workload.intervalCount
            let masks = state.isPostcopy ? workload.touches(index) : workload.writes(index)
            let pages = intervalPages ?? masks.reduce(0) { $0 + $1.mask.nonzeroBitCount }
            intervalPages = pages
            let whole = fraction >= 1 - 1e-9
            let due = whole ? pages : min(pages, Int((Double(pages) * fraction).rounded(.up)))
            let before = guestTime
            apply(masks, pages: due - appliedInInterval)
            if guestTime < before { continue }  // stopped on a fault: where it is now says what is due
            guard whole else { return }
            nextInterval += 1
            restartInterval()
        }
    }

    private func restartInterval() {
        intervalPages = nil
        appliedInInterval = 0
        maskCursor = 0
        maskTaken = 0
    }

    /// The next `pages` pages of the current interval's `masks`, lowest page first. In
    /// precopy the dirty log and the data bitmap are moved out into locals for the loop and
    /// back after it: written in place as properties of this class, every word paid a dynamic
    /// exclusivity check (a fifth of `tune`'s time in a profile).
    private func apply(_ masks: [WordMask], pages: Int) {
        switch state {
        case .active, .setup, .none:
            var log = PageBitmap(), data: PageBitmap?
            swap(&log, &dirty)
            swap(&data, &holdsData)
            take(pages, of: masks) { w in
                log.insert(mask: w.mask, inWord: Int(w.index))
                data?.insert(mask: w.mask, inWord: Int(w.index))
            }
            swap(&log, &dirty)
            swap(&data, &holdsData)
        case .postcopyActive, .postcopyPaused, .postcopyRecover:
            // A vCPU (the engine's replay thread, the QEMU test guest's one vCPU) stops at a
            // missing page until it has come, a round trip and its transfer, and touches
            // nothing meanwhile: the guest's clock loses that wait, and the word that faulted
            // is the last it gets to now.
            let before = faultStallSeconds
            take(pages, of: masks, until: { self.faultStallSeconds > before }) { fault($0) }
            guestTime -= faultStallSeconds - before
        default:
            take(pages, of: masks) { _ in }  // the guest is stopped: only its place in the trace moves
        }
    }

    /// Hands the next `pages` pages of `masks` to `wrote`, a word at a time, and moves the
    /// interval's cursor past them (kept in locals during the loop, for the same reason).
    private func take(_ pages: Int, of masks: [WordMask], until stop: () -> Bool = { false }, _ wrote: (WordMask) -> Void) {
        var left = pages
        var cursor = maskCursor, taken = maskTaken, applied = appliedInInterval
        while left > 0, cursor < masks.count, !stop() {
            let w = masks[cursor]
            var open = w.mask & ~taken
            var take: UInt64
            if open.nonzeroBitCount <= left {
                take = open
                cursor += 1
                taken = 0
            } else {
                take = 0
                for _ in 0..<left {
                    take |= open & (~open &+ 1)
                    open &= open &- 1
                }
                taken |= take
            }
            left -= take.nonzeroBitCount
            applied += take.nonzeroBitCount
            wrote(WordMask(index: w.index, mask: take))
        }
        maskCursor = cursor
        maskTaken = taken
        appliedInInterval = applied
    }

    /// The guest on the destination touched these pages (one word's worth, so that no array
    /// is built per word the guest touches): those not there yet are requested.
    private func fault(_ w: WordMask) {
        let index = Int(w.index)
        guard index < toSend.words.count else { return }
        let hit = toSend.words[index] & w.mask
        guard hit != 0 else { return }
        let data = dataWord(index)
        let n = UInt64(hit.nonzeroBitCount)
        let bytes = Double((hit & data).nonzeroBitCount) * pageCost + Double((hit & ~data).nonzeroBitCount) * zeroCost
        toSend.remove(mask: hit, inWord: index)
        remoteFaults += n
        transferred += bytes
        debtBytes += bytes
        // A paused channel answers nothing: the faulting vCPU waits for the recovery.
        faultStallSeconds += Double(n) * link.roundTripSeconds + bytes / bandwidth
    }

    private func finishPostcopy() {
        guard state.isPostcopy else { return }
        postcopyDoneTime = time
        state = .completed
        events.append(.stateChanged)
    }

    private func enterPaused(_ event: MigrationEvent) {
        state = .postcopyPaused
        if pausedSince == nil { pausedSince = time }
        handshakeDoneAt = nil
        events.append(event)
    }

    /// Failures starting, recovery attempts and handshakes at the current time.
    private func handleChannel() {
        let started = link.failures.filter { $0.atSeconds <= time }.count
        if started > failuresStarted {
            failuresStarted = started
            switch state {
            case .active, .setup:
                state = .failed
                failureReason = "the channel broke at \(time) s during precopy; the guest keeps running on the source"
                events.append(.channelBroken(reason: "link down"))
            case .postcopyActive:
                recoveryAttempts = 0
                enterPaused(.channelBroken(reason: "link down"))
            case .postcopyRecover:
                enterPaused(.recoveryFailed(reason: "the channel broke during the recovery handshake"))
            default:
                break
            }
        }
        if let at = recoveryAt, time >= at, state == .postcopyPaused {
            recoveryAt = nil
            recoveryAttempts += 1
            if link.isDown(at: time) {
                events.append(.recoveryFailed(reason: "the channel is still down"))
            } else {
                // Connect, the destination's received bitmap (a bit a page), resume and its ack.
                state = .postcopyRecover
                handshakeDoneAt = time + 2 * link.roundTripSeconds + Double(workload.pageCount / 8) / bandwidth
            }
        }
        if let done = handshakeDoneAt, time >= done, state == .postcopyRecover {
            handshakeDoneAt = nil
            state = .postcopyActive
            recoveries += 1
            if let since = pausedSince { pausedSeconds += time - since }
            pausedSince = nil
            events.append(.recovered)
            if toSend.count == 0 { finishPostcopy() }
        }
    }

    /// Sending `set` at the switchover rate, as a stop-and-copy (or its flush ahead) does: its
    /// bytes, its data pages the destination has not received yet, and the seconds, the runs'
    /// own work and those pages' first touches included.
    private func burst(of set: PageBitmap, _ work: SwitchoverCost) -> (bytes: Double, fresh: Int, seconds: Double) {
        let bytes = cost(of: set), fresh = freshDataPages(in: set)
        return (bytes, fresh, bytes / switchoverBandwidth + Double(fresh) * work.firstTouchSecondsPerPage + Double(set.runCount) * work.secondsPerPendingRun)
    }

    /// Data pages of `set` the destination has not received yet.
    private func freshDataPages(in set: PageBitmap) -> Int {
        var pages = 0
        for i in set.words.indices where set.words[i] != 0 {
            pages += (set.words[i] & dataWord(i) & ~landedWord(i)).nonzeroBitCount
        }
        return pages
    }

    /// The destination's drop of the stale set `set` at the switch, run by run as the engine
    /// does it (`StaleRunDrop.auto`): the long runs moved out (a fixed cost once, then per run
    /// and per page), the others dropped, each paying per page only for the pages the
    /// destination holds.
    private func staleDropSeconds(_ set: PageBitmap, _ work: SwitchoverCost) -> Double {
        var runs = set
        let stale = runs.ranges(clearing: true)
        let moves = StaleRunDrop.auto.moves(runsOf: stale.map(\.count))
        var seconds = moves.contains(true) ? work.moveFixedSeconds : 0
        for (run, moved) in zip(stale, moves) {
            let held = Double(landed.count(in: run))
            seconds += moved ? work.secondsPerMovedRun + held * work.secondsPerMovedPage
                             : work.secondsPerStaleRun + held * work.secondsPerStalePage
        }
        return seconds
    }

    private func landedWord(_ i: Int) -> UInt64 { i < landed.words.count ? landed.words[i] : 0 }

    /// Word `i` of the pages holding data (all of them when the trace does not say).
    private func dataWord(_ i: Int) -> UInt64 { holdsData.map { i < $0.words.count ? $0.words[i] : 0 } ?? ~0 }

    private func cost(of set: PageBitmap) -> Double {
        guard let data = holdsData else { return Double(set.count) * pageCost }
        var dataPages = 0
        for i in set.words.indices where set.words[i] != 0 {
            dataPages += (set.words[i] & (i < data.words.count ? data.words[i] : 0)).nonzeroBitCount
        }
        return Double(dataPages) * pageCost + Double(Int(set.count) - dataPages) * zeroCost
    }
}

/// A simulated backend refusing a command, as QEMU would in that state.
public enum SimulationError: Error, CustomStringConvertible, Equatable {
    case wrongState(String, MigrationState)
    public var description: String {
        switch self {
        case let .wrongState(command, state): "'\(command)' is not allowed in state '\(state.rawValue)'"
        }
    }
}

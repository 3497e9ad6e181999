import Traces
import Transport

/// What the destination of a migration received, and its verdict.
public struct DestinationReport: Sendable {
    public var pagesReceived: UInt64
    public var verified: Bool
    public var detail: String
    /// The migration went through postcopy.
    public var postcopy: Bool
    /// Distinct pages the guest faulted on here before they had arrived (postcopy).
    public var remoteFaults: UInt64
}

/// The destination side of a migration over any `ByteChannel`. Every frame is checked against
/// `StreamReceiverState` before a byte of it reaches guest memory. In precopy pages are copied
/// in; at the switch to postcopy the stale pages are dropped, the region is handed to
/// userfaultfd (`PostcopyFaults`) and the guest starts here from the source's device state
/// and stamps, faulting in what has not arrived; at `complete` every page's stamp is checked
/// against the source's final stamps (or, after postcopy, the guest's own newer writes) and
/// the verdict goes back in `complete-ack`. With workloads, the guest runs on here afterwards.
public final class MigrationDestination: @unchecked Sendable {
    // @unchecked: used by the thread that calls `run`; the fault thread only calls `send`,
    // which is serialised by `sendLock`.
    public let memory: GuestMemory
    public let workloads: [GuestWorkload]
    /// The guest that runs here after the switch or the completion (nil without workloads).
    public private(set) var guest: Guest?
    private let sendLock = Monitor()

    public init(memory: GuestMemory, workloads: [GuestWorkload] = []) {
        self.memory = memory
        self.workloads = workloads
    }

    public func run(channel: any ByteChannel) throws -> DestinationReport {
        let connection = StreamConnection(channel: channel)
        var state = StreamReceiverState()
        var received: UInt64 = 0
        var progress: [UInt64]?
        var stamps: [UInt64]?
        var stampsArrived: UInt64 = 0
        var faults: PostcopyFaults?
        var installFailure: (any Error)?
        let pageSize = memory.pageSize
        let base = memory.base
        defer { faults?.stop() }
        while let message = try connection.receive(pages: { start, count, zero, data throws(StreamError) in
            // The state machine first: a run it refuses never touches guest memory.
            try state.accept(.pages(start: start, count: count, zero: zero, bytes: []))
            received += UInt64(count)
            if let faults {
                // Postcopy: only into missing pages, through userfaultfd (a write here would
                // fault on our own region).
                do { try faults.install(start: start, count: UInt64(count), data: zero ? nil : data) } catch { installFailure = installFailure ?? error }
                return
            }
            let at = base + Int(start) * pageSize
            if zero { at.initializeMemory(as: UInt8.self, repeating: 0, count: Int(count) * pageSize) } else { at.copyMemory(from: data.baseAddress!, byteCount: data.count) }
        }) {
            if let installFailure { throw installFailure }
            if let failure = faults?.failure { throw failure }
            if case .pages = message { continue }  // accepted and written above
            try state.accept(message)
            switch message {
            case let .hello(version, _, pageCount, _):
                guard pageCount == memory.pageCount, Int(state.pageSize) == pageSize else {
                    let reason = "the source's guest has \(pageCount) pages of \(state.pageSize) bytes; this one \(memory.pageCount) of \(pageSize)"
                    try? send(.abort(reason: reason), connection)
                    throw StreamError(.malformedPayload, reason)
                }
                try reply(.helloAck(version: version), &state, connection)
            case let .deviceState(p):
                progress = p
            case let .stamps(start, sequences):
                if stamps == nil { stamps = Array(repeating: 0, count: Int(memory.pageCount)) }
                stamps!.replaceSubrange(Int(start)..<Int(start) + sequences.count, with: sequences)
                stampsArrived += UInt64(sequences.count)
            case let .postcopyStart(discard):
                let snapshot = try snapshot(progress: progress, stamps: stamps, arrived: stampsArrived)
                let sendLock = sendLock
                let pageFaults = try PostcopyFaults(memory: memory, stale: discard) { [connection] ranges in
                    try sendLock.locked { () throws in
                        try connection.send(.pageRequest(ranges))
                        try connection.flush()
                    }
                }
                try pageFaults.start()
                faults = pageFaults
                try startGuest(snapshot)
                try reply(.postcopyStartAck, &state, connection)
            case .complete:
                faults?.stop()
                let (verified, detail) = verify(stamps: stamps, arrived: stampsArrived, missing: faults?.missingPages ?? 0)
                try reply(.completeAck(verified: verified, detail: detail), &state, connection)
                if faults == nil, verified { try startGuest(try snapshot(progress: progress, stamps: stamps, arrived: stampsArrived)) }
                return DestinationReport(pagesReceived: received, verified: verified, detail: detail, postcopy: faults != nil,
                                         remoteFaults: faults?.remoteFaults ?? 0)
            case .abort(let reason):
                throw StreamError(.peerAborted, reason)
            default:
                break
            }
        }
        throw StreamError(.truncated, "the source closed the stream before completing (state \(state.state))")
    }

    /// The source's device state and stamps as a snapshot to start the guest from; nil when
    /// this destination runs no workloads.
    private func snapshot(progress: [UInt64]?, stamps: [UInt64]?, arrived: UInt64) throws -> GuestSnapshot? {
        guard !workloads.isEmpty else { return nil }
        guard let progress, let stamps, arrived >= memory.pageCount else {
            throw EngineError("the source sent no device state and stamps (an older protocol): this destination cannot run its workloads")
        }
        return GuestSnapshot(progress: progress, sequences: stamps)
    }

    private func startGuest(_ snapshot: GuestSnapshot?) throws {
        guard let snapshot else { return }
        let guest = try Guest(memory: memory, workloads: workloads, resuming: snapshot)
        try guest.start()
        self.guest = guest
    }

    /// Every page's stamp against the source's final stamps — after postcopy, against the
    /// guest's own table, which started from them and has every write made here since. Without
    /// stamps (a version 2 source) only the stamps' integrity can be checked.
    private func verify(stamps: [UInt64]?, arrived: UInt64, missing: UInt64) -> (Bool, String) {
        if missing > 0 { return (false, "the source completed with \(missing) pages never sent") }
        let bad: [UInt64]
        var what = "checked against the source's final stamps"
        if let guest {
            guest.pause()
            defer { guest.resume() }
            bad = guest.mismatches(in: memory)
            what = "checked against the source's stamps and the writes made here since"
        } else if let stamps, arrived >= memory.pageCount {
            bad = Guest.mismatches(in: memory, expected: stamps)
        } else {
            bad = (0..<memory.pageCount).filter { PageStamp.read(from: memory.pointer(page: $0)) == .corrupt }
            what = "stamps intact (the source sent no final stamps)"
        }
        guard let first = bad.first else { return (true, "\(memory.pageCount) pages, \(what)") }
        let found: String
        switch PageStamp.read(from: memory.pointer(page: first)) {
        case .unstamped: found = "no stamp"
        case .stamped(let s): found = "stamp (page \(s.page), sequence \(s.sequence))"
        case .corrupt: found = "a damaged stamp"
        }
        let wanted = guest.map { $0.lastSequence(page: first) } ?? stamps.map { $0[Int(first)] }
        return (false, "\(bad.count) of \(memory.pageCount) pages do not hold their latest write; the first, page \(first), has \(found)"
                + (wanted.map { ", expected sequence \($0)" } ?? ""))
    }

    private func send(_ message: StreamMessage, _ connection: StreamConnection) throws {
        try sendLock.locked { () throws in
            try connection.send(message)
            try connection.flush()
        }
    }

    private func reply(_ message: StreamMessage, _ state: inout StreamReceiverState, _ connection: StreamConnection) throws {
        try state.send(message)
        try send(message, connection)
    }
}

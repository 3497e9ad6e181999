import Traces
import Transport

/// What a precopy migration did, as the source measured it.
public struct PrecopyReport: Sendable {
    /// Pages sent in each pass (pass 1 first); the last entry is the stop-and-copy.
    public var pagesPerPass: [UInt64]
    public var bytesSent: UInt64
    public var totalSeconds: Double
    /// From the guest's stop on the source to the destination's acknowledgement.
    public var downtimeSeconds: Double
    /// The destination's own check of the pages it holds.
    public var destinationVerified: Bool
    public var destinationDetail: String
}

/// The source side of a precopy migration over a byte channel: pass 1 sends every page (zero
/// pages as a flag), each next pass what the dirty tracker saw written, and once a pass would
/// send at most `stopAtPages` pages the guest is paused at a safe point and the rest goes in a
/// stop-and-copy. The tracker must have been started before the guest's first write that
/// matters — in practice before pass 1.
public final class PrecopySource {
    public let guest: Guest
    private let tracker: any DirtyTracker
    private let connection: StreamConnection

    public init(guest: Guest, tracker: any DirtyTracker, channel: any ByteChannel) {
        self.guest = guest
        self.tracker = tracker
        connection = StreamConnection(channel: channel, pageSize: UInt32(guest.memory.pageSize))
    }

    public func run(stopAtPages: UInt64, maxPasses: Int = 30) throws -> PrecopyReport {
        let start = Sys.monotonicNanoseconds()
        let memory = guest.memory
        var state = StreamSenderState()
        try exchange(&state, .hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount, features: []))
        guard case .helloAck = try expect(&state) else { throw StreamError(.unexpectedMessage, "expected hello-ack") }

        var perPass: [UInt64] = []
        var ranges = [PageRange(start: 0, count: memory.pageCount)]
        var pass: UInt32 = 1
        while true {
            try exchange(&state, .passStart(pass: pass))
            let sent = try sendPages(ranges, state: &state)
            try exchange(&state, .passEnd(pass: pass, pagesSent: sent))
            try connection.flush()
            perPass.append(sent)
            ranges = try tracker.collect()
            if ranges.pageCount <= stopAtPages || perPass.count >= maxPasses { break }
            pass += 1
        }

        // Stop-and-copy: writers parked at a safe point, then whatever they wrote since.
        let stop = Sys.monotonicNanoseconds()
        guest.pause()
        ranges.append(contentsOf: try tracker.collect())
        var final = PageBitmap(pages: memory.pageCount)
        final.insert(contentsOf: ranges)
        try exchange(&state, .stopAndCopy)
        perPass.append(try sendPages(final.ranges(clearing: true), state: &state))
        try exchange(&state, .complete)
        try connection.flush()
        guard case let .completeAck(verified, detail) = try expect(&state) else { throw StreamError(.unexpectedMessage, "expected complete-ack") }
        let end = Sys.monotonicNanoseconds()
        return PrecopyReport(pagesPerPass: perPass, bytesSent: connection.bytesSent, totalSeconds: Double(end - start) / 1e9,
                             downtimeSeconds: Double(end - stop) / 1e9, destinationVerified: verified, destinationDetail: detail)
    }

    private func sendPages(_ ranges: [PageRange], state: inout StreamSenderState) throws -> UInt64 {
        let guestBytes = UnsafeRawBufferPointer(start: guest.memory.base, count: guest.memory.byteCount)
        var pages: UInt64 = 0
        for r in ranges {
            try connection.encoder.appendRange(r, of: guestBytes)
            pages += r.count
            try connection.flushIfFull()
        }
        return pages
    }

    /// Checks a message against the source's state machine, then sends it.
    private func exchange(_ state: inout StreamSenderState, _ message: StreamMessage) throws {
        try state.send(message)
        try connection.send(message)
    }

    private func expect(_ state: inout StreamSenderState) throws -> StreamMessage {
        try connection.flush()
        guard let message = try connection.receive() else { throw StreamError(.truncated, "the destination closed the stream") }
        try state.receive(message)
        return message
    }
}

/// What the destination of a precopy migration received.
public struct DestinationReport: Sendable {
    public var pagesReceived: UInt64
    public var verified: Bool
    public var detail: String
}

/// The destination side: pages are checked against the receiver's state machine before any
/// byte reaches guest memory; at `complete` every page's stamp is checked (a corrupt stamp
/// fails the run) and the result goes back in `complete-ack`.
public final class PrecopyDestination {
    public let memory: GuestMemory

    public init(memory: GuestMemory) { self.memory = memory }

    public func run(channel: any ByteChannel) throws -> DestinationReport {
        let connection = StreamConnection(channel: channel)
        var state = StreamReceiverState()
        var received: UInt64 = 0
        let pageSize = memory.pageSize
        let base = memory.base
        while let message = try connection.receive(pages: { start, count, zero, data throws(StreamError) in
            // The state machine first: a run it refuses never touches guest memory.
            try state.accept(.pages(start: start, count: count, zero: zero, bytes: []))
            let at = base + Int(start) * pageSize
            if zero { at.initializeMemory(as: UInt8.self, repeating: 0, count: Int(count) * pageSize) } else { at.copyMemory(from: data.baseAddress!, byteCount: data.count) }
            received += UInt64(count)
        }) {
            if case .pages = message { continue }  // accepted and written above
            try state.accept(message)
            switch message {
            case let .hello(version, _, pageCount, _):
                guard pageCount == memory.pageCount, Int(state.pageSize) == pageSize else {
                    let reason = "the source's guest has \(pageCount) pages of \(state.pageSize) bytes; this one \(memory.pageCount) of \(pageSize)"
                    try? connection.send(.abort(reason: reason))
                    try? connection.flush()
                    throw StreamError(.malformedPayload, reason)
                }
                try reply(.helloAck(version: version), &state, connection)
            case .complete:
                let corrupt = (0..<memory.pageCount).filter { PageStamp.read(from: memory.pointer(page: $0)) == .corrupt }
                let detail = corrupt.isEmpty ? "\(memory.pageCount) pages, every stamp intact" : "\(corrupt.count) pages with a damaged stamp, the first page \(corrupt[0])"
                try reply(.completeAck(verified: corrupt.isEmpty, detail: detail), &state, connection)
                return DestinationReport(pagesReceived: received, verified: corrupt.isEmpty, detail: detail)
            case .abort(let reason):
                throw StreamError(.peerAborted, reason)
            default:
                break
            }
        }
        throw StreamError(.truncated, "the source closed the stream before completing (state \(state.state))")
    }

    private func reply(_ message: StreamMessage, _ state: inout StreamReceiverState, _ connection: StreamConnection) throws {
        try state.send(message)
        try connection.send(message)
        try connection.flush()
    }
}

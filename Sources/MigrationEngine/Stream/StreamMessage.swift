import Traces

/// Every message the migration stream carries: a closed set (docs/stream-format.md). Source →
/// destination unless marked "return path" (destination → source).
public enum StreamMessage: Equatable, Sendable {
    /// First message of every connection: the source's protocol version and the guest's shape.
    case hello(version: UInt16, pageSize: UInt32, pageCount: UInt64, features: StreamFeatures)
    /// Return path: the destination accepts `version` (always the one offered).
    case helloAck(version: UInt16)
    /// `count` consecutive pages from `start`; `bytes` holds count × pageSize bytes, or nothing
    /// when `zero` (every page of the run is all zeros).
    case pages(start: UInt64, count: UInt32, zero: Bool, bytes: [UInt8])
    /// Precopy pass `pass` begins (1, 2, …).
    case passStart(pass: UInt32)
    /// Precopy pass `pass` ends after `pagesSent` pages (zero runs included).
    case passEnd(pass: UInt32, pagesSent: UInt64)
    /// The source has stopped the guest; what follows is the final copy (or postcopy).
    case stopAndCopy
    /// Stopped copy (version 3): how far each of the guest's workloads had got when the source
    /// stopped it — what QEMU calls device state; the destination's guest goes on from there.
    case deviceState(progress: [UInt64])
    /// Stopped copy (version 3): the last write sequence of pages `start ..< start + count` on
    /// the stopped source, what the destination verifies against and its guest continues from.
    case stamps(start: UInt64, sequences: [UInt64])
    /// The source has sent everything; the destination must verify and answer `completeAck`.
    case complete
    /// Return path (version 4): after a stopped copy's `complete`, the destination's guest
    /// runs; the downtime ends here, and the verdict follows in `completeAck`.
    case guestRunning
    /// Return path: the destination's verdict on the whole guest, with a one-line detail.
    case completeAck(verified: Bool, detail: String)
    /// Version 5, the guest still running on the source, no pass open: the switch to postcopy
    /// begins. The destination drops the stale pages `discard` (the rest of the pass and what
    /// the guest wrote since the last sync), registers its memory for missing faults and takes
    /// no more precopy pages; it answers `postcopyListenAck`. Only what the guest writes after
    /// this is left for `postcopyStart`'s list, inside the downtime.
    case postcopyListen(discard: [PageRange])
    /// Return path (version 5): the stale pages are gone and the destination listens.
    case postcopyListenAck
    /// The destination runs the guest from now on; `discard` are pages it holds that are stale
    /// (after `postcopyListen`: those written since).
    case postcopyStart(discard: [PageRange])
    /// Return path: the destination runs the guest.
    case postcopyStartAck
    /// Return path: the guest faulted on these pages; send them first.
    case pageRequest([PageRange])
    /// Return path (recovery): the pages the destination holds, in answer to `resume`.
    case receivedBitmap([PageRange])
    /// Recovery: on a new connection after a break in postcopy, the source asks to go on.
    case resume
    /// Return path: the destination goes on (after its `receivedBitmap`).
    case resumeAck
    /// Watchdog (version 2): either side asks for a `pong` with the same nonce.
    case ping(nonce: UInt64)
    case pong(nonce: UInt64)
    /// Either side gives up; the stream ends.
    case abort(reason: String)

    /// The type byte of the frame that carries this message.
    public var type: StreamMessageType {
        switch self {
        case .hello: .hello
        case .helloAck: .helloAck
        case .pages: .pages
        case .passStart: .passStart
        case .passEnd: .passEnd
        case .stopAndCopy: .stopAndCopy
        case .complete: .complete
        case .completeAck: .completeAck
        case .postcopyStart: .postcopyStart
        case .postcopyStartAck: .postcopyStartAck
        case .pageRequest: .pageRequest
        case .receivedBitmap: .receivedBitmap
        case .resume: .resume
        case .resumeAck: .resumeAck
        case .ping: .ping
        case .pong: .pong
        case .abort: .abort
        case .deviceState: .deviceState
        case .stamps: .stamps
        case .guestRunning: .guestRunning
        case .postcopyListen: .postcopyListen
        case .postcopyListenAck: .postcopyListenAck
        }
    }
}

/// The frame type byte of each message. Values are fixed forever; a new message gets a new value
/// and a new protocol version.
public enum StreamMessageType: UInt8, CaseIterable, Sendable, CustomStringConvertible {
    case hello = 1, helloAck, pages, passStart, passEnd, stopAndCopy, complete, completeAck,
         postcopyStart, postcopyStartAck, pageRequest, receivedBitmap, resume, resumeAck,
         ping, pong, abort, deviceState, stamps, guestRunning, postcopyListen, postcopyListenAck

    /// The first protocol version that has this message (version 1 lacks the watchdog, version
    /// 2 the device state and stamps, version 3 the destination's word that its guest runs,
    /// version 4 the switch to postcopy begun before the guest stops).
    public var since: UInt16 {
        switch self {
        case .ping, .pong: 2
        case .deviceState, .stamps: 3
        case .guestRunning: 4
        case .postcopyListen, .postcopyListenAck: 5
        default: 1
        }
    }

    public var description: String {
        switch self {
        case .hello: "hello"
        case .helloAck: "hello-ack"
        case .pages: "pages"
        case .passStart: "pass-start"
        case .passEnd: "pass-end"
        case .stopAndCopy: "stop-and-copy"
        case .complete: "complete"
        case .completeAck: "complete-ack"
        case .postcopyStart: "postcopy-start"
        case .postcopyStartAck: "postcopy-start-ack"
        case .pageRequest: "page-request"
        case .receivedBitmap: "received-bitmap"
        case .resume: "resume"
        case .resumeAck: "resume-ack"
        case .ping: "ping"
        case .pong: "pong"
        case .abort: "abort"
        case .deviceState: "device-state"
        case .stamps: "stamps"
        case .guestRunning: "guest-running"
        case .postcopyListen: "postcopy-listen"
        case .postcopyListenAck: "postcopy-listen-ack"
        }
    }
}

/// What the source offers in `hello`. Bits this side does not know are kept and ignored.
public struct StreamFeatures: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// The source may switch to postcopy (the destination must be able to serve faults).
    public static let postcopy = StreamFeatures(rawValue: 1 << 0)
    /// After a break in postcopy the source will reconnect with `resume`.
    public static let recovery = StreamFeatures(rawValue: 1 << 1)
}

/// The protocol versions this code speaks: 5, and 4 for peers one version behind.
public enum StreamVersion {
    public static let current: UInt16 = 5
    public static let oldest: UInt16 = 4

    /// Throws `unsupportedVersion` unless `version` is one this side speaks.
    public static func check(_ version: UInt16, at offset: Int? = nil) throws(StreamError) {
        guard (oldest...current).contains(version) else {
            throw StreamError(.unsupportedVersion, at: offset,
                              "the peer speaks protocol version \(version); this side speaks \(oldest) to \(current)")
        }
    }

    /// Throws `unknownType` when `type` is newer than the negotiated `version`.
    public static func check(_ type: StreamMessageType, in version: UInt16, at offset: Int? = nil) throws(StreamError) {
        guard type.since <= version else {
            throw StreamError(.unknownType, at: offset, "\(type) is not in protocol version \(version) (it came in version \(type.since))")
        }
    }
}

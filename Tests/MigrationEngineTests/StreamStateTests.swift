import Testing
@testable import MigrationEngine
import Traces

@Suite struct StreamStateTests {
    static let hello = StreamMessage.hello(version: 5, pageSize: 4096, pageCount: 100, features: [.postcopy, .recovery])
    static func run(_ n: UInt32, at start: UInt64 = 0) -> StreamMessage { .pages(start: start, count: n, zero: true, bytes: []) }

    /// The detail of the StreamError `body` throws; nil when it throws nothing.
    func refusal(_ body: () throws -> Void) -> String? {
        do { try body(); return nil } catch { return (error as? StreamError)?.detail ?? "not a StreamError: \(error)" }
    }

    @Test func pagesBeforeHelloNameTheState() {
        var r = StreamReceiverState()
        #expect(refusal { try r.accept(Self.run(1)) } == "pages is not allowed in state awaiting-hello")
        #expect(r.state == .failed)
        // A failed stream accepts nothing more.
        #expect(refusal { try r.accept(Self.hello) } == "hello is not allowed in state failed")
    }

    @Test func aPrecopyMigrationRunsBothSidesToCompleted() throws {
        var r = StreamReceiverState(), s = StreamSenderState()
        func source(_ m: StreamMessage) throws { try s.send(m); try r.accept(m) }
        func destination(_ m: StreamMessage) throws { try r.send(m); try s.receive(m) }
        try source(Self.hello)
        #expect(r.owedAck == .helloAck)
        #expect(refusal { try s.send(.passStart(pass: 1)) } == "pass-start is not allowed in state greeting")
        s = StreamSenderState()
        try s.send(Self.hello)
        try destination(.helloAck(version: 5))
        for pass: UInt32 in 1...2 {
            try source(.passStart(pass: pass))
            try source(Self.run(60, at: 0))
            try source(Self.run(40, at: 60))
            try source(.ping(nonce: UInt64(pass)))
            try destination(.pong(nonce: UInt64(pass)))
            try source(.passEnd(pass: pass, pagesSent: 100))
        }
        try source(.stopAndCopy)
        try source(Self.run(3, at: 7))
        try source(.complete)
        #expect(r.state == .completing && s.state == .completing)
        // The destination's guest runs (the downtime ends), then the verdict.
        #expect(r.owedAck == .guestRunning)
        #expect(refusal { var r2 = r; try r2.send(.completeAck(verified: true, detail: "")) } == "complete-ack is not allowed in state completing: the destination may not send it now")
        #expect(refusal { var s2 = s; try s2.receive(.completeAck(verified: true, detail: "")) } == "complete-ack is not allowed in state completing: the source does not expect it now")
        try destination(.guestRunning)
        #expect(refusal { var r2 = r; try r2.send(.guestRunning) } == "guest-running is not allowed in state completing: the destination may not send it now")
        try destination(.completeAck(verified: true, detail: "100 pages verified"))
        #expect(r.state == .completed && s.state == .completed)
    }

    @Test func theSwitchToPostcopyDropsWhatIsStaleBeforeTheGuestStops() throws {
        var r = StreamReceiverState(), s = StreamSenderState()
        func source(_ m: StreamMessage) throws { try s.send(m); try r.accept(m) }
        func destination(_ m: StreamMessage) throws { try r.send(m); try s.receive(m) }
        try source(Self.hello)
        try destination(.helloAck(version: 5))
        try source(.passStart(pass: 1))
        try source(Self.run(100))
        #expect(refusal { var r2 = r; try r2.accept(.postcopyListen(discard: [])) } == "postcopy-listen is not allowed in state precopy: pass 1 is still open")
        try source(.passEnd(pass: 1, pagesSent: 100))
        #expect(refusal { var r2 = r; try r2.accept(.postcopyListen(discard: [PageRange(start: 90, count: 20)])) }
                == "postcopy-listen is not allowed in state precopy: range 90..<110 is outside the guest's 100 pages")
        try source(.postcopyListen(discard: [PageRange(start: 3, count: 2)]))
        #expect(r.state == .listening && r.owedAck == .postcopyListenAck && s.state == .listening)
        #expect(refusal { var r2 = r; try r2.accept(.stopAndCopy) } == "stop-and-copy is not allowed in state listening: the destination owes postcopy-listen-ack first")
        try destination(.postcopyListenAck)
        // Its memory is registered for faults: no more precopy, and no stopped copy that ends
        // without postcopy.
        #expect(refusal { var r2 = r; try r2.accept(.passStart(pass: 2)) } == "pass-start is not allowed in state listening")
        #expect(refusal { var s2 = s; try s2.send(.passStart(pass: 2)) } == "pass-start is not allowed in state listened")
        try source(.stopAndCopy)
        #expect(refusal { var r2 = r; try r2.accept(Self.run(1)) } == "pages is not allowed in state stopped-copy")
        #expect(refusal { var s2 = s; try s2.send(Self.run(1)) } == "pages is not allowed in state stopped-copy")
        #expect(refusal { var r2 = r; try r2.accept(.complete) } == "complete is not allowed in state stopped-copy")
        #expect(refusal { var s2 = s; try s2.send(.complete) } == "complete is not allowed in state stopped-copy")
        try source(.deviceState(progress: [7]))
        try source(.postcopyStart(discard: [PageRange(start: 9, count: 1)]))
        try destination(.postcopyStartAck)
        #expect(r.state == .postcopy && s.state == .postcopy)
    }

    @Test func aVersion4PeerSwitchesWithoutListening() throws {
        var r = StreamReceiverState(), s = StreamSenderState()
        func source(_ m: StreamMessage) throws { try s.send(m); try r.accept(m) }
        func destination(_ m: StreamMessage) throws { try r.send(m); try s.receive(m) }
        try source(.hello(version: 4, pageSize: 4096, pageCount: 100, features: [.postcopy]))
        try destination(.helloAck(version: 4))
        #expect(refusal { var s2 = s; try s2.send(.postcopyListen(discard: [])) } == "postcopy-listen is not in protocol version 4 (it came in version 5)")
        #expect(refusal { var r2 = r; try r2.accept(.postcopyListen(discard: [])) } == "postcopy-listen is not in protocol version 4 (it came in version 5)")
        try source(.stopAndCopy)
        try source(.postcopyStart(discard: [PageRange(start: 0, count: 100)]))
        try destination(.postcopyStartAck)
        #expect(r.state == .postcopy && s.state == .postcopy)
    }

    @Test func outOfOrderMessagesAreRefusedWithTheStateNamed() throws {
        func greeted() throws -> StreamReceiverState {
            var r = StreamReceiverState()
            try r.accept(Self.hello)
            try r.send(.helloAck(version: 5))
            return r
        }
        var r = StreamReceiverState()
        try r.accept(Self.hello)
        #expect(refusal { try r.accept(.passStart(pass: 1)) } == "pass-start is not allowed in state precopy: the destination owes hello-ack first")
        r = try greeted()
        #expect(refusal { try r.accept(Self.run(1)) } == "pages is not allowed in state precopy: no precopy pass is open")
        r = try greeted()
        #expect(refusal { try r.accept(.complete) } == "complete is not allowed in state precopy")
        r = try greeted()
        try r.accept(.passStart(pass: 1))
        #expect(refusal { try r.accept(Self.run(2, at: 99)) } == "pages is not allowed in state precopy: range 99..<101 is outside the guest's 100 pages")
        r = try greeted()
        try r.accept(.passStart(pass: 1))
        try r.accept(Self.run(5))
        #expect(refusal { try r.accept(.passEnd(pass: 1, pagesSent: 6)) } == "pass-end is not allowed in state precopy: pass 1 says 6 pages were sent, 5 arrived")
        r = try greeted()
        try r.accept(.stopAndCopy)
        #expect(refusal { try r.accept(.passStart(pass: 2)) } == "pass-start is not allowed in state stopped-copy")
        r = try greeted()
        try r.accept(.stopAndCopy)
        try r.accept(.complete)
        #expect(refusal { try r.accept(Self.run(1)) } == "pages is not allowed in state completing: the destination owes guest-running first")
        r = try greeted()
        #expect(refusal { try r.send(.pageRequest([PageRange(start: 1, count: 1)])) } == "page-request is not allowed in state precopy: the destination may not send it now")
        var s = StreamSenderState()
        #expect(refusal { try s.receive(.helloAck(version: 2)) } == "hello-ack is not allowed in state idle: the source does not expect it now")
    }

    @Test func postcopySurvivesABreakAndNeverGoesBackToPrecopy() throws {
        var r = StreamReceiverState(), s = StreamSenderState()
        func source(_ m: StreamMessage) throws { try s.send(m); try r.accept(m) }
        func destination(_ m: StreamMessage) throws { try r.send(m); try s.receive(m) }
        try source(Self.hello)
        try destination(.helloAck(version: 5))
        try source(.stopAndCopy)
        try source(.postcopyStart(discard: [PageRange(start: 0, count: 10)]))
        try destination(.postcopyStartAck)
        try destination(.pageRequest([PageRange(start: 42, count: 1)]))
        try source(Self.run(1, at: 42))
        s.connectionLost()
        r.connectionLost()
        #expect(s.state == .paused && r.state == .paused)
        #expect(refusal { try s.send(.stopAndCopy) } == "stop-and-copy is not allowed in state paused")
        s = StreamSenderState()  // (the refusal failed it; start again from a fresh break)
        r = StreamReceiverState()
        try source(Self.hello)
        try destination(.helloAck(version: 5))
        try source(.stopAndCopy)
        try source(.postcopyStart(discard: []))
        try destination(.postcopyStartAck)
        s.connectionLost()
        r.connectionLost()
        #expect(refusal { var r2 = r; try r2.accept(.resume) } == "resume is not allowed in state paused")
        try source(.hello(version: 4, pageSize: 4096, pageCount: 100, features: [.postcopy, .recovery]))
        try destination(.helloAck(version: 4))
        #expect(s.state == .reconnected)
        try source(.resume)
        #expect(refusal { var r2 = r; try r2.send(.resumeAck) } == "resume-ack is not allowed in state paused: the destination may not send it now")
        try destination(.receivedBitmap([PageRange(start: 0, count: 50)]))
        try destination(.resumeAck)
        #expect(s.received == [PageRange(start: 0, count: 50)])
        #expect(r.state == .postcopy && s.state == .postcopy)
        // Version 4 was agreed on this connection: no postcopy-listen.
        #expect(refusal { var s2 = s; try s2.receive(.postcopyListenAck) } == "postcopy-listen-ack is not in protocol version 4 (it came in version 5)")
        try source(.complete)
        // A request sent before `complete` reached the destination may cross it.
        try s.receive(.pageRequest([PageRange(start: 99, count: 1)]))
        try destination(.completeAck(verified: true, detail: ""))
        #expect(r.state == .completed && s.state == .completed)
    }

    @Test func aBreakBeforePostcopyFailsAndAFailedVerificationFails() throws {
        var r = StreamReceiverState()
        try r.accept(Self.hello)
        r.connectionLost()
        #expect(r.state == .failed && r.failure?.detail == "the connection was lost in state precopy")
        var s = StreamSenderState()
        try s.send(Self.hello)
        try s.receive(.helloAck(version: 5))
        try s.send(.stopAndCopy)
        try s.send(.complete)
        try s.receive(.guestRunning)
        try s.receive(.completeAck(verified: false, detail: "page 3 is stale"))
        #expect(s.state == .failed && s.failure?.detail.contains("page 3 is stale") == true)
    }

    @Test func versionsAndFeaturesAreNegotiated() throws {
        for version: UInt16 in [3, 6] {
            var r = StreamReceiverState()
            #expect(throws: StreamError.self) { try r.accept(.hello(version: version, pageSize: 4096, pageCount: 1, features: [])) }
            #expect(r.failure?.kind == .unsupportedVersion)
        }
        var r = StreamReceiverState()
        try r.accept(.hello(version: 4, pageSize: 4096, pageCount: 8, features: []))
        #expect(refusal { var r2 = r; try r2.send(.helloAck(version: 5)) } == "hello-ack is not allowed in state precopy: the source offered version 4, not 5")
        try r.send(.helloAck(version: 4))
        try r.accept(.stopAndCopy)
        #expect(refusal { try r.accept(.postcopyStart(discard: [])) } == "postcopy-start is not allowed in state stopped-copy: the source's hello did not offer postcopy")
        var s = StreamSenderState()
        try s.send(.hello(version: 4, pageSize: 4096, pageCount: 8, features: []))
        #expect(refusal { var s2 = s; try s2.receive(.helloAck(version: 5)) } == "hello-ack is not allowed in state greeting: the source does not expect it now")
        try s.receive(.helloAck(version: 4))
        #expect(refusal { try s.receive(.pong(nonce: 9)) } == "pong is not allowed in state precopy: the source does not expect it now")
    }

    @Test func anAbortEndsEitherSide() throws {
        var r = StreamReceiverState()
        try r.accept(Self.hello)
        try r.accept(.abort(reason: "operator cancelled"))
        #expect(r.state == .failed && r.failure?.kind == .peerAborted)
        var s = StreamSenderState()
        try s.send(Self.hello)
        try s.receive(.abort(reason: "no memory"))
        #expect(s.state == .failed && s.failure?.detail == "the destination aborted: no memory")
    }
}

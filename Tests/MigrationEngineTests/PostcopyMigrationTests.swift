import Dispatch
import Foundation
import Migration
import Synchronization
import Testing
import Traces
import Transport
@testable import MigrationEngine

/// Postcopy between two guests over a real unix socket: the destination's guest runs from the
/// switch on, faulting in through userfaultfd what has not arrived; every page is verified.
@Suite(.serialized) struct PostcopyMigrationTests {
    final class Box<T>: @unchecked Sendable { var value: T?; init() {} }

    /// Waits up to `seconds` for `condition` (the machine may be slow: no fixed sleeps).
    func waitUntil(_ seconds: Double = 20, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            if Date() > deadline { return false }
            usleep(5_000)
        }
        return true
    }

    @Test func theGuestRunsAtTheDestinationFromTheSwitchAndEveryPageArrives() throws {
        let workloads = try ["fill:4MiB", "uniform:rate=5000"].map { try GuestWorkload(parsing: $0) }
        let memory = try GuestMemory(bytes: 16 << 20)
        let (tracker, _) = try DirtyTracking.best(for: memory)
        try tracker.start()
        let guest = try Guest(memory: memory, workloads: workloads)
        try guest.start()
        defer { guest.stop() }

        let uri = MigrationURI.unix(path: FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-\(UUID().uuidString).sock").path)
        let listener = try Transport.listen(uri)
        defer { listener.close() }
        let destination = MigrationDestination(memory: try GuestMemory(bytes: 16 << 20), workloads: workloads)
        defer { destination.guest?.stop() }
        let states = Mutex<[MigrationState]>([])
        destination.onStateChange = { state in states.withLock { $0.append(state) } }
        let result = Box<Result<DestinationReport, any Error>>()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            result.value = Result { try destination.run(channel: try listener.accept()) }
            done.signal()
        }
        let channel = try Transport.connect(uri)
        defer { channel.close() }

        // 5 MB/s: the 16 MiB take over 3 s, long enough for the guest to fault on missing pages
        // however the threads are scheduled.
        let engine = EmbeddedMigration(guest: guest, tracker: tracker, channel: channel)
        try engine.setBandwidth(bytesPerSecond: 5e6)
        try engine.start()
        #expect(waitUntil { engine.status.transferredBytes > 1 << 20 }, "pass 1 is under way")
        try engine.startPostcopy()
        #expect(throws: EngineError.self) { try engine.startPostcopy() }  // once only
        #expect(waitUntil { engine.status.state != .active })
        #expect(engine.status.state == .postcopyActive || engine.status.state == .completed)
        #expect(waitUntil(60) { engine.status.state.isFinished || engine.status.state == .postcopyPaused })
        try #require(engine.status.state != .postcopyPaused, "the link broke: \((try? engine.nextObservation(within: 0).events) ?? []), destination: \(String(describing: result.value))")
        engine.waitUntilFinished()
        done.wait()
        let report = try #require(try result.value?.get())

        #expect(engine.status.state == .completed)
        #expect(engine.destinationVerified == true, "\(engine.destinationDetail ?? "")")
        #expect(report.verified && report.postcopy)
        // The destination told its states with QEMU's names, in order.
        #expect(states.withLock { $0 } == [.active, .postcopyActive, .completed])
        #expect(engine.postcopySeconds != nil)
        let downtime = try #require(engine.status.downtimeSeconds), postcopy = try #require(engine.postcopySeconds)
        #expect(downtime < postcopy)
        // The source's guest stopped at the switch for good; the destination's went on from its
        // stamps: every page holds the source's last write or a newer one made there.
        #expect(guest.isPaused)
        let running = try #require(destination.guest)
        let before = running.pagesWritten
        #expect(waitUntil { running.pagesWritten > before }, "the workload runs on at the destination")
        running.pause()
        #expect(running.mismatches(in: destination.memory) == [])
        let here = running.lastSequences(), there = guest.lastSequences()
        #expect(zip(there, here).allSatisfy { $0 <= $1 })
        #expect(zip(there, here).contains { $0 < $1 }, "the destination wrote pages after the switch")
        // Faults on missing pages were requested and counted on both sides.
        #expect(report.remoteFaults > 0)
        #expect(engine.remoteFaults >= report.remoteFaults)
    }

    /// A destination of an 8-page guest on a unix socket, and the connection a test drives
    /// it through as its source; `report` waits for the destination's end.
    func handDrivenDestination() throws -> (StreamConnection, report: () throws -> DestinationReport) {
        let memory = try GuestMemory(bytes: 8 * 4096)
        let uri = MigrationURI.unix(path: FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-\(UUID().uuidString).sock").path)
        let listener = try Transport.listen(uri)
        let result = Box<Result<DestinationReport, any Error>>()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            result.value = Result { try MigrationDestination(memory: memory).run(channel: try listener.accept()) }
            listener.close()
            done.signal()
        }
        let connection = StreamConnection(channel: try Transport.connect(uri), pageSize: 4096)
        return (connection, { done.wait(); done.signal(); return try result.value!.get() })
    }

    /// A version 4 source lists every stale page in `postcopy-start`: the destination drops
    /// them there, as it did before `postcopy-listen`, and serves them again.
    @Test func aVersion4SourceDropsItsWholeDiscardListAtTheSwitch() throws {
        let (connection, report) = try handDrivenDestination()
        defer { connection.channel.close() }
        func page(_ p: UInt64, _ sequence: UInt64) -> [UInt8] {
            var bytes = [UInt8](repeating: 0, count: 4096)
            bytes.withUnsafeMutableBytes { PageStamp(page: p, sequence: sequence).write(to: $0.baseAddress!) }
            return bytes
        }
        try connection.send(.hello(version: 4, pageSize: 4096, pageCount: 8, features: [.postcopy]))
        try connection.flush()
        #expect(try connection.receive() == .helloAck(version: 4))
        try connection.send(.passStart(pass: 1))
        for p: UInt64 in 0..<8 { try connection.send(.pages(start: p, count: 1, zero: false, bytes: page(p, 1))) }
        try connection.send(.passEnd(pass: 1, pagesSent: 8))
        try connection.send(.stopAndCopy)
        try connection.send(.deviceState(progress: []))
        try connection.send(.stamps(start: 0, sequences: [1, 1, 2, 1, 1, 1, 1, 2]))
        try connection.send(.postcopyStart(discard: [PageRange(start: 2, count: 1), PageRange(start: 7, count: 1)]))
        try connection.flush()
        #expect(try connection.receive() == .postcopyStartAck)
        // The stale copies are gone: only the new ones can complete the guest.
        try connection.send(.pages(start: 2, count: 1, zero: false, bytes: page(2, 2)))
        try connection.send(.pages(start: 7, count: 1, zero: false, bytes: page(7, 2)))
        try connection.send(.complete)
        try connection.flush()
        guard case let .completeAck(verified, detail) = try #require(try connection.receive()) else {
            Issue.record("expected complete-ack")
            return
        }
        #expect(verified, "\(detail)")
        #expect(try report().postcopy == true)
    }

    /// Both versions say the guest runs before the verdict.
    @Test(arguments: [StreamVersion.oldest, StreamVersion.current])
    func aStalePageFailsVerificationNamingIt(version: UInt16) throws {
        // A source that sends page 2 with sequence 1 but says its final stamp is sequence 2.
        let (connection, report) = try handDrivenDestination()
        defer { connection.channel.close() }
        try connection.send(.hello(version: version, pageSize: 4096, pageCount: 8, features: []))
        try connection.flush()
        #expect(try connection.receive() == .helloAck(version: version))
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { PageStamp(page: 2, sequence: 1).write(to: $0.baseAddress!) }
        try connection.send(.passStart(pass: 1))
        try connection.send(.pages(start: 2, count: 1, zero: false, bytes: page))
        try connection.send(.passEnd(pass: 1, pagesSent: 1))
        try connection.send(.stopAndCopy)
        try connection.send(.deviceState(progress: []))
        try connection.send(.stamps(start: 0, sequences: [0, 0, 2, 0, 0, 0, 0, 0]))
        try connection.send(.complete)
        try connection.flush()
        #expect(try connection.receive() == .guestRunning)
        guard case let .completeAck(verified, detail) = try #require(try connection.receive()) else {
            Issue.record("expected complete-ack")
            return
        }
        #expect(!verified)
        #expect(detail == "1 of 8 pages do not hold their latest write; the first, page 2, has stamp (page 2, sequence 1), expected sequence 2")
        #expect(try report().verified == false)
    }
}

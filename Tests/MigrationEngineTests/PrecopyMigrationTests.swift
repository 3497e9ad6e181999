import Dispatch
import Foundation
import Migration
import Testing
import Traces
import Transport
@testable import MigrationEngine

/// A running guest migrated by precopy over a real unix socket, verified page by page.
@Suite(.serialized) struct PrecopyMigrationTests {
    final class Box<T>: @unchecked Sendable { var value: T?; init() {} }

    /// A destination listening on a fresh unix socket, running on another thread: connect to
    /// `uri`, then `outcome()` waits for its end.
    struct RunningDestination {
        let uri: MigrationURI
        let listener: Listener
        let outcome: () -> Result<DestinationReport, any Error>
    }

    func startDestination(_ memory: GuestMemory) throws -> RunningDestination {
        let uri = MigrationURI.unix(path: FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-\(UUID().uuidString).sock").path)
        let listener = try Transport.listen(uri)
        let result = Box<Result<DestinationReport, any Error>>()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            result.value = Result { try PrecopyDestination(memory: memory).run(channel: try listener.accept()) }
            done.signal()
        }
        return RunningDestination(uri: uri, listener: listener, outcome: { done.wait(); return result.value! })
    }

    @Test func aRunningGuestArrivesWithEveryPageAtItsLatestWrite() throws {
        let source = try GuestMemory(bytes: 64 << 20)
        let destination = try GuestMemory(bytes: 64 << 20)
        let (tracker, _) = try DirtyTracking.best(for: source)
        try tracker.start()
        let guest = try Guest(memory: source, workloads: [try GuestWorkload(parsing: "uniform:rate=20000")])
        try guest.start()
        defer { guest.stop() }

        let running = try startDestination(destination)
        defer { running.listener.close() }
        let channel = try Transport.connect(running.uri)
        defer { channel.close() }
        let report = try PrecopySource(guest: guest, tracker: tracker, channel: channel).run(stopAtPages: 2_000)
        let destinationReport = try running.outcome().get()

        #expect(report.destinationVerified, "\(report.destinationDetail)")
        #expect(destinationReport.verified)
        #expect(report.pagesPerPass.first == source.pageCount)  // pass 1: every page
        #expect(report.pagesPerPass.count >= 2)
        #expect(report.pagesPerPass.last! <= 4_000)  // the stop-and-copy: what fit, plus what was written meanwhile
        // The guest is paused: its last writes are final, and the copy holds every one of them.
        #expect(guest.isPaused)
        #expect(Guest.mismatches(in: destination, expected: guest.lastSequences()) == [])
        #expect(guest.pagesWritten > 0)
    }

    @Test func garbageOnTheStreamEndsItAndNeverReachesGuestMemory() throws {
        let destination = try GuestMemory(bytes: 1 << 20)
        destination.base.initializeMemory(as: UInt8.self, repeating: 0xA5, count: destination.byteCount)
        let running = try startDestination(destination)
        defer { running.listener.close() }
        let channel = try Transport.connect(running.uri)
        // A valid hello, then a pages frame with one byte flipped in its page data.
        var encoder = FrameEncoder(pageSize: UInt32(destination.pageSize))
        try encoder.append(.hello(version: StreamVersion.current, pageSize: UInt32(destination.pageSize), pageCount: destination.pageCount, features: []))
        try encoder.append(.passStart(pass: 1))
        let page = [UInt8](repeating: 0x11, count: destination.pageSize)
        try page.withUnsafeBytes { try encoder.appendPages(start: 3, count: 1, from: $0) }
        var bytes = encoder.bytes
        bytes[bytes.count - 100] ^= 0x01
        try bytes.withUnsafeBytes { try channel.send($0) }
        try channel.shutdownWrite()
        let outcome = running.outcome()
        channel.close()
        #expect(throws: StreamError.self) { try outcome.get() }
        let untouched = UnsafeRawBufferPointer(start: destination.base, count: destination.byteCount).allSatisfy { $0 == 0xA5 }
        #expect(untouched)
    }
}

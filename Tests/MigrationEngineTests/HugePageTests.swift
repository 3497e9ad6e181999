import Dispatch
import Foundation
import Migration
import Testing
import Transport
@testable import MigrationEngine

/// A destination keeps its memory on transparent huge pages for pass 1 unless the source's hello
/// offers postcopy (as QEMU does), and a source that offered no postcopy refuses to switch. The
/// kernel's own record of the advice is read back: the VmFlags of the mapping in
/// /proc/self/smaps (`hg` MADV_HUGEPAGE, `nh` MADV_NOHUGEPAGE).
@Suite(.serialized) struct HugePageTests {
    final class Box<T>: @unchecked Sendable { var value: T?; init() {} }

    /// The VmFlags of the mapping that holds `memory.base`.
    func vmFlags(_ memory: GuestMemory) throws -> Set<String> {
        let base = UInt(bitPattern: memory.base)
        // Read to the end: /proc files report no size, and a read by size would stop short.
        let smaps = try #require(try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/smaps")).readToEnd())
        let lines = String(decoding: smaps, as: UTF8.self).split(separator: "\n")
        let at = try #require(lines.firstIndex { line in
            let bounds = line.prefix { $0 != " " }.split(separator: "-").compactMap { UInt($0, radix: 16) }
            return bounds.count == 2 && bounds[0] <= base && base < bounds[1]
        }, "no mapping holds 0x\(String(base, radix: 16))")
        let flags = try #require(lines[at...].first { $0.hasPrefix("VmFlags:") })
        return Set(flags.split(separator: " ").dropFirst().map(String.init))
    }

    /// A destination on memory advised onto huge pages, served on a fresh unix socket.
    func destination(_ memory: GuestMemory) throws -> (MigrationURI, Listener, () -> Result<DestinationReport, any Error>) {
        memory.adviseHugePages(true)
        let uri = MigrationURI.unix(path: FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-\(UUID().uuidString).sock").path)
        let listener = try Transport.listen(uri)
        let result = Box<Result<DestinationReport, any Error>>()
        let done = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            result.value = Result { try MigrationDestination(memory: memory).run(channel: try listener.accept()) }
            done.signal()
        }
        return (uri, listener, { done.wait(); return result.value! })
    }

    @Test(arguments: [StreamFeatures(), [.postcopy, .recovery]])
    func aHelloThatOffersPostcopySendsTheDestinationToSmallPagesAtOnce(features: StreamFeatures) throws {
        let memory = try GuestMemory(bytes: 8 << 20)
        let (uri, listener, outcome) = try destination(memory)
        defer { listener.close() }
        #expect(try vmFlags(memory).contains("hg"))
        let channel = try Transport.connect(uri)
        let connection = StreamConnection(channel: channel, pageSize: UInt32(memory.pageSize))
        try connection.send(.hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount, features: features))
        try connection.flush()
        #expect(try connection.receive() == .helloAck(version: StreamVersion.current))
        let flags = try vmFlags(memory)
        if features.contains(.postcopy) {
            #expect(flags.contains("nh") && !flags.contains("hg"), "\(flags)")
        } else {
            #expect(flags.contains("hg") && !flags.contains("nh"), "\(flags)")
        }
        channel.close()
        _ = outcome()
    }

    @Test func pass2SendsTheDestinationBackToSmallPages() throws {
        let memory = try GuestMemory(bytes: 8 << 20)
        let (uri, listener, outcome) = try destination(memory)
        defer { listener.close() }
        let channel = try Transport.connect(uri)
        let connection = StreamConnection(channel: channel, pageSize: UInt32(memory.pageSize))
        try connection.send(.hello(version: StreamVersion.current, pageSize: UInt32(memory.pageSize), pageCount: memory.pageCount, features: []))
        try connection.flush()
        #expect(try connection.receive() == .helloAck(version: StreamVersion.current))
        // A ping's answer says that everything before it has been dealt with.
        func settled(_ nonce: UInt64) throws {
            try connection.send(.ping(nonce: nonce))
            try connection.flush()
            #expect(try connection.receive() == .pong(nonce: nonce))
        }
        try connection.send(.passStart(pass: 1))
        try connection.send(.passEnd(pass: 1, pagesSent: 0))
        try settled(1)
        #expect(try vmFlags(memory).contains("hg"), "pass 1 stays on huge pages")
        try connection.send(.passStart(pass: 2))
        try settled(2)
        let flags = try vmFlags(memory)
        #expect(flags.contains("nh") && !flags.contains("hg"), "\(flags)")
        channel.close()
        _ = outcome()
    }

    @Test func aSourceThatOfferedNoPostcopyRefusesToSwitchAndCompletesInPrecopy() throws {
        let memory = try GuestMemory(bytes: 8 << 20)
        let (tracker, _) = try DirtyTracking.best(for: memory)
        try tracker.start()
        let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "fill:6MiB")])
        try guest.start()
        defer { guest.stop() }
        while guest.pagesWritten < 1536 { usleep(1_000) }
        let destinationMemory = try GuestMemory(bytes: 8 << 20)
        let (uri, listener, outcome) = try destination(destinationMemory)
        defer { listener.close() }
        let channel = try Transport.connect(uri)
        defer { channel.close() }

        // Stopped inside pass 1 with nothing sent ahead: a flush would be pass 2, whose
        // scattered pages the destination backs with small pages from then on (a dirty page
        // landing on an untouched huge page would zero 2 MiB inside the downtime).
        let engine = EmbeddedMigration(guest: guest, tracker: tracker, channel: channel, postcopy: false, flushAhead: false)
        try engine.setBandwidth(bytesPerSecond: 20e6)
        try engine.start()
        #expect { try engine.startPostcopy() } throws: { "\($0)".contains("did not offer postcopy") }
        #expect(try engine.complete(maxPendingPages: nil))
        engine.waitUntilFinished()
        let report = try outcome().get()
        #expect(engine.status.state == .completed)
        #expect(report.verified && !report.postcopy, "\(report.detail)")
        #expect(Guest.mismatches(in: destinationMemory, expected: guest.lastSequences()) == [])
        #expect(try vmFlags(destinationMemory).contains("hg"))
    }
}

import Foundation
import Testing
@testable import Traces

/// A damaged trace fails to open with an error naming a byte offset — for every single byte
/// flipped and every truncation — and never crashes or answers with part of the data.
@Suite struct CorruptTraceTests {
    func smallTrace(_ dir: ScratchDirectory) throws -> [UInt8] {
        let header = TraceHeader(pageCount: 300, intervalNanoseconds: 50_000_000, provenance: [ProvenanceEntry("k", "v")])
        let writer = try TraceWriter(path: dir.path("small.trace"), header: header, initialData: [PageRange(start: 0, count: 100)])
        for i in randomIntervals(count: 150, pages: 300, seed: 3) { try writer.append(written: i) }  // three blocks
        try writer.finish()
        return Array(try Data(contentsOf: URL(fileURLWithPath: dir.path("small.trace"))))
    }

    @Test func everyFlippedByteIsCaught() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let original = try smallTrace(dir)
        let path = dir.path("flipped.trace")
        for offset in original.indices {
            var copy = original
            copy[offset] ^= 0x10
            try Data(copy).write(to: URL(fileURLWithPath: path))
            do {
                _ = try TraceReader(path: path)
                Issue.record("a flipped byte at offset \(offset) of \(original.count) went unnoticed")
            } catch {
                #expect(error.offset != nil, "no offset for a flip at \(offset): \(error)")
                #expect(error.kind != .io)
            }
        }
    }

    @Test func everyTruncationIsCaught() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let original = try smallTrace(dir)
        let path = dir.path("cut.trace")
        for length in 0..<original.count {
            try Data(original[0..<length]).write(to: URL(fileURLWithPath: path))
            do {
                _ = try TraceReader(path: path)
                Issue.record("a copy cut to \(length) of \(original.count) bytes opened")
            } catch {
                #expect(error.offset != nil, "no offset for a cut at \(length): \(error)")
            }
        }
    }

    @Test func truncationInsideABlockSaysWhere() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let original = try smallTrace(dir)
        let path = dir.path("cut.trace")
        try Data(original[0..<(original.count / 2)]).write(to: URL(fileURLWithPath: path))
        let error = try #require(throws: TraceError.self) { try TraceReader(path: path) }
        #expect(error.kind == .truncated)
        #expect(error.offset == original.count / 2)
        #expect(error.description.contains("ends inside the block that starts at byte"))
    }

    @Test func otherFilesAndOtherVersionsAreRefusedByName() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        var bytes = try smallTrace(dir)
        try Data("hello, world".utf8).write(to: URL(fileURLWithPath: dir.path("text.trace")))
        #expect(throws: TraceError.self) { try TraceReader(path: dir.path("text.trace")) }
        #expect((try? TraceReader(path: dir.path("text.trace"))) == nil)
        bytes[8] = 9  // version 9, checksum left alone: the version is reported, not the checksum
        try Data(bytes).write(to: URL(fileURLWithPath: dir.path("v9.trace")))
        let error = try #require(throws: TraceError.self) { try TraceReader(path: dir.path("v9.trace")) }
        #expect(error.kind == .unsupportedVersion)
        #expect(error.offset == 8)
    }
}

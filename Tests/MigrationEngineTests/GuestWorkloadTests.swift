import Glibc
import Migration
import Testing
import Traces
@testable import MigrationEngine

private func seconds(_ s: Double) { Sys.sleep(nanoseconds: UInt64(s * 1e9)) }

/// Every page's stamp in the guest's own memory, as sequences (0: never written).
private func stampedSequences(_ guest: Guest) -> [UInt64] {
    (0..<guest.memory.pageCount).map { page in
        switch PageStamp.read(from: guest.memory.pointer(page: page)) {
        case .unstamped: 0
        case .stamped(let s): s.page == page ? s.sequence : .max
        case .corrupt: .max
        }
    }
}

@Suite(.serialized) struct GuestWorkloadTests {
    @Test func uniformWritesAtItsRateWithValidIncreasingStamps() throws {
        let memory = try GuestMemory(bytes: 64 << 20)
        let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "uniform:rate=20000")])
        try guest.start()
        defer { guest.stop() }
        seconds(0.1)  // past the first slices
        let t0 = Sys.monotonicNanoseconds(), w0 = guest.pagesWritten
        seconds(1)
        let t1 = Sys.monotonicNanoseconds(), w1 = guest.pagesWritten
        let rate = Double(w1 - w0) / (Double(t1 - t0) / 1e9)
        #expect(abs(rate - 20_000) <= 1_000, "\(rate) page writes/s")

        guest.pause()
        let first = stampedSequences(guest)
        #expect(first.enumerated().allSatisfy { $1 == guest.lastSequence(page: UInt64($0)) })
        #expect(first.reduce(0, +) == guest.pagesWritten, "every write left a stamp")
        #expect(guest.mismatches(in: memory) == [])
        #expect(guest.lastSequences() == first)
        let copy = try GuestMemory(bytes: 64 << 20)
        #expect(guest.mismatches(in: copy).count == first.count { $0 > 0 }, "a copy that missed every write is caught")
        // A copy with every page but one, and one page stale by a write.
        memcpy(copy.base, memory.base, memory.byteCount)
        let written = first.indices.filter { first[$0] > 1 }.map(UInt64.init)
        copy.pointer(page: written[0]).initializeMemory(as: UInt8.self, repeating: 0, count: 4096)
        PageStamp(page: written[1], sequence: first[Int(written[1])] - 1).write(to: copy.pointer(page: written[1]))
        #expect(Guest.mismatches(in: copy, expected: first) == [written[0], written[1]])
        guest.resume()
        seconds(0.2)
        guest.pause()
        let second = stampedSequences(guest)
        #expect(zip(first, second).allSatisfy { $0 <= $1 }, "sequences only grow")
        #expect(second.reduce(0, +) > first.reduce(0, +) + 3_000)
        #expect(guest.mismatches(in: memory) == [])
    }

    @Test func pauseReallyStopsTheWriters() throws {
        let memory = try GuestMemory(bytes: 32 << 20)
        let tracker = try AsyncWriteProtectTracker(memory: memory)
        try tracker.start()
        defer { tracker.stop() }
        let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "uniform:rate=100000"),
                                                          try GuestWorkload(parsing: "sweep:rate=50000")])
        try guest.start()
        defer { guest.stop() }
        seconds(0.05)
        guest.pause()
        let written = guest.pagesWritten
        #expect(try tracker.collect().pageCount > 1_000)
        seconds(0.05)
        #expect(try tracker.collect() == [], "nothing written while paused")
        #expect(guest.pagesWritten == written)
        guest.resume()
        seconds(0.05)
        #expect(try tracker.collect().pageCount > 1_000, "written again after resume")
    }

    @Test func fillWritesEachPageOnceThenIdles() throws {
        let memory = try GuestMemory(bytes: 4 << 20)
        let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "fill:1MiB")])
        try guest.start()
        defer { guest.stop() }
        for _ in 0..<200 where guest.pagesWritten < 256 { seconds(0.01) }
        guest.pause()
        #expect(guest.pagesWritten == 256)
        #expect(stampedSequences(guest) == Array(repeating: 1, count: 256) + Array(repeating: 0, count: 768))
    }

    @Test func traceIsReplayedInRealTime() throws {
        let path = "/tmp/migpilot-guest-test-\(getpid()).trace"
        defer { unlink(path) }
        let spec = SyntheticWorkload.Spec(kind: .uniform, pages: 512, writesPerSecond: 20_000, seed: 3)
        try SyntheticTrace.write(spec, durationNanoseconds: 200_000_000, intervalNanoseconds: 20_000_000, to: path)
        // A synthetic trace's pages all hold data at the start: 512 pages first, then the intervals.
        let total = 512 + (try TraceReader(path: path).writtenPages.reduce(0, +))
        let memory = try GuestMemory(bytes: 512 * 4096)
        let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "trace:\(path),speed=2")])
        try guest.start()
        defer { guest.stop() }
        for _ in 0..<1000 where !guest.isFilled { seconds(0.001) }
        #expect(guest.isFilled)
        let t0 = Sys.monotonicNanoseconds()
        seconds(0.02)
        #expect(guest.pagesWritten < total * 9 / 10, "not all at once")
        while guest.pagesWritten < total, Sys.monotonicNanoseconds() - t0 < 2_000_000_000 { seconds(0.002) }
        let elapsed = Double(Sys.monotonicNanoseconds() - t0) / 1e9
        #expect(guest.pagesWritten >= total)
        #expect(elapsed > 0.08 && elapsed < 0.5, "200 ms of trace at speed 2 took \(elapsed) s")
        #expect(guest.failure == nil)
    }

    @Test func traceReplayWritesItsInitialDataFirstThenLoops() throws {
        // 1,024 pages, 100 of them holding data at the start; each 20 ms interval writes page 900.
        let path = "/tmp/migpilot-guest-initial-\(getpid()).trace"
        defer { unlink(path) }
        let writer = try TraceWriter(path: path, header: TraceHeader(pageCount: 1_024, intervalNanoseconds: 20_000_000),
                                     initialData: [PageRange(start: 0, count: 60), PageRange(start: 200, count: 40)])
        for _ in 0..<2 { try writer.append(written: [PageRange(start: 900, count: 1)]) }
        try writer.finish()
        let memory = try GuestMemory(bytes: 1_024 * 4096)
        let guest = try Guest(memory: memory, workloads: [.trace(path: path, speed: 1)])
        #expect(!guest.isFilled, "a fresh replay has its initial data to write")
        try guest.start()
        defer { guest.stop() }
        for _ in 0..<1000 where !guest.isFilled { seconds(0.001) }
        #expect(guest.isFilled)
        seconds(0.2)  // ten intervals: the two-interval trace five times over
        guest.pause()
        let stamped = stampedSequences(guest)
        #expect((0..<60).allSatisfy { stamped[$0] == 1 } && (200..<240).allSatisfy { stamped[$0] == 1 })
        #expect(stamped.indices.filter { stamped[$0] > 0 } == Array(0..<60) + Array(200..<240) + [900])
        #expect(stamped[900] >= 8, "page 900 written \(stamped[900]) times: the replay goes on past the trace's end")
        #expect(guest.failure == nil)
    }

    @Test func aResumedTraceReplayDoesNotWriteItsInitialDataAgain() throws {
        let path = "/tmp/migpilot-guest-resumed-\(getpid()).trace"
        defer { unlink(path) }
        let writer = try TraceWriter(path: path, header: TraceHeader(pageCount: 64, intervalNanoseconds: 20_000_000))
        try writer.append(written: [PageRange(start: 7, count: 1)])
        try writer.finish()
        let memory = try GuestMemory(bytes: 64 * 4096)
        let resumed = GuestSnapshot(progress: [50_000_000], sequences: Array(repeating: 0, count: 64))
        let guest = try Guest(memory: memory, workloads: [.trace(path: path, speed: 1)], resuming: resumed)
        #expect(guest.isFilled, "its data came with the migration")
        try guest.start()
        defer { guest.stop() }
        seconds(0.1)
        guest.pause()
        let stamped = stampedSequences(guest)
        #expect(stamped.indices.filter { stamped[$0] > 0 } == [7])
    }

    /// A destination makes its guest early and loads the snapshot when it arrives: the same as
    /// a guest made from the snapshot.
    @Test func aGuestLoadsItsSnapshotBeforeItStarts() throws {
        let memory = try GuestMemory(bytes: 64 * 4096)
        let guest = try Guest(memory: memory, workloads: [.fill(bytes: 64 * 4096)])
        #expect(!guest.isFilled)
        var sequences = [UInt64](repeating: 0, count: 64)
        sequences[5] = 3
        sequences[63] = 9
        #expect(throws: GuestError.self) { try guest.load(GuestSnapshot(progress: [64, 0], sequences: sequences)) }
        #expect(throws: GuestError.self) { try guest.load(GuestSnapshot(progress: [64], sequences: Array(sequences.prefix(63)))) }
        try guest.load(GuestSnapshot(progress: [64], sequences: sequences))
        #expect(guest.isFilled, "the fill was done at the source")
        #expect(guest.lastSequences() == sequences)
        #expect(guest.lastSequences(of: 60..<64) == [0, 0, 0, 9])
        #expect(guest.progress == [64])
    }

    @Test func specsParse() throws {
        #expect(try GuestWorkload(parsing: "fill:1GiB") == .fill(bytes: 1 << 30))
        var hot = SyntheticWorkload.Spec(kind: .hotset, pages: 1, writesPerSecond: 5e4, seed: 1)
        hot.hotFraction = 0.2
        hot.hotShare = 0.8
        #expect(try GuestWorkload(parsing: "hotset:rate=5e4,hot=0.2,share=0.8") == .synthetic(hot))
        var zipf = SyntheticWorkload.Spec(kind: .zipf, pages: 1, writesPerSecond: 1000, seed: 9)
        zipf.zipfExponent = 1.2
        #expect(try GuestWorkload(parsing: "zipf:rate=1000,s=1.2,seed=9") == .synthetic(zipf))
        #expect(try GuestWorkload(parsing: "trace:a,b.trace,speed=4") == .trace(path: "a,b.trace", speed: 4))
        #expect(try GuestWorkload(parsing: "trace:x.trace") == .trace(path: "x.trace", speed: 1))
    }

    @Test(arguments: [
        ("uniform:speed=3", "expected uniform:rate=PAGES_PER_S[,seed=N], got 'uniform:speed=3'"),
        ("uniform:rate=fast", "expected uniform:rate=PAGES_PER_S[,seed=N] (rate must be a non-negative number of pages per second), got 'uniform:rate=fast'"),
        ("zipf:rate=10,hot=0.1", "expected zipf:rate=PAGES_PER_S[,s=EXPONENT][,seed=N], got 'zipf:rate=10,hot=0.1'"),
        ("hotset:rate=10,hot=2", "expected hotset:rate=PAGES_PER_S[,hot=FRACTION][,share=FRACTION][,seed=N] (hot fraction must be in (0, 1]), got 'hotset:rate=10,hot=2'"),
        ("fill:lots", "expected fill:SIZE (e.g. fill:1GiB), got 'fill:lots'"),
        ("trace:x,speed=0", "expected trace:FILE[,speed=X] with X > 0, got 'trace:x,speed=0'"),
        ("random:rate=5", "expected fill:SIZE, uniform:…, hotset:…, zipf:…, sweep:… or trace:FILE[,speed=X], got 'random:rate=5'"),
    ])
    func specErrorsSayWhatWasExpected(text: String, message: String) {
        #expect(throws: QuantityError.self) { try GuestWorkload(parsing: text) }
        do {
            _ = try GuestWorkload(parsing: text)
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func guestRefusesWhatCannotRun() throws {
        let memory = try GuestMemory(bytes: 1 << 20)
        #expect(throws: GuestError.self) { try Guest(memory: memory, workloads: [.fill(bytes: 2 << 20)]) }
        #expect(throws: GuestError.self) { try Guest(memory: memory, workloads: [.trace(path: "/nonexistent.trace", speed: 1)]) }
    }
}

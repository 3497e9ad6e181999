import Foundation
import Testing
@testable import Traces

@Suite struct SyntheticWorkloadTests {
    func synth(_ spec: SyntheticWorkload.Spec, _ path: String, seconds: UInt64 = 5) throws {
        try SyntheticTrace.write(spec, durationNanoseconds: seconds * 1_000_000_000, intervalNanoseconds: 100_000_000, to: path)
    }

    @Test(arguments: SyntheticWorkload.Kind.allCases)
    func sameSeedSameBytesOtherSeedOtherBytes(kind: SyntheticWorkload.Kind) throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        var spec = SyntheticWorkload.Spec(kind: kind, pages: 20000, writesPerSecond: 30000, seed: 42)
        try synth(spec, dir.path("a.trace"))
        try synth(spec, dir.path("b.trace"))
        spec.seed = 43
        try synth(spec, dir.path("c.trace"))
        let a = try Data(contentsOf: URL(fileURLWithPath: dir.path("a.trace")))
        #expect(a == (try Data(contentsOf: URL(fileURLWithPath: dir.path("b.trace")))))
        if kind != .sweep {  // a sweep has no randomness
            #expect(a != (try Data(contentsOf: URL(fileURLWithPath: dir.path("c.trace")))))
        }
    }

    @Test func uniformFollowsTheClosedForm() throws {
        // r writes/s over W pages: distinct pages after t seconds = W (1 − e^(−r t / W)).
        let w = 50000.0, r = 40000.0
        var workload = SyntheticWorkload(.init(kind: .uniform, pages: UInt64(w), writesPerSecond: r, seed: 7))
        var seen = PageBitmap()
        for step in 1...20 {
            for range in workload.next(seconds: 0.1) { seen.insert(range) }
            let t = Double(step) * 0.1
            let expected = w * (1 - exp(-r * t / w))
            #expect(abs(Double(seen.count) - expected) / expected < 0.01, "t=\(t): \(seen.count) vs \(expected)")
        }
    }

    @Test func hotsetSendsItsShareToTheHotPages() {
        var spec = SyntheticWorkload.Spec(kind: .hotset, pages: 100_000, writesPerSecond: 1_000, seed: 3)
        spec.hotFraction = 0.2
        spec.hotShare = 0.8
        var workload = SyntheticWorkload(spec)
        var hot: UInt64 = 0, all: UInt64 = 0
        for _ in 0..<100 {
            for r in workload.next(seconds: 0.1) {
                all += r.count
                hot += r.start < 20_000 ? min(r.end, 20_000) - r.start : 0
            }
        }
        // Few repeats at this rate, so page counts follow write counts.
        #expect(abs(Double(hot) / Double(all) - 0.8) < 0.03)
    }

    @Test func zipfConcentratesWritesOnFewPages() {
        var workload = SyntheticWorkload(.init(kind: .zipf, pages: 1 << 20, writesPerSecond: 1_000_000, seed: 1))
        let distinct = workload.next(seconds: 1).pageCount
        // With s = 0.99 over 1 Mi pages, a million writes touch far fewer distinct pages than uniform's ~63%.
        #expect(distinct < 400_000)
        #expect(distinct > 10_000)
    }

    @Test func zipfSamplerMatchesTheDistribution() {
        let sampler = ZipfSampler(n: 100, exponent: 1.2)
        var rng = SeededRandom(seed: 5)
        var counts = [Int](repeating: 0, count: 101)
        let n = 200_000
        for _ in 0..<n { counts[Int(sampler.sample(&rng))] += 1 }
        let norm = (1...100).reduce(0.0) { $0 + pow(Double($1), -1.2) }
        for k in [1, 2, 5, 10, 50] {
            let expected = Double(n) * pow(Double(k), -1.2) / norm
            #expect(abs(Double(counts[k]) - expected) < 5 * expected.squareRoot() + 5, "rank \(k): \(counts[k]) vs \(expected)")
        }
        #expect(counts[0] == 0)
    }

    @Test func sweepWrapsAroundMemory() {
        var workload = SyntheticWorkload(.init(kind: .sweep, pages: 1000, writesPerSecond: 3000, seed: 0))
        #expect(workload.next(seconds: 0.1) == [PageRange(start: 0, count: 300)])
        _ = workload.next(seconds: 0.2)  // 300..<900
        #expect(workload.next(seconds: 0.1) == [PageRange(start: 0, count: 200), PageRange(start: 900, count: 100)])
        #expect(workload.next(seconds: 1) == [PageRange(start: 0, count: 1000)])
    }

    @Test func badSpecsAreRefusedWithAReason() {
        var spec = SyntheticWorkload.Spec(kind: .hotset, pages: 100, writesPerSecond: 10, seed: 1)
        spec.hotFraction = 1.5
        #expect(spec.problem == "hot fraction must be in (0, 1]")
        #expect(SyntheticWorkload.Spec(kind: .uniform, pages: 0, writesPerSecond: 10, seed: 1).problem != nil)
        #expect(SyntheticWorkload.Spec(kind: .uniform, pages: 10, writesPerSecond: -.infinity, seed: 1).problem != nil)
    }

    @Test func initiallyZeroMemoryIsRecordedAsSuch() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        try SyntheticTrace.write(.init(kind: .uniform, pages: 100, writesPerSecond: 10, seed: 1), durationNanoseconds: 1_000_000_000,
                                 intervalNanoseconds: 100_000_000, initiallyZero: true, to: dir.path("z.trace"))
        #expect(try TraceReader(path: dir.path("z.trace")).initialData == [])
    }

    @Test func aRegionHoldsTheDataAndEveryWriteTheRestOfTheGuestStaysZero() throws {
        let dir = try ScratchDirectory()
        defer { dir.cleanup() }
        let spec = SyntheticWorkload.Spec(kind: .uniform, pages: 300, writesPerSecond: 2000, seed: 3)
        try SyntheticTrace.write(spec, durationNanoseconds: 1_000_000_000, intervalNanoseconds: 100_000_000,
                                 region: (start: 512, guestPages: 1000), to: dir.path("r.trace"))
        let trace = try TraceReader(path: dir.path("r.trace"))
        #expect(trace.header.pageCount == 1000)
        #expect(trace.initialData == [PageRange(start: 512, count: 300)])
        let written = try (0..<trace.intervalCount).flatMap { try trace.interval($0).written }
        #expect(!written.isEmpty && written.allSatisfy { $0.start >= 512 && $0.end <= 812 })
        #expect(throws: TraceError.self) {
            try SyntheticTrace.write(spec, durationNanoseconds: 1_000_000_000, intervalNanoseconds: 100_000_000,
                                     region: (start: 800, guestPages: 1000), to: dir.path("bad.trace"))
        }
    }
}

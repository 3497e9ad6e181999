import Foundation
import Migration
import Testing
@testable import ConvergenceModel

private let pageBytes = 4096.0 + 8
private let link = PageLink(bandwidth: BandwidthEstimate(Bandwidth(bytesPerSecond: 1.25e9)))  // 10 Gbit/s, 4 KiB pages
private let linkPages = 1.25e9 / pageBytes  // ≈ 304,581 pages/s

private func inputs(rate: Double, workingSet: Double?, dataPages: UInt64, zeroPages: UInt64 = 0,
                    limit: TimeSpan, budget: TimeSpan? = nil, maxPasses: Int = 30) -> PrecopyInputs {
    PrecopyInputs(fit: .assumed(pagesPerSecond: rate, workingSetPages: workingSet), link: link,
                  dataPages: dataPages, zeroPages: zeroPages, downtimeLimit: limit, timeBudget: budget, maxPasses: maxPasses)
}

@Test("closed form for a uniform writer slower than the link: T1 = W·(s+h)/B, pass 2 sends U(T1)")
func closedForm() throws {
    let w = 1_000_000.0, r = 50_000.0
    let p = try PrecopyPrediction(inputs(rate: r, workingSet: w, dataPages: UInt64(w), limit: TimeSpan(nanoseconds: 1), maxPasses: 3))
    let t1 = w * pageBytes / 1.25e9
    let d1 = w * (1 - exp(-r * t1 / w))
    let t2 = d1 * pageBytes / 1.25e9
    let d2 = w * (1 - exp(-r * t2 / w))
    #expect(p.passes.count == 3)
    #expect(close(p.passes[0].seconds, t1, within: 1e-12))
    #expect(p.passes[0].pagesSent == w)
    #expect(close(p.passes[0].pagesLeft, d1, within: 1e-12))
    #expect(close(p.passes[1].pagesSent, d1, within: 1e-12))
    #expect(close(p.passes[1].seconds, t2, within: 1e-12))
    #expect(close(p.passes[2].pagesSent, d2, within: 1e-12))
    #expect(!p.converges)
    #expect(p.reason?.contains("after 3 passes (the most allowed)") == true)
    // Forced stop after the last pass: what is left goes in the stop-and-copy.
    #expect(close(p.downtimeSeconds, p.passes[2].pagesLeft * pageBytes / 1.25e9, within: 1e-12))
}

@Test("zero pages cost only their header in the first pass")
func zeroPages() throws {
    let p = try PrecopyPrediction(inputs(rate: 1_000, workingSet: 10_000, dataPages: 300_000, zeroPages: 700_000,
                                         limit: .init(nanoseconds: 1), maxPasses: 1))
    #expect(close(p.passes[0].seconds, (300_000 * pageBytes + 700_000 * 8) / 1.25e9, within: 1e-12))
    #expect(p.passes[0].zeroPagesSent == 700_000)
}

@Test("converges at the first pass after which what is left fits the downtime limit")
func convergesAtFirstFit() throws {
    let w = 2_000_000.0, r = 100_000.0
    let t1 = w * pageBytes / 1.25e9, d1 = w * (1 - exp(-r * t1 / w))
    let t2 = d1 * pageBytes / 1.25e9, d2 = w * (1 - exp(-r * t2 / w))
    // A limit between what pass 2 and pass 1 leave.
    let limit = TimeSpan(seconds: (d1 + d2) / 2 * pageBytes / 1.25e9)
    let p = try PrecopyPrediction(inputs(rate: r, workingSet: w, dataPages: UInt64(w), limit: limit))
    #expect(p.converges && p.reason == nil)
    #expect(p.passes.count == 2)
    #expect(close(p.downtimeSeconds, d2 * pageBytes / 1.25e9, within: 1e-9))
    #expect(close(p.totalSeconds, t1 + t2 + d2 * pageBytes / 1.25e9, within: 1e-9))
    #expect(close(p.totalBytes, (w + d1 + d2) * pageBytes, within: 1e-9))
    #expect(p.band.convergence == .converges)
}

@Test("a guest that fits the downtime limit at once needs no pass")
func fitsAtOnce() throws {
    let p = try PrecopyPrediction(inputs(rate: 1e6, workingSet: 1e6, dataPages: 1_000, limit: .init(nanoseconds: 300_000_000)))
    #expect(p.converges && p.passes.isEmpty)
    #expect(close(p.downtimeSeconds, 1_000 * pageBytes / 1.25e9, within: 1e-12))
}

@Test("a writer faster than the link does not converge, and the reason says so")
func writerOutrunsLink() throws {
    let r = 2 * linkPages, w = 4_000_000.0
    let p = try PrecopyPrediction(inputs(rate: r, workingSet: w, dataPages: 8_000_000, limit: .init(nanoseconds: 300_000_000)))
    #expect(!p.converges)
    #expect(p.band.convergence == .doesNotConverge)
    let reason = try #require(p.reason)
    #expect(reason.contains("dirty rate 609,162 pages/s outruns the link (304,581 pages/s)"))
    // Passes stop shrinking at the fixed point D* = U(D*·(s+h)/B): y = 1 − e^(−2y), y ≈ 0.7968.
    let last = p.passes.last!.pagesLeft
    #expect(close(last, 0.796812 * w, within: 1e-4))
    #expect(reason.contains("stop shrinking at about 3,187,2"))
    #expect(close(p.passes[p.passes.count - 2].pagesLeft, last, within: 1e-3))
}

@Test("a writer faster than the link still converges when its whole working set fits the limit")
func smallWorkingSetConverges() throws {
    let p = try PrecopyPrediction(inputs(rate: 10 * linkPages, workingSet: 10_000, dataPages: 1_000_000,
                                         limit: .init(nanoseconds: 300_000_000)))
    #expect(p.converges && p.passes.count == 1)
}

@Test("an unbounded dirty rate faster than the link never shrinks")
func unboundedOutruns() throws {
    let p = try PrecopyPrediction(inputs(rate: 1.5 * linkPages, workingSet: nil, dataPages: 1_000_000,
                                         limit: .init(nanoseconds: 300_000_000)))
    #expect(!p.converges)
    #expect(p.reason?.contains("outruns the link") == true)
    #expect(p.passes.last!.pagesLeft == 1_000_000)  // capped at the guest's pages
}

@Test("the time budget stops precopy after the pass that reaches it")
func timeBudget() throws {
    // Shrinks by 0.9 per pass: convergence would take many passes.
    let p = try PrecopyPrediction(inputs(rate: 0.9 * linkPages, workingSet: nil, dataPages: 1_000_000,
                                         limit: .init(nanoseconds: 1_000_000), budget: .init(seconds: 10), maxPasses: 1_000))
    #expect(!p.converges)
    let elapsed = p.passes.map(\.seconds).reduce(0, +)
    #expect(elapsed >= 10 && elapsed - p.passes.last!.seconds < 10)
    #expect(p.reason?.hasPrefix("the 10.00 s time budget runs out after \(p.passes.count) passes") == true)
}

@Test("the error band spans the estimate and turns uncertain near the edge")
func errorBand() throws {
    // r·(s+h)/B = 1 at the estimate: with a ±10% rate error some corners converge, some do not.
    var i = inputs(rate: linkPages, workingSet: 3_000_000, dataPages: 3_000_000, limit: .init(nanoseconds: 300_000_000))
    i.fit = .assumed(pagesPerSecond: linkPages, workingSetPages: 3_000_000, pagesPerSecondError: 0.1 * linkPages,
                     workingSetPagesError: 100_000)
    i.link.bandwidth.standardError = 0.05e9
    let p = try PrecopyPrediction(i)
    #expect(p.band.convergence == .uncertain)
    #expect(p.band.totalSeconds.contains(p.totalSeconds) && p.band.downtimeSeconds.contains(p.downtimeSeconds))
    #expect(p.band.totalSeconds.min < p.band.totalSeconds.max)

    let sure = try PrecopyPrediction(inputs(rate: 10_000, workingSet: 1e6, dataPages: 1_000_000, limit: .init(nanoseconds: 300_000_000)))
    #expect(sure.band.convergence == .converges)
    #expect(sure.band.totalSeconds.min == sure.totalSeconds && sure.band.totalSeconds.max == sure.totalSeconds)
}

@Test("inputs out of their domain are refused")
func invalidPrecopyInputs() {
    var i = inputs(rate: 1, workingSet: 1, dataPages: 1, limit: .init(nanoseconds: 1))
    i.link.bandwidth.bytesPerSecond = 0
    #expect(throws: ModelError.self) { try PrecopyPrediction(i) }
    i = inputs(rate: 1, workingSet: 1, dataPages: 1, limit: .init(nanoseconds: 1), maxPasses: 0)
    #expect(throws: ModelError.self) { try PrecopyPrediction(i) }
    i = inputs(rate: -1, workingSet: 1, dataPages: 1, limit: .init(nanoseconds: 1))
    #expect(throws: ModelError.self) { try PrecopyPrediction(i) }
}

@Test("the prediction is JSON with snake_case keys, carries its inputs and survives a round trip")
func precopyCodable() throws {
    let p = try PrecopyPrediction(inputs(rate: 50_000, workingSet: 1e6, dataPages: 1_000_000, limit: .init(nanoseconds: 300_000_000),
                                         budget: .init(seconds: 60)))
    let json = try JSONEncoder().encode(p)
    let text = String(decoding: json, as: UTF8.self)
    for key in ["\"downtime_seconds\"", "\"time_budget_seconds\"", "\"pages_left\"", "\"bytes_per_second\"", "\"working_set_pages\""] {
        #expect(text.contains(key))
    }
    #expect(try JSONDecoder().decode(PrecopyPrediction.self, from: json) == p)
}

import Foundation
import Testing
import Traces
@testable import ConvergenceModel

@Test("an exact curve gives back its r and W within 1%", arguments: [
    (rate: 50_000.0, workingSet: 1_000_000.0, step: 1.0),
    (rate: 2_000.0, workingSet: 30_000.0, step: 0.5),
    (rate: 1e6, workingSet: 4e6, step: 0.1),
])
func exactCurve(rate: Double, workingSet: Double, step: Double) throws {
    let fit = try DirtyRateFit(fitting: curveSamples(rate: rate, workingSet: workingSet, step: step, count: 60))
    #expect(fit.shape == .saturating)
    #expect(close(fit.pagesPerSecond, rate, within: 0.01))
    #expect(close(try #require(fit.workingSetPages), workingSet, within: 0.01))
    #expect(!fit.workingSetAtObservedMaximum)
    #expect(fit.rmsResidualPages < 1e-6 * workingSet)
}

@Test("noisy curves: the truth lies within the reported standard errors as often as it should")
func noisyCurves() throws {
    let rate = 50_000.0, workingSet = 1_000_000.0, noise = 5_000.0
    var withinOne = (r: 0, w: 0)
    let runs = 40
    for seed in 1...UInt64(runs) {
        var rng = SeededRandom(seed: seed)
        // The rising part only (U ≤ 0.78 W), so that no noisy count passes W.
        let samples = curveSamples(rate: rate, workingSet: workingSet, step: 0.5, count: 60).map {
            DirtySample(elapsedSeconds: $0.elapsedSeconds, pages: $0.pages + noise * rng.gaussian())
        }
        let fit = try DirtyRateFit(fitting: samples)
        let w = try #require(fit.workingSetPages), wError = try #require(fit.workingSetPagesError)
        #expect(fit.shape == .saturating)
        #expect(abs(fit.pagesPerSecond - rate) <= 3 * fit.pagesPerSecondError)
        #expect(abs(w - workingSet) <= 3 * wError)
        #expect(fit.pagesPerSecondError < 0.05 * rate && wError < 0.05 * workingSet)
        #expect(close(fit.rmsResidualPages, noise, within: 0.3))
        if abs(fit.pagesPerSecond - rate) <= fit.pagesPerSecondError { withinOne.r += 1 }
        if abs(w - workingSet) <= wError { withinOne.w += 1 }
    }
    // ±1σ should hold about 68% of the truth: neither far too narrow nor far too wide.
    #expect((0.45...0.9).contains(Double(withinOne.r) / Double(runs)))
    #expect((0.45...0.9).contains(Double(withinOne.w) / Double(runs)))
}

@Test("a uniform synthetic trace gives back its rate and page count within 3%")
func syntheticTrace() throws {
    let pages: UInt64 = 50_000, rate = 10_000.0
    let samples = try withSyntheticTrace(.init(kind: .uniform, pages: pages, writesPerSecond: rate, seed: 1),
                                         seconds: 20, intervalMilliseconds: 100) { trace in
        try DirtySample.series(from: trace, startInterval: 10, intervals: 150)
    }
    #expect(samples.count == 150)
    #expect(samples.first?.elapsedSeconds == 0.1 && samples.last?.elapsedSeconds == 15)
    #expect(zip(samples, samples.dropFirst()).allSatisfy { $0.pages <= $1.pages })
    let fit = try DirtyRateFit(fitting: samples)
    #expect(fit.shape == .saturating)
    #expect(close(fit.pagesPerSecond, rate, within: 0.03))
    #expect(close(try #require(fit.workingSetPages), Double(pages), within: 0.03))
}

@Test("the trace helper refuses a window past the end of the trace")
func traceWindowOutOfRange() throws {
    try withSyntheticTrace(.init(kind: .uniform, pages: 100, writesPerSecond: 10, seed: 1), seconds: 1, intervalMilliseconds: 100) { trace throws in
        #expect(throws: TraceError.self) { try DirtySample.series(from: trace, startInterval: 5, intervals: 6) }
        #expect(try DirtySample.series(from: trace, startInterval: 5, intervals: 5).count == 5)
    }
}

@Test("fewer than 3 distinct times is too few")
func tooFewSamples() {
    let two = curveSamples(rate: 10, workingSet: 100, step: 1, count: 2)
    #expect(throws: ModelError.tooFewSamples(given: 2, needed: 3)) { try DirtyRateFit(fitting: two) }
    #expect(throws: ModelError.tooFewSamples(given: 2, needed: 3)) { try DirtyRateFit(fitting: two + two) }
}

@Test("impossible samples are refused with their index")
func invalidSamples() {
    var samples = curveSamples(rate: 10, workingSet: 100, step: 1, count: 5)
    samples[3].pages = -1
    #expect(throws: ModelError.invalidSample(index: 3, problem: "-1.0 is not a page count")) { try DirtyRateFit(fitting: samples) }
    samples[3].pages = 1
    samples[1].elapsedSeconds = 0
    #expect(throws: ModelError.self) { try DirtyRateFit(fitting: samples) }
}

@Test("no page dirtied: r = 0 and W = 0, and every prediction follows")
func idleGuest() throws {
    let samples = (1...10).map { DirtySample(elapsedSeconds: Double($0), pages: 0) }
    let fit = try DirtyRateFit(fitting: samples)
    #expect(fit.shape == .idle)
    #expect(fit.pagesPerSecond == 0 && fit.workingSetPages == 0)
    #expect(fit.pagesDirtied(within: 100) == 0)
}

@Test("a straight line: no saturation in sight, W unknown, r from the line")
func straightLine() throws {
    let samples = (1...30).map { DirtySample(elapsedSeconds: Double($0) * 0.2, pages: 12_345 * Double($0) * 0.2) }
    let fit = try DirtyRateFit(fitting: samples)
    #expect(fit.shape == .linear)
    #expect(fit.workingSetPages == nil && fit.workingSetPagesError == nil)
    #expect(close(fit.pagesPerSecond, 12_345, within: 1e-9))
    #expect(fit.pagesDirtied(within: 100) == fit.pagesPerSecond * 100)
}

@Test("a noisy straight line is linear too, with r within its error")
func noisyStraightLine() throws {
    var rng = SeededRandom(seed: 7)
    let samples = (1...40).map { k in
        DirtySample(elapsedSeconds: Double(k), pages: 5_000 * Double(k) + 200 * rng.gaussian())
    }
    let fit = try DirtyRateFit(fitting: samples)
    #expect(fit.shape == .linear)
    #expect(abs(fit.pagesPerSecond - 5_000) <= 3 * fit.pagesPerSecondError)
    #expect(fit.pagesPerSecondError > 0)
}

@Test("a count above the curve's asymptote holds W at the largest count")
func workingSetBound() throws {
    // A plateau at 9,800 pages, then a last burst to 10,000: the free least-squares asymptote
    // stays near 9,800, but a working set smaller than a count already seen cannot be.
    var samples = curveSamples(rate: 4_000, workingSet: 9_800, step: 0.5, count: 40)
    samples[39].pages = 10_000
    let fit = try DirtyRateFit(fitting: samples)
    #expect(fit.shape == .saturating)
    #expect(fit.workingSetAtObservedMaximum)
    #expect(fit.workingSetPages == 10_000)
    #expect(close(fit.pagesPerSecond, 4_000, within: 0.1))
}

@Test("a solver out of iterations is a typed error, not a guess")
func notConverged() {
    let samples = curveSamples(rate: 50_000, workingSet: 1_000_000, step: 1, count: 60)
    #expect(throws: ModelError.fitDidNotConverge(iterations: 1)) { try DirtyRateFit(fitting: samples, maxIterations: 1) }
}

@Test("the fit is JSON with snake_case keys and survives a round trip")
func fitCodable() throws {
    let fit = try DirtyRateFit(fitting: curveSamples(rate: 100, workingSet: 1_000, step: 1, count: 20))
    let json = try JSONEncoder().encode(fit)
    let text = String(decoding: json, as: UTF8.self)
    for key in ["\"pages_per_second\"", "\"working_set_pages_error\"", "\"rms_residual_pages\"", "\"elapsed_seconds\""] {
        #expect(text.contains(key))
    }
    #expect(try JSONDecoder().decode(DirtyRateFit.self, from: json) == fit)
}

import Testing
import Traces
@testable import ConvergenceModel

/// Cumulative bytes every `step` seconds from 0 to `seconds` at `rate`, after `stalled` samples
/// in which nothing moves (connection set-up).
func transfer(rate: Double, seconds: Double, step: Double = 0.1, stalled: Int = 0) -> [TransferSample] {
    let n = Int((seconds / step).rounded())
    return (0...n).map { k in
        let t = Double(k) * step
        return TransferSample(seconds: t, bytes: k < stalled ? 0 : rate * (t - Double(stalled) * step))
    }
}

@Test("a steady link after a stalled start: the slope, exactly, with no error")
func steadyLink() throws {
    let samples = transfer(rate: 1.25e9, seconds: 1, stalled: 2)
    let estimate = try BandwidthEstimate(fitting: samples, window: BandwidthWindow(lastSamples: 100, lastSeconds: 100))
    #expect(close(estimate.bytesPerSecond, 1.25e9, within: 1e-9))
    #expect(estimate.standardError < 1e-6 * 1.25e9)
    #expect(estimate.samples.count == samples.count - 2)
    // The same window with the stalled start kept in is biased: that is what skipping is for.
    let naive = try BandwidthEstimate(fitting: samples, window: BandwidthWindow(lastSamples: 100, lastSeconds: 100, skipFirst: 0))
    #expect(naive.bytesPerSecond < 1.25e9 * 0.99)
}

@Test("a link that slows down: the window sees the current speed")
func linkSlowsDown() throws {
    let fast = transfer(rate: 100e6, seconds: 20, step: 0.5)
    let slow = transfer(rate: 50e6, seconds: 10, step: 0.5).dropFirst().map {
        TransferSample(seconds: 20 + $0.seconds, bytes: fast.last!.bytes + $0.bytes)
    }
    let estimate = try BandwidthEstimate(fitting: fast + slow)
    #expect(close(estimate.bytesPerSecond, 50e6, within: 0.01))
    #expect(estimate.samples.first!.seconds >= 20)
}

@Test("noisy samples: the reported standard error matches the spread of the estimates")
func noisyLink() throws {
    let rate = 1e8
    var estimates: [Double] = [], errors: [Double] = []
    for seed in 1...200 as ClosedRange<UInt64> {
        var rng = SeededRandom(seed: seed)
        // Steps of 25 MB, noise of 1 MB: the counter never goes back.
        let samples = transfer(rate: rate, seconds: 5, step: 0.25).map {
            TransferSample(seconds: $0.seconds, bytes: $0.bytes + 1e7 + 1e6 * rng.gaussian())
        }
        let estimate = try BandwidthEstimate(fitting: samples)
        #expect(abs(estimate.bytesPerSecond - rate) <= 4 * estimate.standardError)
        estimates.append(estimate.bytesPerSecond)
        errors.append(estimate.standardError)
    }
    let mean = estimates.reduce(0, +) / Double(estimates.count)
    let spread = (estimates.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(estimates.count - 1)).squareRoot()
    let meanError = errors.reduce(0, +) / Double(errors.count)
    #expect(close(mean, rate, within: 0.01))
    #expect(close(meanError, spread, within: 0.25))
}

@Test("too few samples, and counters that go back, are refused")
func badTransferSamples() {
    #expect(throws: ModelError.tooFewSamples(given: 2, needed: 3)) {
        try BandwidthEstimate(fitting: [TransferSample(seconds: 0, bytes: 0), TransferSample(seconds: 1, bytes: 10)])
    }
    let back = [TransferSample(seconds: 0, bytes: 0), TransferSample(seconds: 1, bytes: 10), TransferSample(seconds: 2, bytes: 5)]
    #expect(throws: ModelError.self) { try BandwidthEstimate(fitting: back) }
}

@Test("a stalled link is a bandwidth of 0, not an error")
func stalledLink() throws {
    let samples = (0..<5).map { TransferSample(seconds: Double($0), bytes: 1_000) }
    #expect(try BandwidthEstimate(fitting: samples).bytesPerSecond == 0)
}

// migpilot-model-bench: what one dirty-rate fit and one prediction cost, in a release build.
//   swift build -c release --product migpilot-model-bench && .build/release/migpilot-model-bench
import ConvergenceModel
import Glibc
import Migration
import Traces

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Median over 5 rounds of the time per call of `body`, in microseconds.
func time(_ name: String, calls: Int, _ body: () throws -> Void) rethrows {
    var rounds: [Double] = []
    for _ in 0..<5 {
        let t0 = now()
        for _ in 0..<calls { try body() }
        rounds.append((now() - t0) / Double(calls) * 1e6)
    }
    print("\(name): \(formatFixed(percentile(rounds.sorted(), 50), decimals: 1)) µs per call (median of 5 rounds of \(calls))")
}

// 60 samples of U(t) = W·(1 − e^(−r·t/W)), r = 50,000 pages/s, W = 1,000,000 pages, with noise.
var rng = SeededRandom(seed: 1)
let samples = (1...60).map { k -> DirtySample in
    let t = Double(k) * 0.5, u = 1e6 * (1 - exp(-5e4 * t / 1e6))
    let noise = (Double.random(in: 0..<1, using: &rng) - 0.5) * 1e4
    return DirtySample(elapsedSeconds: t, pages: u + noise)
}
let fit = try DirtyRateFit(fitting: samples)
print("fit: r = \(formatFixed(fit.pagesPerSecond, decimals: 0)) ± \(formatFixed(fit.pagesPerSecondError, decimals: 0)) pages/s, "
      + "W = \(formatFixed(fit.workingSetPages ?? .nan, decimals: 0)) ± \(formatFixed(fit.workingSetPagesError ?? .nan, decimals: 0)) pages, "
      + "\(fit.iterations) iterations")
try time("dirty-rate fit, 60 samples", calls: 2_000) { _ = try DirtyRateFit(fitting: samples) }

let link = PageLink(bandwidth: BandwidthEstimate(Bandwidth(bytesPerSecond: 1.25e9), standardError: 5e7))
let precopy = PrecopyInputs(fit: fit, link: link, dataPages: 2_000_000, zeroPages: 500_000,
                            downtimeLimit: TimeSpan(nanoseconds: 300_000_000), timeBudget: TimeSpan(seconds: 600))
let p = try PrecopyPrediction(precopy)
print("precopy: \(p.passes.count) passes, converges \(p.converges), total \(formatFixed(p.totalSeconds, decimals: 2)) s "
      + "[\(formatFixed(p.band.totalSeconds.min, decimals: 2)), \(formatFixed(p.band.totalSeconds.max, decimals: 2))], "
      + "downtime \(formatFixed(p.downtimeSeconds * 1e3, decimals: 1)) ms, band \(p.band.convergence)")
try time("precopy prediction with its 27-point band", calls: 20_000) { _ = try PrecopyPrediction(precopy) }

let postcopy = PostcopyInputs(fit: fit, link: link, remainingPages: 800_000, roundTrip: TimeSpan(nanoseconds: 500_000))
let q = try PostcopyPrediction(postcopy)
print("postcopy: finish \(formatFixed(q.finishSeconds, decimals: 2)) s, \(formatFixed(q.expectedRemoteFaults, decimals: 0)) faults, "
      + "stall \(formatFixed(q.expectedStallSeconds, decimals: 3)) s")
try time("postcopy prediction with its 27-point band", calls: 100_000) { _ = try PostcopyPrediction(postcopy) }

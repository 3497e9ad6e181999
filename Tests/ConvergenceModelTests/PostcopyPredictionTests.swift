import Foundation
import Migration
import Testing
import Traces
@testable import ConvergenceModel

private let pageBytes = 4096.0 + 8
private let link = PageLink(bandwidth: BandwidthEstimate(Bandwidth(bytesPerSecond: 1.25e8)))  // 1 Gbit/s, 4 KiB pages

private func predict(rate: Double, workingSet: Double?, remaining: UInt64, rtt: Double = 0.0005) throws -> PostcopyPrediction {
    try PostcopyPrediction(PostcopyInputs(fit: .assumed(pagesPerSecond: rate, workingSetPages: workingSet), link: link,
                                          remainingPages: remaining, roundTrip: TimeSpan(seconds: rtt)))
}

@Test("the push takes R·(s+h)/B and each fault stalls the guest for RTT + (s+h)/B")
func finishAndStall() throws {
    let p = try predict(rate: 10_000, workingSet: 100_000, remaining: 50_000)
    #expect(close(p.finishSeconds, 50_000 * pageBytes / 1.25e8, within: 1e-12))
    #expect(p.expectedRemoteFaults > 0)
    #expect(close(p.expectedStallSeconds, p.expectedRemoteFaults * (0.0005 + pageBytes / 1.25e8), within: 1e-12))
}

@Test("faults go to 0 as the guest idles and to R as it writes ever faster")
func faultLimits() throws {
    let r: UInt64 = 20_000
    #expect(try predict(rate: 1e-6, workingSet: 20_000, remaining: r).expectedRemoteFaults < 1e-6)
    #expect(try predict(rate: 0, workingSet: 0, remaining: r).expectedRemoteFaults == 0)
    #expect(close(try predict(rate: 1e12, workingSet: 20_000, remaining: r).expectedRemoteFaults, 20_000, within: 1e-3))
    // Only the part of R inside the working set can fault.
    #expect(close(try predict(rate: 1e12, workingSet: 5_000, remaining: r).expectedRemoteFaults, 5_000, within: 1e-3))
    let faults = try [1e2, 1e3, 1e4, 1e5, 1e6].map { try predict(rate: $0, workingSet: 20_000, remaining: r).expectedRemoteFaults }
    #expect(zip(faults, faults.dropFirst()).allSatisfy { $0 < $1 })
}

/// Remote faults when `remaining` pages are pushed in a random order, one every (s+h)/B, and
/// the first `min(remaining, workingSet)` of them in a random choice are written as Poisson
/// processes of rate r/W.
private func monteCarloFaults(rate: Double, workingSet: Int, remaining: Int, seed: UInt64) -> Int {
    var rng = SeededRandom(seed: seed)
    let perPage = pageBytes / 1.25e8
    let arrival = (0..<remaining).map { Double($0 + 1) * perPage }.shuffled(using: &rng)
    let lambda = rate / Double(workingSet)
    var faults = 0
    for page in 0..<min(remaining, workingSet) where rng.exponential(lambda) < arrival[page] { faults += 1 }
    return faults
}

@Test("the closed form agrees with a Monte-Carlo of random arrivals and Poisson writes within 5%", arguments: [
    (workingSet: 20_000, remaining: 20_000, touchesPerPush: 1.0),
    (workingSet: 40_000, remaining: 20_000, touchesPerPush: 3.0),
    (workingSet: 10_000, remaining: 20_000, touchesPerPush: 0.3),
])
func monteCarlo(workingSet: Int, remaining: Int, touchesPerPush: Double) throws {
    let push = Double(remaining) * pageBytes / 1.25e8
    let rate = touchesPerPush * Double(workingSet) / push  // (r/W)·T = touchesPerPush
    let p = try predict(rate: rate, workingSet: Double(workingSet), remaining: UInt64(remaining))
    let simulated = (1...4).map { monteCarloFaults(rate: rate, workingSet: workingSet, remaining: remaining, seed: $0) }
    let mean = Double(simulated.reduce(0, +)) / Double(simulated.count)
    #expect(close(p.expectedRemoteFaults, mean, within: 0.05))
}

@Test("with no saturation in sight W is the smallest working set the data allows: the most faults")
func unboundedWorkingSet() throws {
    let line = try predict(rate: 50_000, workingSet: nil, remaining: 30_000)
    let bounded = try predict(rate: 50_000, workingSet: 30_000, remaining: 30_000)
    #expect(close(line.expectedRemoteFaults, bounded.expectedRemoteFaults, within: 1e-12))
    #expect(try predict(rate: 50_000, workingSet: 60_000, remaining: 30_000).expectedRemoteFaults < line.expectedRemoteFaults)
}

@Test("the error band spans the estimate")
func postcopyBand() throws {
    let inputs = PostcopyInputs(fit: .assumed(pagesPerSecond: 30_000, workingSetPages: 200_000, pagesPerSecondError: 3_000,
                                              workingSetPagesError: 20_000),
                                link: PageLink(bandwidth: BandwidthEstimate(Bandwidth(bytesPerSecond: 1.25e8), standardError: 1e7)),
                                remainingPages: 150_000, roundTrip: TimeSpan(seconds: 0.001))
    let p = try PostcopyPrediction(inputs)
    #expect(p.band.expectedRemoteFaults.contains(p.expectedRemoteFaults))
    #expect(p.band.expectedRemoteFaults.min < p.expectedRemoteFaults && p.expectedRemoteFaults < p.band.expectedRemoteFaults.max)
    #expect(p.band.finishSeconds.contains(p.finishSeconds) && p.band.finishSeconds.min < p.band.finishSeconds.max)
    #expect(p.band.expectedStallSeconds.contains(p.expectedStallSeconds))

    let json = String(decoding: try JSONEncoder().encode(p), as: UTF8.self)
    for key in ["\"expected_remote_faults\"", "\"round_trip_seconds\"", "\"remaining_pages\"", "\"finish_seconds\""] {
        #expect(json.contains(key))
    }
}

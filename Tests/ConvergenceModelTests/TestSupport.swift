import Foundation
import Traces
@testable import ConvergenceModel

/// U(t) = W·(1 − e^(−r·t/W)), written out again here so that the tests do not check the model
/// against itself.
func saturating(_ t: Double, rate r: Double, workingSet w: Double) -> Double {
    w * (1 - exp(-r * t / w))
}

/// Samples of the exact curve at t = step, 2·step, … count·step.
func curveSamples(rate: Double, workingSet: Double, step: Double, count: Int) -> [DirtySample] {
    (1...count).map { k in
        let t = Double(k) * step
        return DirtySample(elapsedSeconds: t, pages: saturating(t, rate: rate, workingSet: workingSet))
    }
}

extension SeededRandom {
    /// A standard normal deviate (Box–Muller).
    mutating func gaussian() -> Double {
        let u1 = Double.random(in: Double.ulpOfOne..<1, using: &self)
        let u2 = Double.random(in: 0..<1, using: &self)
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    /// An exponential deviate of rate `lambda`.
    mutating func exponential(_ lambda: Double) -> Double {
        -log(Double.random(in: Double.ulpOfOne..<1, using: &self)) / lambda
    }
}

/// |a − b| ≤ tolerance·|b|.
func close(_ a: Double, _ b: Double, within tolerance: Double) -> Bool {
    abs(a - b) <= tolerance * abs(b)
}

/// Writes a synthetic trace to a temporary file, opens it for `body`, and removes it.
func withSyntheticTrace<T>(_ spec: SyntheticWorkload.Spec, seconds: UInt64, intervalMilliseconds: UInt64,
                           _ body: (TraceReader) throws -> T) throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-model-\(UUID().uuidString).trace").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    try SyntheticTrace.write(spec, durationNanoseconds: seconds * 1_000_000_000,
                             intervalNanoseconds: intervalMilliseconds * 1_000_000, to: path)
    return try body(try TraceReader(path: path))
}

import Glibc

/// The saturating curve of distinct pages dirtied within `t` seconds of a dirty-bitmap sync,
/// U(t) = W·(1 − e^(−r·t/W)): each of W pages is written as a Poisson process of rate r/W.
/// A nil W is the limit W → ∞ (U(t) = r·t: no saturation in sight).
struct DirtyCurve: Sendable, Equatable {
    /// r, pages per second.
    var rate: Double
    /// W, pages; nil when unbounded.
    var workingSet: Double?

    /// U(t).
    func pages(within t: Double) -> Double {
        guard let w = workingSet else { return rate * t }
        guard w > 0 else { return 0 }
        return rate * t * chordRatio(rate * t / w)
    }
}

/// φ(z) = (1 − e^(−z))/z, with φ(0) = 1: U(t) = r·t·φ(r·t/W). It is the chord slope of the
/// curve relative to its initial slope, and also the mean of e^(−λτ) over τ uniform in [0, T]
/// with z = λT (the postcopy integral).
func chordRatio(_ z: Double) -> Double {
    abs(z) < 1e-8 ? 1 - z / 2 : -expm1(-z) / z
}

/// φ′(z), by its series near 0 where the closed form cancels.
func chordRatioDerivative(_ z: Double) -> Double {
    if abs(z) < 1e-4 { return -0.5 + z / 3 - z * z / 8 }
    return (z * exp(-z) + expm1(-z)) / (z * z)
}

/// The smallest and largest value a prediction takes when its inputs move by ±1 standard error.
public struct ValueRange: Codable, Sendable, Equatable {
    public var min: Double
    public var max: Double

    public init(min: Double, max: Double) {
        self.min = min
        self.max = max
    }

    init(of values: [Double]) {
        self.init(min: values.min() ?? 0, max: values.max() ?? 0)
    }

    public func contains(_ value: Double) -> Bool { min <= value && value <= max }
}

/// `body` evaluated at the 27 combinations (9 when W is unbounded) of r, W and B, each at −1σ,
/// its estimate and +1σ. r stays ≥ 0; W stays at least the largest count observed (and 1% of
/// its estimate); B stays at least 1% of its estimate. The estimate itself comes first.
func overErrorBand<T>(_ fit: DirtyRateFit, _ bandwidth: BandwidthEstimate, _ body: (DirtyCurve, Double) -> T) -> [T] {
    let r = fit.pagesPerSecond, b = bandwidth.bytesPerSecond
    let rates = [r, max(0, r - fit.pagesPerSecondError), r + fit.pagesPerSecondError]
    let sets: [Double?] = fit.workingSetPages.map { w in
        let e = fit.workingSetPagesError ?? 0
        return [w, max(w - e, fit.maxObservedPages, w / 100), w + e]
    } ?? [nil]
    let speeds = [b, max(b - bandwidth.standardError, b / 100), b + bandwidth.standardError]
    var results: [T] = []
    for rate in rates {
        for set in sets {
            for speed in speeds { results.append(body(DirtyCurve(rate: rate, workingSet: set), speed)) }
        }
    }
    return results
}

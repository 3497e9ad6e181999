import Migration

/// Everything a postcopy prediction depends on; it goes into the prediction unchanged.
public struct PostcopyInputs: Codable, Sendable, Equatable {
    public var fit: DirtyRateFit
    public var link: PageLink
    /// R, pages still on the source at the switch to postcopy.
    public var remainingPages: UInt64
    /// Round trip of a page request over the return path.
    public var roundTripSeconds: Double

    public init(fit: DirtyRateFit, link: PageLink, remainingPages: UInt64, roundTrip: TimeSpan) {
        self.fit = fit
        self.link = link
        self.remainingPages = remainingPages
        roundTripSeconds = roundTrip.seconds
    }

    enum CodingKeys: String, CodingKey {
        case fit, link
        case remainingPages = "remaining_pages"
        case roundTripSeconds = "round_trip_seconds"
    }
}

/// The spread of a postcopy prediction over its inputs' ±1σ.
public struct PostcopyBand: Codable, Sendable, Equatable {
    public var finishSeconds: ValueRange
    public var expectedRemoteFaults: ValueRange
    public var expectedStallSeconds: ValueRange

    enum CodingKeys: String, CodingKey {
        case finishSeconds = "finish_seconds"
        case expectedRemoteFaults = "expected_remote_faults"
        case expectedStallSeconds = "expected_stall_seconds"
    }
}

/// What postcopy will cost after the switch, with the dirty-rate fit and bandwidth it is given.
///
/// The background push sends the R pages in T = R·(s+h)/B. Each page of the working set is
/// touched as a Poisson process of rate r/W (the model behind U(t)); the min(R, W) pages of R in
/// the working set arrive uniformly over [0, T], and one arriving at τ faults remotely when it was
/// touched before τ, with probability 1 − e^(−(r/W)·τ). Averaged over τ:
/// faults = min(R, W)·(1 − φ(r·T/W)), φ(x) = (1 − e^(−x))/x. Each fault stalls the guest for
/// RTT + (s+h)/B. With no saturation in sight (W unknown) W is taken as the smallest working set
/// the samples and R allow, max(R, largest count): the most faults. See docs/model.md.
public struct PostcopyPrediction: Codable, Sendable, Equatable {
    public var inputs: PostcopyInputs
    /// T, seconds until the background push has sent every page.
    public var finishSeconds: Double
    public var expectedRemoteFaults: Double
    /// Guest stall from remote faults, summed over the faults.
    public var expectedStallSeconds: Double
    public var band: PostcopyBand

    enum CodingKeys: String, CodingKey {
        case inputs
        case finishSeconds = "finish_seconds"
        case expectedRemoteFaults = "expected_remote_faults"
        case expectedStallSeconds = "expected_stall_seconds"
        case band
    }

    public init(_ inputs: PostcopyInputs) throws(ModelError) {
        try inputs.fit.validate()
        try inputs.link.validate()
        guard inputs.roundTripSeconds.isFinite, inputs.roundTripSeconds >= 0 else {
            throw .invalidInput("the round trip must be a finite number of seconds ≥ 0")
        }
        let band = overErrorBand(inputs.fit, inputs.link.bandwidth) { Self.evaluate(inputs, $0, $1) }
        self.inputs = inputs
        (finishSeconds, expectedRemoteFaults, expectedStallSeconds) = band[0]
        self.band = PostcopyBand(finishSeconds: ValueRange(of: band.map(\.finish)),
                                 expectedRemoteFaults: ValueRange(of: band.map(\.faults)),
                                 expectedStallSeconds: ValueRange(of: band.map(\.stall)))
    }

    private static func evaluate(_ inputs: PostcopyInputs, _ curve: DirtyCurve, _ bytesPerSecond: Double)
        -> (finish: Double, faults: Double, stall: Double) {
        let pages = Double(inputs.remainingPages)
        let perPage = inputs.link.bytesPerDataPage / bytesPerSecond
        let finish = pages * perPage
        let workingSet = curve.workingSet ?? max(pages, inputs.fit.maxObservedPages)
        guard workingSet > 0, curve.rate > 0 else { return (finish, 0, 0) }
        let faults = min(pages, workingSet) * (1 - chordRatio(curve.rate / workingSet * finish))
        return (finish, faults, faults * (inputs.roundTripSeconds + perPage))
    }
}

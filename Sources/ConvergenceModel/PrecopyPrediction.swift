import Glibc
import Migration

/// Everything a precopy prediction depends on; it goes into the prediction unchanged.
public struct PrecopyInputs: Codable, Sendable, Equatable {
    public var fit: DirtyRateFit
    public var link: PageLink
    /// P1, pages holding data: sent whole in the first pass.
    public var dataPages: UInt64
    /// Z, zero pages: sent as a header in the first pass.
    public var zeroPages: UInt64
    /// L, the downtime limit.
    public var downtimeLimitSeconds: Double
    /// Precopy gives up after the pass that reaches this many seconds; nil for no budget.
    public var timeBudgetSeconds: Double?
    /// Precopy gives up after this many passes (1…10,000).
    public var maxPasses: Int

    public init(fit: DirtyRateFit, link: PageLink, dataPages: UInt64, zeroPages: UInt64 = 0, downtimeLimit: TimeSpan,
                timeBudget: TimeSpan? = nil, maxPasses: Int = 30) {
        self.fit = fit
        self.link = link
        self.dataPages = dataPages
        self.zeroPages = zeroPages
        downtimeLimitSeconds = downtimeLimit.seconds
        timeBudgetSeconds = timeBudget?.seconds
        self.maxPasses = maxPasses
    }

    enum CodingKeys: String, CodingKey {
        case fit, link
        case dataPages = "data_pages"
        case zeroPages = "zero_pages"
        case downtimeLimitSeconds = "downtime_limit_seconds"
        case timeBudgetSeconds = "time_budget_seconds"
        case maxPasses = "max_passes"
    }

    func validate() throws(ModelError) {
        try fit.validate()
        try link.validate()
        guard downtimeLimitSeconds.isFinite, downtimeLimitSeconds >= 0 else {
            throw .invalidInput("the downtime limit must be a finite number of seconds ≥ 0")
        }
        if let budget = timeBudgetSeconds, !(budget.isFinite && budget > 0) {
            throw .invalidInput("the time budget must be a finite number of seconds > 0")
        }
        guard (1...10_000).contains(maxPasses) else { throw .invalidInput("max passes must be in 1…10,000, not \(maxPasses)") }
    }
}

/// One precopy pass.
public struct PrecopyPass: Codable, Sendable, Equatable {
    /// Pages holding data sent in the pass (expected value from pass 2 on).
    public var pagesSent: Double
    /// Zero pages sent as a header only (first pass).
    public var zeroPagesSent: Double
    public var bytes: Double
    public var seconds: Double
    /// Pages dirtied while the pass ran: what is left to send after it, U(seconds).
    public var pagesLeft: Double

    enum CodingKeys: String, CodingKey {
        case pagesSent = "pages_sent"
        case zeroPagesSent = "zero_pages_sent"
        case bytes, seconds
        case pagesLeft = "pages_left"
    }
}

/// Whether precopy converges across the error band.
public enum ConvergenceCertainty: String, Codable, Sendable {
    /// At every ±1σ combination of the inputs.
    case converges
    /// At some combinations, not at others.
    case uncertain
    /// At none.
    case doesNotConverge = "does_not_converge"
}

/// The spread of a precopy prediction over its inputs' ±1σ.
public struct PrecopyBand: Codable, Sendable, Equatable {
    public var totalSeconds: ValueRange
    public var downtimeSeconds: ValueRange
    public var convergence: ConvergenceCertainty

    enum CodingKeys: String, CodingKey {
        case totalSeconds = "total_seconds"
        case downtimeSeconds = "downtime_seconds"
        case convergence
    }
}

/// What precopy will do, pass by pass, with the dirty-rate fit and bandwidth it is given.
///
/// Pass 1 sends P1 pages and Z zero-page headers in T1 = (P1·(s+h) + Z·h)/B; pass k+1 sends the
/// D_k = U(T_k) pages dirtied during pass k in D_k·(s+h)/B (never more than the guest's P1 + Z
/// pages). Precopy stops at the first point — before pass 1 or after any pass — where what is
/// pending fits the downtime limit, pending·(s+h) ≤ B·L; the stop-and-copy then takes
/// pending·(s+h)/B. When it does not converge within the passes and the time budget, totals and
/// downtime are those of a stop-and-copy forced after the last pass.
public struct PrecopyPrediction: Codable, Sendable, Equatable {
    public var inputs: PrecopyInputs
    public var passes: [PrecopyPass]
    public var converges: Bool
    /// Why precopy does not converge; nil when it does.
    public var reason: String?
    /// Passes plus the final stop-and-copy.
    public var totalSeconds: Double
    public var totalBytes: Double
    /// The stop-and-copy: pending·(s+h)/B at the stop.
    public var downtimeSeconds: Double
    public var band: PrecopyBand

    enum CodingKeys: String, CodingKey {
        case inputs, passes, converges, reason
        case totalSeconds = "total_seconds"
        case totalBytes = "total_bytes"
        case downtimeSeconds = "downtime_seconds"
        case band
    }

    public init(_ inputs: PrecopyInputs) throws(ModelError) {
        try inputs.validate()
        let band = overErrorBand(inputs.fit, inputs.link.bandwidth) { Run(inputs, $0, $1) }
        let run = band[0]
        let converging = band.filter(\.converges).count
        self.inputs = inputs
        passes = run.passes
        converges = run.converges
        reason = run.converges ? nil : run.reason(inputs)
        totalSeconds = run.totalSeconds
        totalBytes = run.totalBytes
        downtimeSeconds = run.downtimeSeconds
        self.band = PrecopyBand(totalSeconds: ValueRange(of: band.map(\.totalSeconds)),
                                downtimeSeconds: ValueRange(of: band.map(\.downtimeSeconds)),
                                convergence: converging == band.count ? .converges : converging == 0 ? .doesNotConverge : .uncertain)
    }

    /// The recursion at one (r, W, B).
    private struct Run {
        let curve: DirtyCurve
        let bytesPerSecond: Double
        var passes: [PrecopyPass] = []
        var converges = false
        var outOfTime = false
        var pendingPages = 0.0
        var totalSeconds = 0.0
        var totalBytes = 0.0
        var downtimeSeconds = 0.0

        init(_ inputs: PrecopyInputs, _ curve: DirtyCurve, _ bytesPerSecond: Double) {
            self.curve = curve
            self.bytesPerSecond = bytesPerSecond
            let pageBytes = inputs.link.bytesPerDataPage, limitBytes = bytesPerSecond * inputs.downtimeLimitSeconds
            let guestPages = Double(inputs.dataPages + inputs.zeroPages)
            var send = (data: Double(inputs.dataPages), zero: Double(inputs.zeroPages))
            var pendingBytes = send.data * pageBytes + send.zero * Double(inputs.link.headerBytes)
            var elapsed = 0.0
            converges = pendingBytes <= limitBytes
            while !converges, passes.count < inputs.maxPasses, !outOfTime {
                let seconds = pendingBytes / bytesPerSecond
                let left = min(curve.pages(within: seconds), guestPages)
                passes.append(PrecopyPass(pagesSent: send.data, zeroPagesSent: send.zero, bytes: pendingBytes,
                                          seconds: seconds, pagesLeft: left))
                totalBytes += pendingBytes
                elapsed += seconds
                send = (left, 0)
                pendingBytes = left * pageBytes
                converges = pendingBytes <= limitBytes
                outOfTime = inputs.timeBudgetSeconds.map { elapsed >= $0 } ?? false
            }
            pendingPages = send.data + send.zero
            downtimeSeconds = pendingBytes / bytesPerSecond
            totalBytes += pendingBytes
            totalSeconds = elapsed + downtimeSeconds
        }

        /// Why the recursion did not converge, in an operator's words.
        func reason(_ inputs: PrecopyInputs) -> String {
            let pageBytes = inputs.link.bytesPerDataPage
            let linkPages = bytesPerSecond / pageBytes
            let limit = TimeSpan(seconds: inputs.downtimeLimitSeconds)
            // Passes shrink towards the fixed point D* = U(D*·(s+h)/B), positive when r ≥ B/(s+h).
            let settle = min(fixedPoint(linkPages: linkPages), Double(inputs.dataPages + inputs.zeroPages))
            if curve.rate >= linkPages, settle * pageBytes > bytesPerSecond * inputs.downtimeLimitSeconds {
                return "dirty rate \(grouped(curve.rate)) pages/s outruns the link (\(grouped(linkPages)) pages/s): passes "
                    + "stop shrinking at about \(grouped(settle)) pages (\(formatSeconds(settle * pageBytes / bytesPerSecond)) to send), "
                    + "above the \(limit) downtime limit"
            }
            let left = "\(grouped(pendingPages)) pages (\(formatSeconds(downtimeSeconds)) to send) are still pending, above the \(limit) downtime limit"
            if outOfTime {
                return "the \(formatSeconds(inputs.timeBudgetSeconds!)) time budget runs out after \(passes.count) passes: \(left)"
            }
            return "after \(passes.count) passes (the most allowed) \(left)"
        }

        /// D* with D* = U(D*/linkPages): y = D*/W solves y = 1 − e^(−a·y), a = r/linkPages
        /// (bisection; y = 0 when a ≤ 1). Unbounded W: passes shrink to 0 or never shrink.
        private func fixedPoint(linkPages: Double) -> Double {
            guard let w = curve.workingSet else { return curve.rate >= linkPages ? .infinity : 0 }
            let a = curve.rate / linkPages
            var lo = 0.0, hi = 1.0
            for _ in 0..<100 {
                let y = (lo + hi) / 2
                if -expm1(-a * y) > y { lo = y } else { hi = y }
            }
            return hi * w
        }
    }
}

/// `value` rounded to a whole number with thousands separators: 52,000.
func grouped(_ value: Double) -> String {
    guard value.isFinite else { return "\(value)" }
    var digits = String(Int64(abs(value).rounded()))
    var out = ""
    while digits.count > 3 {
        out = "," + digits.suffix(3) + out
        digits.removeLast(3)
    }
    return (value < 0 && value.rounded() != 0 ? "-" : "") + digits + out
}

/// Seconds as a person reads them: 13.10 s.
func formatSeconds(_ value: Double) -> String { "\(formatFixed(value, decimals: 2)) s" }

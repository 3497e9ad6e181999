import Glibc
import Traces

/// One observation of the dirty-page process: `pages` distinct pages written within
/// `elapsedSeconds` of a dirty-bitmap sync. A migration backend reports exactly this; a trace
/// gives it as the distinct pages written in [t0, t0 + t).
public struct DirtySample: Codable, Sendable, Equatable {
    public var elapsedSeconds: Double
    public var pages: Double

    public init(elapsedSeconds: Double, pages: Double) {
        self.elapsedSeconds = elapsedSeconds
        self.pages = pages
    }

    enum CodingKeys: String, CodingKey {
        case elapsedSeconds = "elapsed_seconds"
        case pages
    }

    /// The samples a trace gives from interval `startInterval` on: for k = 1…`intervals`, the
    /// distinct pages written in intervals [start, start + k), at k interval lengths.
    public static func series(from trace: TraceReader, startInterval: Int, intervals: Int) throws(TraceError) -> [DirtySample] {
        guard startInterval >= 0, intervals >= 1, startInterval <= trace.intervalCount - intervals else {
            throw TraceError(.invalidArgument, at: nil,
                             "intervals \(startInterval)..<\(startInterval + intervals) are outside the trace's 0..<\(trace.intervalCount)",
                             path: trace.path)
        }
        let seconds = trace.header.intervalSeconds
        var seen = PageBitmap(pages: trace.header.pageCount)
        var samples: [DirtySample] = []
        samples.reserveCapacity(intervals)
        do {
            try trace.forEachInterval(from: startInterval, to: startInterval + intervals) { view in
                for range in view.written { seen.insert(range) }
                samples.append(DirtySample(elapsedSeconds: Double(view.index - startInterval + 1) * seconds, pages: Double(seen.count)))
            }
        } catch let error as TraceError {
            throw error
        } catch {
            throw TraceError(.malformed, at: nil, "\(error)", path: trace.path)  // the body above throws nothing else
        }
        return samples
    }
}

/// The dirty rate r and writable working set W of a guest, fitted to dirty samples as
/// U(t) = W·(1 − e^(−r·t/W)) by GSL's nonlinear least squares, with standard errors from the
/// covariance scaled by the residual variance. Carries the samples it came from.
public struct DirtyRateFit: Codable, Sendable, Equatable {
    /// What the samples show.
    public enum Shape: String, Codable, Sendable {
        /// The curve bends: r and W are both estimated.
        case saturating
        /// No saturation in sight (the curve bends by less than 0.5% over the samples, or not
        /// significantly): W is unknown (nil) and r comes from a straight line through the origin.
        case linear
        /// No page was dirtied: r = 0, W = 0.
        case idle
    }

    public var shape: Shape
    /// r, the initial dirty rate, in pages per second.
    public var pagesPerSecond: Double
    /// Standard error of r.
    public var pagesPerSecondError: Double
    /// W, the writable working set, in pages; nil when the samples show no saturation.
    public var workingSetPages: Double?
    /// Standard error of W; nil with W.
    public var workingSetPagesError: Double?
    /// True when the bound W ≥ max observed count held the fit: the samples have reached the
    /// whole working set (a count of distinct pages can never exceed it).
    public var workingSetAtObservedMaximum: Bool
    /// Root-mean-square residual of the fit, in pages.
    public var rmsResidualPages: Double
    /// Iterations of the nonlinear solver (0 when none ran).
    public var iterations: Int
    /// The samples fitted, as given.
    public var samples: [DirtySample]

    public var sampleCount: Int { samples.count }
    /// The largest distinct-page count among the samples.
    public var maxObservedPages: Double { samples.lazy.map(\.pages).max() ?? 0 }

    /// U(t): expected distinct pages dirtied within `seconds` of a sync.
    public func pagesDirtied(within seconds: Double) -> Double { curve.pages(within: seconds) }

    var curve: DirtyCurve { DirtyCurve(rate: pagesPerSecond, workingSet: workingSetPages) }

    /// Refuses a fit no prediction can use (an `assumed` one with a negative or infinite figure).
    func validate() throws(ModelError) {
        let figures = [pagesPerSecond, pagesPerSecondError, workingSetPages ?? 0, workingSetPagesError ?? 0]
        guard figures.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw .invalidInput("the dirty-rate fit needs finite, non-negative r, W and errors, not r = \(pagesPerSecond) ± \(pagesPerSecondError), "
                                + "W = \(workingSetPages.map { "\($0)" } ?? "unbounded") ± \(workingSetPagesError ?? 0)")
        }
    }

    enum CodingKeys: String, CodingKey {
        case shape
        case pagesPerSecond = "pages_per_second"
        case pagesPerSecondError = "pages_per_second_error"
        case workingSetPages = "working_set_pages"
        case workingSetPagesError = "working_set_pages_error"
        case workingSetAtObservedMaximum = "working_set_at_observed_maximum"
        case rmsResidualPages = "rms_residual_pages"
        case iterations
        case samples
    }

    /// A fit known in advance rather than measured (a what-if, a test): no samples, the given
    /// errors. A nil working set means unbounded.
    public static func assumed(pagesPerSecond: Double, workingSetPages: Double?, pagesPerSecondError: Double = 0,
                               workingSetPagesError: Double = 0) -> DirtyRateFit {
        DirtyRateFit(shape: pagesPerSecond == 0 ? .idle : workingSetPages == nil ? .linear : .saturating,
                     pagesPerSecond: pagesPerSecond, pagesPerSecondError: pagesPerSecondError,
                     workingSetPages: workingSetPages, workingSetPagesError: workingSetPages == nil ? nil : workingSetPagesError,
                     workingSetAtObservedMaximum: false, rmsResidualPages: 0, iterations: 0, samples: [])
    }
}

extension DirtyRateFit {
    /// Fits r and W to `samples` (any order; at least 3 distinct times), giving the solver at
    /// most `maxIterations` iterations.
    ///
    /// The solver works in (ln r, q = M/W), M the largest count: r stays positive, and the
    /// straight line (q = 0) is an ordinary point rather than W = ∞. Then the bounds decide:
    /// q > 1 (W below M) refits r with W = M; q not significantly above 0, or a curve that bends
    /// by less than 0.5% over the samples, is `.linear`.
    public init(fitting samples: [DirtySample], maxIterations: Int = 200) throws(ModelError) {
        for (i, s) in samples.enumerated() {
            guard s.elapsedSeconds.isFinite, s.elapsedSeconds > 0 else {
                throw .invalidSample(index: i, problem: "elapsed time \(s.elapsedSeconds) s is not after the sync")
            }
            guard s.pages.isFinite, s.pages >= 0 else {
                throw .invalidSample(index: i, problem: "\(s.pages) is not a page count")
            }
        }
        let sorted = samples.sorted { $0.elapsedSeconds < $1.elapsedSeconds }
        let t = sorted.map(\.elapsedSeconds), u = sorted.map(\.pages)
        let distinctTimes = Set(t).count
        guard distinctTimes >= 3 else { throw .tooFewSamples(given: distinctTimes, needed: 3) }
        let n = Double(t.count), m = u.max()!, tMax = t.last!
        guard m > 0 else {
            self.init(shape: .idle, pagesPerSecond: 0, pagesPerSecondError: 0, workingSetPages: 0, workingSetPagesError: 0,
                      workingSetAtObservedMaximum: true, rmsResidualPages: 0, iterations: 0, samples: samples)
            return
        }

        // Free fit in (a = ln r, q = M/W).
        let free = try GSL.leastSquares(observed: u, start: Self.start(t: t, u: u, maxPages: m), maxIterations: maxIterations) { p, i, g in
            let rt = exp(p[0]) * t[i], z = rt * p[1] / m
            if let g {
                g[0] = rt * exp(-z)
                g[1] = rt * rt / m * chordRatioDerivative(z)
            }
            return rt * chordRatio(z)
        }
        let q = free.parameters[1]
        let qError = (free.residualSumOfSquares / (n - 2) * free.covariance[3]).squareRoot()
        let bendsVisibly = exp(free.parameters[0]) * tMax * q / m >= 0.01

        if q < 1, !(q > 2 * qError && bendsVisibly) {
            let line = try GSL.proportional(x: t, y: u)
            self.init(shape: .linear, pagesPerSecond: line.slope, pagesPerSecondError: line.slopeVariance.squareRoot(),
                      workingSetPages: nil, workingSetPagesError: nil, workingSetAtObservedMaximum: false,
                      rmsResidualPages: (line.residualSumOfSquares / n).squareRoot(), iterations: free.iterations,
                      samples: samples)
            return
        }

        // W below the largest count cannot be: hold W = M and refit r alone.
        var solution = (r: exp(free.parameters[0]), w: m / q, ssr: free.residualSumOfSquares, iterations: free.iterations)
        if q >= 1 {
            let held = try GSL.leastSquares(observed: u, start: [free.parameters[0]], maxIterations: maxIterations) { p, i, g in
                let rt = exp(p[0]) * t[i], z = rt / m
                if let g { g[0] = rt * exp(-z) }
                return rt * chordRatio(z)
            }
            solution = (exp(held.parameters[0]), m, held.residualSumOfSquares, free.iterations + held.iterations)
        }

        // Standard errors of (r, W) from the Jacobian in those coordinates.
        let (r, w) = (solution.r, solution.w)
        let rows = t.map { ti -> [Double] in
            let x = r * ti / w, e = exp(-x)
            return [ti * e, -expm1(-x) - x * e]
        }
        let c = try GSL.covariance(jacobianRows: rows)
        let variance = solution.ssr / (n - 2)
        self.init(shape: .saturating, pagesPerSecond: r, pagesPerSecondError: (variance * c[0]).squareRoot(),
                  workingSetPages: w, workingSetPagesError: (variance * c[3]).squareRoot(),
                  workingSetAtObservedMaximum: q >= 1, rmsResidualPages: (solution.ssr / n).squareRoot(),
                  iterations: solution.iterations, samples: samples)
    }

    /// Starting point (ln r₀, q₀): r₀ is the steepest chord of the first three samples (chords of
    /// a concave curve only flatten); W₀ makes the last chord as much flatter as the samples
    /// show, φ(r₀·t/W₀) = (u/t)/r₀, solved by bisection.
    private static func start(t: [Double], u: [Double], maxPages m: Double) -> [Double] {
        let chords = zip(t, u).map { $1 / $0 }
        var r0 = chords.prefix(3).max()!
        if r0 == 0 { r0 = chords.max()! }
        let ratio = chords.last! / r0
        var q0 = 0.01
        if ratio < 0.999 {
            var lo = 0.0, hi = 700.0
            for _ in 0..<60 {
                let mid = (lo + hi) / 2
                if chordRatio(mid) > ratio { lo = mid } else { hi = mid }
            }
            q0 = min(1, max(0.01, m / (r0 * t.last! / lo)))
        }
        return [log(r0), q0]
    }
}

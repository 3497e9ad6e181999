import ConvergenceModel
import Migration

/// The estimate step on the convergence model. It gathers what the backend shows — distinct
/// pages dirtied since each bitmap sync (the saturating curve the model fits) and bytes
/// transferred over time — and, at each decision point (a sync, or what is pending fits the
/// downtime limit), fits the curve with GSL and predicts the rest of precopy from now
/// against finishing in postcopy from now.
public struct ModelEstimator: Estimator {
    public let policy: Policy
    public let pageHeaderBytes: UInt64
    private var dirty: [DirtySample] = []
    private var transfers: [TransferSample] = []
    private var lastAssessment: Assessment?
    /// When (migration seconds) the last bitmap sync was, as the backend reported it.
    private var lastSyncAt: Double?

    /// Samples kept for the fit: enough for several passes, few enough to fit in microseconds.
    static let maxSamples = 240

    public init(policy: Policy, pageHeaderBytes: Int = 8) {
        self.policy = policy
        self.pageHeaderBytes = UInt64(pageHeaderBytes)
    }

    /// Whether the policy reads the model at all; a policy that does not costs no fitting.
    public var isNeeded: Bool { policy.postcopy.whenNotConverging || policy.completion.bandwidth == .predicted }

    public mutating func assess(_ o: Observation) -> Assessment? {
        let s = o.status
        guard isNeeded, s.state == .active else { return nil }
        // A sync ends a period whose distinct dirty pages the backend knows exactly (QEMU's
        // dirty-pages-rate is that count over the period): its sample, even from a backend
        // that cannot count them during the period (QEMU reads its bitmap only at a sync).
        let syncAt = s.elapsedSeconds - s.secondsSinceSync
        if o.events.contains(.passCompleted), let previous = lastSyncAt, syncAt - previous > 0, s.dirtyPagesRate > 0 {
            dirty.append(DirtySample(elapsedSeconds: syncAt - previous, pages: s.dirtyPagesRate * (syncAt - previous)))
        }
        if o.events.contains(where: \.isSync) || lastSyncAt == nil { lastSyncAt = syncAt }
        if s.secondsSinceSync > 0 {
            dirty.append(DirtySample(elapsedSeconds: s.secondsSinceSync, pages: Double(s.dirtyPagesSinceSync)))
        }
        if dirty.count > Self.maxSamples { dirty.removeFirst(dirty.count - Self.maxSamples) }
        transfers.append(TransferSample(seconds: s.elapsedSeconds, bytes: Double(s.transferredBytes)))
        if transfers.count > Self.maxSamples { transfers.removeFirst(transfers.count - Self.maxSamples) }
        // Decision points: every sync and the moment what is pending fits the downtime limit.
        let decisionPoint = o.events.contains { $0.isSync || $0 == .pendingBelowThreshold }
        guard decisionPoint || lastAssessment == nil else { return lastAssessment }
        lastAssessment = assessment(s)
        return lastAssessment
    }

    /// The GSL fit; with too few samples for it (a short first pass), the straight line through
    /// the latest sample — no working set seen yet, so the conservative, unbounded case.
    static func fit(_ samples: [DirtySample]) -> DirtyRateFit? {
        if let fit = try? DirtyRateFit(fitting: samples) { return fit }
        guard let last = samples.last, last.elapsedSeconds > 0 else { return nil }
        return .assumed(pagesPerSecond: last.pages / last.elapsedSeconds, workingSetPages: nil)
    }

    private func assessment(_ s: MigrationStatus) -> Assessment {
        let measured = (try? BandwidthEstimate(fitting: transfers)).map(\.bytesPerSecond) ?? 0
        let bandwidth = measured > 0 ? measured : s.bandwidthBytesPerSecond
        // Pass 1 copies the bulk with the guest undisturbed; the model speaks from its end on.
        guard s.pass > 1, let fit = Self.fit(dirty) else {
            return Assessment(bandwidthBytesPerSecond: bandwidth, reason: "not enough samples yet (pass \(s.pass))")
        }
        let link = PageLink(bandwidth: BandwidthEstimate(Bandwidth(bytesPerSecond: bandwidth)),
                            pageSize: ByteCount(bytes: UInt64(s.pageSize)), headerBytes: pageHeaderBytes)
        let pending = s.remainingPages + s.dirtyPagesSinceSync
        let budgetLeft = policy.postcopy.budget.map { max(0.001, $0.seconds - s.elapsedSeconds) }
        let postcopySeconds = Double(pending) * Double(UInt64(s.pageSize) + pageHeaderBytes) / bandwidth
        guard let p = try? PrecopyPrediction(PrecopyInputs(fit: fit, link: link, dataPages: pending,
                                                           downtimeLimit: TimeSpan(seconds: s.downtimeLimitSeconds),
                                                           timeBudget: budgetLeft.map { TimeSpan(seconds: $0) }, maxPasses: 50))
        else {
            return Assessment(bandwidthBytesPerSecond: bandwidth, reason: "the model could not predict from these inputs")
        }
        var converges = p.converges
        var reason = p.reason ?? "converges in \(p.passes.count) more pass\(p.passes.count == 1 ? "" : "es")"
        if converges, let budgetLeft, p.totalSeconds > budgetLeft {
            converges = false
            reason = "precopy needs \(formatFixed(p.totalSeconds, decimals: 1)) s more, beyond the \(formatFixed(budgetLeft, decimals: 1)) s left of the budget"
        }
        return Assessment(bandwidthBytesPerSecond: bandwidth, converges: converges,
                          predictedRemainingSeconds: p.converges ? p.totalSeconds : nil, predictedDowntimeSeconds: p.downtimeSeconds,
                          postcopyRemainingSeconds: postcopySeconds, dirtyRatePagesPerSecond: fit.pagesPerSecond,
                          workingSetPages: fit.workingSetPages, reason: reason)
    }
}

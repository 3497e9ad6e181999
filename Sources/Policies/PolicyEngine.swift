import Migration

/// Turns observations into decisions according to a policy. Pure: no clock (time is the
/// observation's), no I/O, no randomness; the same observations give the same decisions, so a
/// what-if run and a real run of the same trace decide alike.
public struct PolicyEngine: Sendable {
    public let policy: Policy
    /// Guest memory, for per-GiB timeouts and downtime steps.
    public let memory: ByteCount

    /// Set once the policy has nothing left to try (recovery retries exhausted): the migration
    /// stays paused and recoverable by hand.
    public private(set) var gaveUp: String?

    private var started = false
    private var aborted = false
    private var postcopyRequested = false
    private var completionRequested = false
    private var downtimeStep = 0
    private var progressWatermark: UInt64?
    private var lastProgressSeconds = 0.0
    private var recoveryInFlight = false
    private var recoveryAttempts = 0

    public init(policy: Policy, memory: ByteCount) {
        self.policy = policy
        self.memory = memory
    }

    /// GiB the per-GiB timeouts and downtime steps count (Nova: max(2, RAM GiB)).
    public var dataGiB: Double { policy.dataGiB(memory: memory) }

    public mutating func decide(_ observation: Observation, assessment: Assessment?) -> [Decision] {
        let status = observation.status
        var decisions: [Decision] = []
        if !started {
            started = true
            let first = policy.downtimeSteps?.schedule(dataGiB: dataGiB).first?.limit ?? policy.downtimeLimit
            decisions.append(Decision(.setDowntimeLimit(seconds: first.seconds), "the policy's downtime limit"))
        }
        switch status.state {
        case .active where !aborted:
            decisions += precopy(observation, assessment)
            aborted = decisions.contains { $0.action.name == "abort" }
        case .postcopyPaused:
            decisions += recovery(observation)
        case .postcopyActive:
            recoveryInFlight = false
            recoveryAttempts = 0
        default:
            break
        }
        return decisions
    }

    // MARK: precopy

    private mutating func precopy(_ o: Observation, _ assessment: Assessment?) -> [Decision] {
        let s = o.status
        let t = s.elapsedSeconds
        if let steps = policy.downtimeSteps?.schedule(dataGiB: dataGiB) {
            var out: [Decision] = []
            while downtimeStep + 1 < steps.count, t >= steps[downtimeStep + 1].at.seconds {
                downtimeStep += 1
                let step = steps[downtimeStep]
                out.append(Decision(.setDowntimeLimit(seconds: step.limit.seconds), "downtime step \(downtimeStep) of \(steps.count - 1) at \(step.at)"))
            }
            if !out.isEmpty { return out + precopyAfterSteps(o, assessment) }
        }
        return precopyAfterSteps(o, assessment)
    }

    private mutating func precopyAfterSteps(_ o: Observation, _ assessment: Assessment?) -> [Decision] {
        let s = o.status
        let t = s.elapsedSeconds
        if postcopyRequested || completionRequested && !o.events.contains(where: Self.isRefusal) { return [] }
        completionRequested = false

        // Timeouts (Nova's completion timeout, KubeVirt's completion and progress timeouts).
        if let limit = policy.completionTimeout(memory: memory), t >= limit.seconds {
            return timeout("precopy has not completed within \(limit) (\(policy.timeouts.completionPerGiB!) per GiB × \(formatFixed(dataGiB, decimals: 1)) GiB)")
        }
        if progressWatermark == nil || s.remainingPages < progressWatermark! {
            progressWatermark = s.remainingPages
            lastProgressSeconds = t
        }
        if let progress = policy.timeouts.progress, t - lastProgressSeconds >= progress.seconds {
            return [Decision(.abort(reason: "no progress for \(progress)"), "progress timeout: remaining has not fallen for \(progress)")]
        }

        // Switching to postcopy.
        if policy.postcopy.allowed {
            if let n = policy.postcopy.afterPasses, s.pass > n {
                return startPostcopy("\(n) precopy pass\(n == 1 ? "" : "es") complete")
            }
            if let after = policy.postcopy.after, t >= after.seconds {
                return startPostcopy("precopy ran for \(after)")
            }
            if policy.postcopy.whenNotConverging, let a = assessment {
                if a.converges == false {
                    return startPostcopy("the model predicts precopy will not converge: \(a.reason)")
                }
                // A pass that costs more than it saves against postcopy is a pass wasted: compare
                // the whole migration's total time either way. Only against a bounded working
                // set, though: with none seen yet (one sample at the end of pass 1, or a linear
                // fit) the model assumes the unbounded case, an upper bound on precopy's time, and
                // switching on an upper bound pre-empts a precopy that finishes first (jvm-gc at
                // 10 Gbit/s in docs/whatif.md). Non-convergence is still acted on at once above.
                if let margin = policy.postcopy.whenPrecopySlowerBy, let pre = a.predictedRemainingSeconds,
                   let post = a.postcopyRemainingSeconds, a.workingSetPages != nil, t + pre > (t + post) * (1 + margin), !fitsNow(s, assessment) {
                    return startPostcopy("finishing in precopy would take \(formatFixed(t + pre, decimals: 2)) s in all, in postcopy \(formatFixed(t + post, decimals: 2)) s")
                }
            }
        }

        // Completing: what is pending fits the downtime limit at the chosen bandwidth.
        if o.events.contains(.pendingBelowThreshold) || fitsNow(s, assessment) {
            completionRequested = true
            let budget = pageBudget(s, assessment)
            return [Decision(.complete(maxPendingPages: policy.completion.exactSync ? budget : nil),
                             "pending \(s.remainingPages) pages reached the budget of bandwidth × downtime limit (\(budget) pages): sync and stop if it still fits")]
        }
        return []
    }

    /// Pages a stop-and-copy may send within the downtime limit.
    private func pageBudget(_ s: MigrationStatus, _ assessment: Assessment?) -> UInt64 {
        let bandwidth = policy.completion.bandwidth == .predicted ? (assessment?.bandwidthBytesPerSecond ?? s.bandwidthBytesPerSecond) : s.bandwidthBytesPerSecond
        return UInt64(max(0, bandwidth * s.downtimeLimitSeconds / Double(s.pageSize + 8)))
    }

    private func fitsNow(_ s: MigrationStatus, _ assessment: Assessment?) -> Bool { s.remainingPages <= pageBudget(s, assessment) }

    private static func isRefusal(_ e: MigrationEvent) -> Bool {
        if case .completionRefused = e { return true }
        return false
    }

    private mutating func startPostcopy(_ why: String) -> [Decision] {
        postcopyRequested = true
        return [Decision(.startPostcopy, why)]
    }

    private mutating func timeout(_ why: String) -> [Decision] {
        switch policy.timeouts.action {
        case .abort:
            return [Decision(.abort(reason: why), "completion timeout: \(why)")]
        case .postcopy where policy.postcopy.allowed, .forceComplete where policy.postcopy.allowed:
            return startPostcopy("completion timeout, switching to postcopy: \(why)")
        case .postcopy:
            return [Decision(.abort(reason: why), "completion timeout and postcopy is not allowed: \(why)")]
        case .forceComplete, .pause:
            completionRequested = true
            return [Decision(.complete(maxPendingPages: nil), "completion timeout, pausing the guest to complete: \(why)")]
        }
    }

    // MARK: postcopy recovery

    private mutating func recovery(_ o: Observation) -> [Decision] {
        if o.events.contains(where: { if case .recoveryFailed = $0 { true } else { false } }) { recoveryInFlight = false }
        guard !recoveryInFlight, gaveUp == nil else { return [] }
        let r = policy.recovery
        guard recoveryAttempts < r.retries else {
            gaveUp = "recovery failed \(recoveryAttempts) time\(recoveryAttempts == 1 ? "" : "s"); the migration stays paused and can be recovered by hand"
            return []
        }
        let uri = r.channels.isEmpty ? "" : r.channels[recoveryAttempts % r.channels.count]
        let delay = r.backoff.delay(attempt: recoveryAttempts + 1)
        recoveryAttempts += 1
        recoveryInFlight = true
        return [Decision(.recover(uri: uri, afterSeconds: delay.seconds),
                         "recovery attempt \(recoveryAttempts) of \(r.retries) after \(delay)\(uri.isEmpty ? "" : " over \(uri)")")]
    }
}

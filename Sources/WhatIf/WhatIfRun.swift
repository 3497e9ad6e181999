import Migration
import Policies

/// Runs policies over a trace on the simulator, with the same driver and engine as a real
/// migration.
public enum WhatIf {
    /// Simulates `policy` on `workload` over `link`. `downtimeLimit` overrides the policy's.
    public static func run(policy: Policy, workload: TraceWorkload, link: LinkModel, downtimeLimit: Double? = nil,
                           horizonSeconds: Double? = nil, log: @escaping (DecisionRecord) -> Void = { _ in }) throws -> WhatIfResult {
        var policy = policy
        if let downtimeLimit { policy.downtimeLimit = TimeSpan(seconds: downtimeLimit) }
        let sim = SimulatedMigration(workload: workload, link: link)
        let memory = ByteCount(bytes: workload.pageCount * UInt64(workload.pageSize))
        let driver = MigrationDriver(control: sim, engine: PolicyEngine(policy: policy, memory: memory),
                                     estimator: ModelEstimator(policy: policy, pageHeaderBytes: link.pageHeaderBytes), log: log)
        let horizon = horizonSeconds ?? defaultHorizon(policy: policy, memory: memory, workload: workload, link: link)
        let outcome = try driver.run(horizonSeconds: horizon)
        if let error = workload.decodingError { throw error }
        let s = outcome.finalStatus
        let completed = s.state == .completed
        var reason = outcome.stoppedBecause
        if s.state == .cancelled || s.state == .failed { reason = sim.failureReason ?? reason }
        if !completed, s.state == .active {
            // Say why precopy did not get there: the guest against the link, in pages per second.
            let linkPages = s.bandwidthBytesPerSecond / Double(s.pageSize + link.pageHeaderBytes)
            reason = "precopy did not converge in \(formatFixed(s.elapsedSeconds, decimals: 0)) s (\(s.pass) passes): the guest dirtied "
                + "\(formatFixed(s.dirtyPagesRate, decimals: 0)) pages/s in the last pass against a link of \(formatFixed(linkPages, decimals: 0)) pages/s; "
                + "pending never fell to \(formatFixed(linkPages * s.downtimeLimitSeconds, decimals: 0)) pages (bandwidth × downtime limit)"
        }
        if !completed, reason == nil { reason = "ended in state \(s.state.rawValue)" }
        return WhatIfResult(
            policy: policy.name, trace: workload.name, bandwidthBytesPerSecond: link.bandwidthBytesPerSecond,
            completed: completed, converged: completed && sim.switchTime == nil,
            totalTimeSeconds: s.elapsedSeconds, downtimeSeconds: sim.downtime, bytes: s.transferredBytes, passes: s.pass,
            switchAtSeconds: sim.switchTime.map { $0 - (sim.downtime ?? 0) }, remainingPagesAtSwitch: sim.remainingAtSwitch,
            postcopyTimeSeconds: sim.postcopyDoneTime.flatMap { done in sim.switchTime.map { done - $0 } },
            remoteFaults: sim.remoteFaults, pausedSeconds: sim.pausedSeconds, recoveries: sim.recoveries, state: s.state,
            reason: completed ? nil : reason)
    }

    /// Long enough for any migration that can finish: at least ten minutes and ten first passes,
    /// and past every timeout and switch the policy itself sets (plus a first pass to act on it).
    static func defaultHorizon(policy: Policy, memory: ByteCount, workload: TraceWorkload, link: LinkModel) -> Double {
        let firstPass = Double(workload.pageCount) * Double(workload.pageSize + link.pageHeaderBytes) / link.bandwidthBytesPerSecond
        let policyTimes = [policy.completionTimeout(memory: memory), policy.timeouts.progress, policy.postcopy.after,
                           policy.downtimeSteps?.schedule(dataGiB: policy.dataGiB(memory: memory)).last?.at]
        let latest = policyTimes.compactMap { $0?.seconds }.max() ?? 0
        return max(600, 10 * firstPass, latest + 2 * firstPass + 60)
    }
}

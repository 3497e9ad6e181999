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
        let horizon = horizonSeconds ?? defaultHorizon(workload: workload, link: link)
        let outcome = try driver.run(observeEvery: max(workload.intervalSeconds, 0.1), horizonSeconds: horizon)
        let s = outcome.finalStatus
        let completed = s.state == .completed
        var reason = outcome.stoppedBecause
        if s.state == .cancelled || s.state == .failed { reason = sim.failureReason ?? reason }
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

    /// Long enough for any migration that can finish: ten first passes, at least ten minutes.
    static func defaultHorizon(workload: TraceWorkload, link: LinkModel) -> Double {
        let firstPass = Double(workload.pageCount) * Double(workload.pageSize + link.pageHeaderBytes) / link.bandwidthBytesPerSecond
        return max(600, 10 * firstPass)
    }
}

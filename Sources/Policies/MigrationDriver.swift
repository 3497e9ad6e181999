import Migration

/// One line of the decision log (JSON lines), the same for every backend: when, what was seen,
/// what the model said, what was done and why.
public struct DecisionRecord: Codable, Sendable, Equatable {
    public var timeSeconds: Double
    public var status: MigrationStatus
    public var events: [MigrationEvent]
    public var assessment: Assessment?
    public var action: Action
    public var reason: String

    enum CodingKeys: String, CodingKey {
        case status, events, assessment, action, reason
        case timeSeconds = "time_s"
    }
}

/// How a driven migration ended.
public struct DriverOutcome: Sendable {
    public var finalStatus: MigrationStatus
    /// Why the driver stopped before the migration finished (horizon reached, retries
    /// exhausted), or nil when it finished.
    public var stoppedBecause: String?
    /// Set when the policy ran out of recovery retries: the migration is paused, recoverable.
    public var gaveUp: String?
    public var decisions: Int
}

/// The estimate step: turns the stream of observations into the model's assessment.
public protocol Estimator {
    mutating func assess(_ observation: Observation) -> Assessment?
}

/// The loop every backend is driven by: observe → estimate → decide → act, with every decision
/// logged. Owns no clock: time passes inside the backend's `nextObservation`.
public final class MigrationDriver {
    public let control: any MigrationControl
    private var engine: PolicyEngine
    private var estimator: any Estimator
    private let log: (DecisionRecord) -> Void
    private let observed: (MigrationStatus) -> Void

    /// `log` gets every decision and status change; `observed` every observation's status,
    /// after its decisions, for a live view (migrate's progress line).
    public init(control: any MigrationControl, engine: PolicyEngine, estimator: any Estimator, log: @escaping (DecisionRecord) -> Void = { _ in },
                observed: @escaping (MigrationStatus) -> Void = { _ in }) {
        self.control = control
        self.engine = engine
        self.estimator = estimator
        self.log = log
        self.observed = observed
    }

    /// How often `migrate` and `whatif` observe: one cadence, so that the model fits the same
    /// samples and the policy's checks fall at the same times in a real run and its prediction.
    public static let observationSeconds = 0.1

    /// Runs the migration until it finishes, the policy gives up, or `horizonSeconds` of
    /// migration time pass; observes at least every `observeEvery` seconds.
    public func run(observeEvery: Double = MigrationDriver.observationSeconds, horizonSeconds: Double) throws -> DriverOutcome {
        try control.start()
        var decisions = 0
        var loggedState: MigrationState?
        while true {
            let o = try control.nextObservation(within: observeEvery)
            let assessment = estimator.assess(o)
            let chosen = engine.decide(o, assessment: assessment)
            for d in chosen {
                decisions += 1
                log(DecisionRecord(timeSeconds: o.status.elapsedSeconds, status: o.status, events: o.events,
                                   assessment: assessment, action: d.action, reason: d.reason))
                try act(d.action)
            }
            // A status change with no decision still gets its line: the log tells the whole story.
            if chosen.isEmpty, loggedState != o.status.state, loggedState != nil || o.status.state != .active {
                log(DecisionRecord(timeSeconds: o.status.elapsedSeconds, status: o.status, events: o.events,
                                   assessment: assessment, action: .continue, reason: "the migration is \(o.status.state.rawValue)"))
            }
            loggedState = o.status.state
            let s = o.status
            observed(s)
            if s.state.isFinished { return DriverOutcome(finalStatus: s, stoppedBecause: nil, gaveUp: nil, decisions: decisions) }
            if let gaveUp = engine.gaveUp {
                return DriverOutcome(finalStatus: s, stoppedBecause: gaveUp, gaveUp: gaveUp, decisions: decisions)
            }
            if s.elapsedSeconds >= horizonSeconds {
                return DriverOutcome(finalStatus: s, stoppedBecause: "not finished after \(formatFixed(horizonSeconds, decimals: 0)) s (state \(s.state.rawValue))",
                                     gaveUp: nil, decisions: decisions)
            }
        }
    }

    private func act(_ action: Action) throws {
        switch action {
        case .continue: break
        case .complete(let max): _ = try control.complete(maxPendingPages: max)
        case .startPostcopy: try control.startPostcopy()
        case .setDowntimeLimit(let s): try control.setDowntimeLimit(seconds: s)
        case .setBandwidth(let b): try control.setBandwidth(bytesPerSecond: b)
        case .throttle(let p): try control.throttle(percent: p)
        case .pause: try control.pause()
        case let .recover(uri, after): try control.recover(uri: uri, after: after)
        case .abort(let reason): try control.cancel(reason: reason)
        }
    }
}

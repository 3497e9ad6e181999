import Migration

/// A migration policy: when precopy may stop the guest, when to switch to postcopy, when to give
/// up, and how to recover a broken channel. Read from a policy file (docs/policies.md) by
/// `PolicyLoader`; every field has the default a user of QEMU, libvirt, Nova or KubeVirt would
/// expect where that system has one.
public struct Policy: Sendable, Equatable {
    /// The policy's name, shown in logs and reports (required in a file).
    public var name: String
    /// What the policy is for, in a sentence or two.
    public var description: String = ""
    /// The longest the guest may be stopped for the final copy (`downtime_limit`). Default 300 ms,
    /// QEMU's `downtime-limit`.
    public var downtimeLimit: TimeSpan = Policy.qemuDowntimeLimit
    /// How precopy decides that what is left fits the downtime limit.
    public var completion = Completion()
    /// Whether and when precopy switches to postcopy.
    public var postcopy = Postcopy()
    /// When a migration that takes too long is stopped, and what is done then.
    public var timeouts = Timeouts()
    /// Nova's rising downtime limit (`downtime_steps`); nil keeps `downtimeLimit` throughout.
    public var downtimeSteps: DowntimeSteps? = nil
    /// How a broken channel is recovered during postcopy.
    public var recovery = Recovery()
    /// How many times the whole migration is started again after a precopy failure
    /// (`precopy_retries`, ≥ 0). Nothing is lost in precopy: the source still runs the guest.
    public var precopyRetries: Int = 0

    /// QEMU's default downtime limit: 300 ms (`downtime-limit`, qapi/migration.json;
    /// `DEFAULT_MIGRATE_SET_DOWNTIME` in migration/options.c).
    public static let qemuDowntimeLimit = TimeSpan(nanoseconds: 300_000_000)

    /// A policy with every default and the given name.
    public init(name: String) { self.name = name }

    /// The amount of data a timeout or a downtime schedule is scaled by: the guest's memory in
    /// GiB, but at least `timeouts.minimumGiB` (Nova counts `max(2, RAM GiB)`).
    public func dataGiB(memory: ByteCount) -> Double {
        max(timeouts.minimumGiB, Double(memory.bytes) / 1_073_741_824)
    }

    /// The completion timeout for a guest of this size (`completion_per_gib` × `dataGiB`), or nil
    /// when the policy has none.
    public func completionTimeout(memory: ByteCount) -> TimeSpan? {
        timeouts.completionPerGiB.map { $0.scaled(by: dataGiB(memory: memory)) }
    }
}

/// How precopy decides it may stop the guest: what is pending must fit in what the bandwidth
/// sends within the downtime limit.
public struct Completion: Sendable, Equatable {
    /// Estimate what is pending, and when it fits, synchronise the dirty bitmap and check again
    /// before stopping the guest (`exact_sync`, default true: what QEMU does).
    public var exactSync: Bool
    /// Which bandwidth turns the downtime limit into a page budget (`bandwidth`).
    public var bandwidth: BandwidthSource

    public init(exactSync: Bool = true, bandwidth: BandwidthSource = .measured) {
        self.exactSync = exactSync
        self.bandwidth = bandwidth
    }
}

/// The bandwidth that turns a downtime limit into a number of pages that may be left.
public enum BandwidthSource: Sendable, Equatable {
    /// What the last transfers achieved (QEMU's estimate).
    case measured
    /// What the convergence model predicts for the next interval.
    case predicted
    /// A bandwidth the operator guarantees for the switchover (QEMU's
    /// `avail-switchover-bandwidth`, written as `10Gbit/s`).
    case fixed(Bandwidth)
}

/// Whether precopy may switch to postcopy, and on which signal. Several signals may be set;
/// the first that fires switches.
public struct Postcopy: Sendable, Equatable {
    /// Postcopy may be used at all (`allowed`, default false: QEMU, libvirt, Nova and KubeVirt
    /// all leave it off unless asked).
    public var allowed: Bool
    /// Switch once this many precopy passes are complete (`after_passes`, ≥ 1; libvirt's
    /// `--postcopy-after-precopy` is 1).
    public var afterPasses: Int?
    /// Switch after this long in precopy (`after`; libvirt's `--timeout-postcopy --timeout`).
    public var after: TimeSpan?
    /// Switch as soon as the model predicts that precopy cannot converge within `budget`
    /// (`when_not_converging`, default false).
    public var whenNotConverging: Bool
    /// The precopy time budget the model's prediction is checked against (`budget`; needed by
    /// `whenNotConverging`).
    public var budget: TimeSpan?
    /// With `whenNotConverging`: also switch when finishing in precopy is predicted to make the
    /// whole migration take more than (1 + this) times as long as switching to postcopy now — a
    /// pass that costs more than it saves is a pass wasted (`when_precopy_slower_by`, a fraction
    /// ≥ 0; unset: never).
    public var whenPrecopySlowerBy: Double?

    public init(allowed: Bool = false, afterPasses: Int? = nil, after: TimeSpan? = nil,
                whenNotConverging: Bool = false, budget: TimeSpan? = nil, whenPrecopySlowerBy: Double? = nil) {
        self.allowed = allowed
        self.afterPasses = afterPasses
        self.after = after
        self.whenNotConverging = whenNotConverging
        self.budget = budget
        self.whenPrecopySlowerBy = whenPrecopySlowerBy
    }
}

/// When a migration that takes too long is stopped.
public struct Timeouts: Sendable, Equatable {
    /// Allowed time per GiB of data (`completion_per_gib`; Nova's
    /// `live_migration_completion_timeout` 800 s, KubeVirt's `completionTimeoutPerGiB` 150 s).
    public var completionPerGiB: TimeSpan?
    /// The least data a timeout counts, in GiB (`minimum_gib`, ≥ 0, default 0; Nova: 2).
    public var minimumGiB: Double
    /// Give up when what remains has not shrunk for this long (`progress`; KubeVirt's
    /// `progressTimeout` 150 s).
    public var progress: TimeSpan?
    /// What happens when a timeout fires (`action`, default abort).
    public var action: TimeoutAction

    public init(completionPerGiB: TimeSpan? = nil, minimumGiB: Double = 0, progress: TimeSpan? = nil,
                action: TimeoutAction = .abort) {
        self.completionPerGiB = completionPerGiB
        self.minimumGiB = minimumGiB
        self.progress = progress
        self.action = action
    }
}

/// What is done when a timeout fires.
public enum TimeoutAction: String, Sendable, Equatable, CaseIterable {
    /// Cancel the migration; the guest keeps running on the source.
    case abort
    /// Nova's `force_complete`: postcopy if it is allowed, else pause the guest so that
    /// precopy completes.
    case forceComplete = "force-complete"
    /// Switch to postcopy (KubeVirt with `allowPostCopy`); needs postcopy to be allowed.
    case postcopy
    /// Pause the guest so that precopy completes.
    case pause
}

/// Nova's rising downtime limit: the limit starts small and grows in `steps` steps up to `max`,
/// one step every `delayPerGiB` × data GiB (nova/virt/libvirt/migration.py `downtime_steps`).
public struct DowntimeSteps: Sendable, Equatable {
    /// The last and largest limit (Nova's `live_migration_downtime`, 500 ms; Nova refuses less
    /// than 100 ms, migpilot anything above 0).
    public var max: TimeSpan
    /// How many increases (Nova's `live_migration_downtime_steps`, 10; Nova's minimum is 3,
    /// migpilot's 1).
    public var steps: Int
    /// Time between increases per GiB of data (Nova's `live_migration_downtime_delay`, 75 s;
    /// Nova's minimum is 3 s).
    public var delayPerGiB: TimeSpan

    public init(max: TimeSpan = .init(nanoseconds: 500_000_000), steps: Int = 10, delayPerGiB: TimeSpan = .init(seconds: 75)) {
        self.max = max
        self.steps = steps
        self.delayPerGiB = delayPerGiB
    }

    /// The limits and the times they apply from, as Nova computes them: with `base = max/steps`
    /// and `offset = (max − base)/steps`, step i (0…steps) sets `base + offset·i` at
    /// `delay·dataGiB·i`. Nova truncates to whole milliseconds for the limit; the delay is
    /// truncated to whole milliseconds here (Nova: whole seconds, the same for whole GiB).
    public func schedule(dataGiB: Double) -> [(at: TimeSpan, limit: TimeSpan)] {
        let millisecond = 1_000_000.0
        let delay = (Double(delayPerGiB.nanoseconds) * dataGiB / millisecond).rounded(.towardZero) * millisecond
        let base = Double(max.nanoseconds) / Double(steps)
        let offset = (Double(max.nanoseconds) - base) / Double(steps)
        return (0...steps).map { i in
            let limit = ((base + offset * Double(i)) / millisecond).rounded(.towardZero) * millisecond
            return (TimeSpan(nanoseconds: Int64(delay * Double(i))), TimeSpan(nanoseconds: Int64(limit)))
        }
    }
}

/// How a broken channel is recovered in postcopy: both sides pause, keep every page, and a new
/// channel is tried, again and again, with back-off, over the alternate channels in turn.
public struct Recovery: Sendable, Equatable {
    /// How many recovery attempts before giving up (`retries`, ≥ 0, default 5).
    public var retries: Int
    /// The wait before each attempt.
    public var backoff: Backoff
    /// Alternate channels tried in turn after the original one (`tcp:HOST:PORT`, `unix:PATH`,
    /// `exec:COMMAND`).
    public var channels: [String]
    /// What is done when every attempt failed (`on_exhausted`).
    public var onExhausted: ExhaustedAction

    public init(retries: Int = 5, backoff: Backoff = Backoff(), channels: [String] = [],
                onExhausted: ExhaustedAction = .stayPaused) {
        self.retries = retries
        self.backoff = backoff
        self.channels = channels
        self.onExhausted = onExhausted
    }
}

/// Exponential back-off between recovery attempts.
public struct Backoff: Sendable, Equatable {
    /// The wait before the first attempt (`initial`, default 200 ms).
    public var initial: TimeSpan
    /// Each wait is the previous one times this (`factor`, ≥ 1, default 2).
    public var factor: Double
    /// No wait is longer than this (`max`, default 5 s).
    public var max: TimeSpan

    public init(initial: TimeSpan = TimeSpan(nanoseconds: 200_000_000), factor: Double = 2,
                max: TimeSpan = TimeSpan(nanoseconds: 5_000_000_000)) {
        self.initial = initial
        self.factor = factor
        self.max = max
    }

    /// The wait before attempt `attempt` (1 is the first): `initial · factor^(attempt−1)`, at
    /// most `max`. Attempts below 1 wait `initial`.
    public func delay(attempt: Int) -> TimeSpan {
        // factor^(attempt−1) by squaring: a few steps even for a huge attempt number.
        var growth = 1.0, base = factor, exponent = Swift.max(attempt - 1, 0)
        while exponent > 0 {
            if exponent & 1 == 1 { growth *= base }
            base *= base
            exponent >>= 1
        }
        let nanoseconds = Swift.min(Double(initial.nanoseconds) * growth, Double(max.nanoseconds))
        return TimeSpan(nanoseconds: Int64(nanoseconds.rounded()))
    }
}

/// What is done when every recovery attempt failed. Once postcopy has started the source never
/// runs the guest again (DESIGN.md), so the only answer today is to stay paused, recoverable.
public enum ExhaustedAction: String, Sendable, Equatable, CaseIterable {
    /// Both sides stay in `postcopy-paused`, keeping every page, for an operator to recover.
    case stayPaused = "stay-paused"
}

extension TimeSpan {
    /// The span times `factor`, rounded to the nanosecond.
    func scaled(by factor: Double) -> TimeSpan {
        TimeSpan(nanoseconds: Int64((Double(nanoseconds) * factor).rounded()))
    }
}

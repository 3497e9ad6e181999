import Migration

/// What `tune` minimises.
public enum TuningObjective: String, CaseIterable, Codable, Sendable {
    case minDowntime = "min-downtime"
    case minTotalTime = "min-total-time"
    case minBytes = "min-bytes"

    func value(_ s: TuningScore) -> Double {
        switch self {
        case .minDowntime: s.meanDowntimeSeconds
        case .minTotalTime: s.meanTotalTimeSeconds
        case .minBytes: s.meanBytes
        }
    }
}

/// A bound every simulated case must meet: `downtime<=300ms`, `total-time<=2m`, `bytes<=8GiB`.
public struct TuningConstraint: Codable, Sendable, Equatable, CustomStringConvertible {
    public enum Metric: String, Codable, Sendable, CaseIterable {
        case downtime
        case totalTime = "total-time"
        case bytes
    }

    public var metric: Metric
    /// Seconds for times, bytes for bytes.
    public var limit: Double

    public init(metric: Metric, limit: Double) {
        self.metric = metric
        self.limit = limit
    }

    public init(parsing text: String) throws(QuantityError) {
        let failure = QuantityError(expected: "a constraint such as downtime<=300ms, total-time<=2m or bytes<=8GiB", given: text)
        let parts = text.split(separator: "<=", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2, let metric = Metric(rawValue: parts[0].filter { $0 != " " }) else { throw failure }
        self.metric = metric
        switch metric {
        case .downtime, .totalTime: limit = try TimeSpan(parsing: parts[1]).seconds
        case .bytes: limit = Double(try ByteCount(parsing: parts[1]).bytes)
        }
    }

    func holds(_ r: WhatIfResult) -> Bool {
        switch metric {
        case .downtime: (r.downtimeSeconds ?? .infinity) <= limit
        case .totalTime: r.totalTimeSeconds <= limit
        case .bytes: Double(r.bytes) <= limit
        }
    }

    public var description: String {
        switch metric {
        case .downtime, .totalTime: "\(metric.rawValue)<=\(TimeSpan(seconds: limit))"
        case .bytes: "bytes<=\(ByteCount(bytes: UInt64(limit)))"
        }
    }
}

/// How one point of a parameter space did over every case (trace × bandwidth) it was run on.
public struct TuningScore: Codable, Sendable, Equatable {
    /// The point's place in the tuner's point list (the same on every shard).
    public var index: Int
    /// The parameter values of the point, by field path (`postcopy.budget` → `45s`).
    public var point: [String: String]
    public var cases: Int
    public var completed: Int
    /// Completed every case and met every constraint in each.
    public var feasible: Bool
    public var violations: [String]
    public var meanDowntimeSeconds: Double
    public var maxDowntimeSeconds: Double
    public var meanTotalTimeSeconds: Double
    public var meanBytes: Double

    public init(index: Int = 0, point: [String: String], results: [WhatIfResult], constraints: [TuningConstraint], invalid: String? = nil) {
        self.index = index
        self.point = point
        cases = results.count
        completed = results.filter(\.completed).count
        var violations: [String] = []
        for r in results {
            if !r.completed { violations.append("\(r.trace) at \(Bandwidth(bytesPerSecond: r.bandwidthBytesPerSecond)): did not complete") }
            for c in constraints where r.completed && !c.holds(r) {
                violations.append("\(r.trace) at \(Bandwidth(bytesPerSecond: r.bandwidthBytesPerSecond)): \(c) does not hold")
            }
        }
        if let invalid { violations.append("the policy is invalid: \(invalid)") }
        self.violations = violations
        feasible = violations.isEmpty && !results.isEmpty
        let n = Double(max(1, results.count))
        let downtimes = results.map { $0.downtimeSeconds ?? ($0.completed ? 0 : .infinity) }
        meanDowntimeSeconds = downtimes.reduce(0, +) / n
        maxDowntimeSeconds = downtimes.max() ?? 0
        meanTotalTimeSeconds = results.reduce(0) { $0 + $1.totalTimeSeconds } / n
        meanBytes = results.reduce(0) { $0 + Double($1.bytes) } / n
    }

    enum CodingKeys: String, CodingKey {
        case index, point, cases, completed, feasible, violations
        case meanDowntimeSeconds = "mean_downtime_s"
        case maxDowntimeSeconds = "max_downtime_s"
        case meanTotalTimeSeconds = "mean_total_time_s"
        case meanBytes = "mean_bytes"
    }

    /// At least as good in downtime, total time and bytes, and better in one.
    func dominates(_ other: TuningScore) -> Bool {
        let a = [meanDowntimeSeconds, meanTotalTimeSeconds, meanBytes]
        let b = [other.meanDowntimeSeconds, other.meanTotalTimeSeconds, other.meanBytes]
        return zip(a, b).allSatisfy { $0 <= $1 } && zip(a, b).contains { $0 < $1 }
    }
}

/// Choosing among scored points.
public enum ParetoFront {
    /// The feasible points no other feasible point dominates, best objective first.
    public static func of(_ scores: [TuningScore], objective: TuningObjective) -> [TuningScore] {
        let feasible = scores.filter(\.feasible)
        return feasible.filter { s in !feasible.contains { $0.dominates(s) } }.sorted { objective.value($0) < objective.value($1) }
    }

    /// The feasible point with the best objective (ties: less total time, then fewer bytes, then
    /// the first in the point list).
    public static func winner(_ scores: [TuningScore], objective: TuningObjective) -> TuningScore? {
        scores.filter(\.feasible).min { a, b in
            let ka = [objective.value(a), a.meanTotalTimeSeconds, a.meanBytes], kb = [objective.value(b), b.meanTotalTimeSeconds, b.meanBytes]
            return ka != kb ? ka.lexicographicallyPrecedes(kb) : a.index < b.index
        }
    }
}

/// What one `tune` run (or one shard of it) found: the scores of the points it evaluated and
/// everything needed to check that shards belong together and to rebuild the winner.
public struct TuningReport: Codable, Sendable, Equatable {
    public var space: String
    public var objective: TuningObjective
    public var constraints: [String]
    public var traces: [String]
    public var bandwidthsBytesPerSecond: [Double]
    public var seed: UInt64
    public var samples: Int?
    /// `K/N` for a shard, nil for a whole run.
    public var shard: String?
    /// Points in the whole (unsharded) point list.
    public var pointCount: Int
    public var scores: [TuningScore]
    public var simulations: Int
    public var seconds: Double
    public var jobs: Int

    public init(space: String, objective: TuningObjective, constraints: [String], traces: [String], bandwidthsBytesPerSecond: [Double],
                seed: UInt64, samples: Int?, shard: String?, pointCount: Int, scores: [TuningScore], simulations: Int, seconds: Double, jobs: Int) {
        self.space = space
        self.objective = objective
        self.constraints = constraints
        self.traces = traces
        self.bandwidthsBytesPerSecond = bandwidthsBytesPerSecond
        self.seed = seed
        self.samples = samples
        self.shard = shard
        self.pointCount = pointCount
        self.scores = scores
        self.simulations = simulations
        self.seconds = seconds
        self.jobs = jobs
    }

    enum CodingKeys: String, CodingKey {
        case space, objective, constraints, traces, seed, samples, shard, scores, simulations, seconds, jobs
        case bandwidthsBytesPerSecond = "bandwidths_bytes_per_s"
        case pointCount = "point_count"
    }

    /// Simulated migrations per second per worker thread.
    public var simulationsPerSecondPerJob: Double { seconds > 0 ? Double(simulations) / seconds / Double(max(1, jobs)) : 0 }

    /// The shards' scores as one report; refuses shards of different searches, and says which
    /// points no shard evaluated.
    public static func merge(_ reports: [TuningReport]) throws(TuningMergeError) -> TuningReport {
        guard var merged = reports.first else { throw .nothingToMerge }
        for r in reports.dropFirst() {
            let same = r.space == merged.space && r.objective == merged.objective && r.constraints == merged.constraints
                && r.traces == merged.traces && r.bandwidthsBytesPerSecond == merged.bandwidthsBytesPerSecond
                && r.seed == merged.seed && r.samples == merged.samples && r.pointCount == merged.pointCount
            guard same else { throw .differentSearches(r.shard ?? "a whole run", merged.shard ?? "a whole run") }
            merged.scores += r.scores
            merged.simulations += r.simulations
            merged.seconds = max(merged.seconds, r.seconds)
        }
        var seen = Set<Int>()
        merged.scores = merged.scores.filter { seen.insert($0.index).inserted }.sorted { $0.index < $1.index }
        let missing = merged.pointCount - merged.scores.count
        guard missing == 0 else { throw .missingPoints(missing, merged.pointCount) }
        merged.shard = nil
        return merged
    }
}

/// Why shard reports cannot be merged.
public enum TuningMergeError: Error, CustomStringConvertible, Equatable {
    case nothingToMerge
    case differentSearches(String, String)
    case missingPoints(Int, Int)

    public var description: String {
        switch self {
        case .nothingToMerge: "no shard reports to merge"
        case let .differentSearches(a, b): "shard \(a) and shard \(b) come from different searches (space, objective, constraints, traces, bandwidths, seed or samples differ)"
        case let .missingPoints(n, total): "\(n) of \(total) points are in no shard: run the missing shards first"
        }
    }
}

import Dispatch
import Migration
import Policies
import Traces

/// Searches a parameter space: each point's policy is simulated on every trace × link, scored,
/// and the feasible points are ranked. Deterministic for a given space, seed and sample count,
/// so that shards on different machines agree on which point is which.
public struct Tuner: Sendable {
    public let space: ParameterSpace
    public let base: Policy
    public let workloads: [TraceWorkload]
    public let links: [LinkModel]
    public let constraints: [TuningConstraint]

    public init(space: ParameterSpace, base: Policy, workloads: [TraceWorkload], links: [LinkModel], constraints: [TuningConstraint]) {
        self.space = space
        self.base = base
        self.workloads = workloads
        self.links = links
        self.constraints = constraints
    }

    /// The points to evaluate: the whole grid, or `samples` of them drawn with `seed` when given
    /// and smaller than the grid. Point i of this list is the point with index i everywhere.
    public func points(samples: Int?, seed: UInt64) -> [ParameterSpace.Point] {
        let all = space.points
        guard let samples, samples < all.count else { return all }
        var rng = SeededRandom(seed: seed)
        var indices = Array(all.indices)
        for i in 0..<samples { indices.swapAt(i, i + Int(rng.below(UInt64(indices.count - i)))) }
        return indices.prefix(samples).sorted().map { all[$0] }
    }

    /// Scores `points[i]` for every i in `indices`, on `jobs` threads; `progress` is called as
    /// points finish (from any thread, serialised).
    public func evaluate(_ points: [ParameterSpace.Point], indices: [Int], jobs: Int,
                         progress: @escaping @Sendable (Int) -> Void = { _ in }) -> [TuningScore] {
        let slots = ScoreSlots(count: indices.count)
        let done = Counter()
        let workers = max(1, min(jobs, indices.count))
        let group = DispatchGroup()
        for worker in 0..<workers {
            DispatchQueue.global().async(group: group) {
                var k = worker
                while k < indices.count {
                    slots.set(k, score(point: points[indices[k]], index: indices[k]))
                    progress(done.increment())
                    k += workers
                }
            }
        }
        group.wait()
        return slots.values
    }

    /// One point: its policy on every case. A point whose policy is invalid scores as infeasible.
    public func score(point: ParameterSpace.Point, index: Int) -> TuningScore {
        let assignments = Dictionary(point.assignments.map { ($0.field, "\($0.value)") }, uniquingKeysWith: { $1 })
        let policy: Policy
        do { policy = try space.policy(applying: point, to: base) } catch {
            return TuningScore(index: index, point: assignments, results: [], constraints: constraints,
                               invalid: error.errors.map(\.description).joined(separator: "; "))
        }
        var results: [WhatIfResult] = []
        for w in workloads {
            for l in links {
                if let r = try? WhatIf.run(policy: policy, workload: w, link: l) { results.append(r) }
            }
        }
        return TuningScore(index: index, point: assignments, results: results, constraints: constraints)
    }

    /// Simulations one evaluation of every point costs.
    public var simulationsPerPoint: Int { workloads.count * links.count }
}

/// One slot per point, each written by exactly one worker.
private final class ScoreSlots: @unchecked Sendable {
    private var slots: [TuningScore?]
    private let lock = DispatchQueue(label: "migpilot.tuner.slots")
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ s: TuningScore) { lock.sync { slots[i] = s } }
    var values: [TuningScore] { lock.sync { slots.compactMap { $0 } } }
}

private final class Counter: @unchecked Sendable {
    private var n = 0
    private let lock = DispatchQueue(label: "migpilot.tuner.counter")
    func increment() -> Int { lock.sync { n += 1; return n } }
}

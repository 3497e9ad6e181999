/// Writes a trace from a synthetic workload: the same spec and seed give the same file, byte
/// for byte (the start time is fixed at 0 for that reason).
public enum SyntheticTrace {
    public static func write(_ spec: SyntheticWorkload.Spec, durationNanoseconds: UInt64, intervalNanoseconds: UInt64,
                             initiallyZero: Bool = false, pageSize: UInt32 = 4096, to path: String) throws(TraceError) {
        if let problem = spec.problem { throw TraceError(.invalidArgument, at: nil, problem) }
        guard intervalNanoseconds > 0, durationNanoseconds >= intervalNanoseconds else {
            throw TraceError(.invalidArgument, at: nil, "the duration must be at least one interval")
        }
        var provenance = [
            ProvenanceEntry("generator", "migpilot trace synth"),
            ProvenanceEntry("kind", spec.kind.rawValue),
            ProvenanceEntry("writes_per_s", "\(spec.writesPerSecond)"),
            ProvenanceEntry("seed", "\(spec.seed)"),
            ProvenanceEntry("initial_memory", initiallyZero ? "zero" : "data"),
        ]
        switch spec.kind {
        case .hotset:
            provenance.append(ProvenanceEntry("hot_fraction", "\(spec.hotFraction)"))
            provenance.append(ProvenanceEntry("hot_share", "\(spec.hotShare)"))
        case .zipf:
            provenance.append(ProvenanceEntry("zipf_exponent", "\(spec.zipfExponent)"))
        case .uniform, .sweep:
            break
        }
        let header = TraceHeader(pageSize: pageSize, pageCount: spec.pages, intervalNanoseconds: intervalNanoseconds,
                                 provenance: provenance)
        let writer = try TraceWriter(path: path, header: header, initialData: initiallyZero ? [] : nil)
        var workload = SyntheticWorkload(spec)
        let intervals = durationNanoseconds / intervalNanoseconds
        let seconds = Double(intervalNanoseconds) / 1e9
        for _ in 0..<intervals { try writer.append(written: workload.next(seconds: seconds)) }
        try writer.finish()
    }
}

/// Writes a trace from a synthetic workload: the same spec and seed give the same file, byte
/// for byte (the start time is fixed at 0 for that reason).
public enum SyntheticTrace {
    /// `region`: the workload's pages sit at `region.start` of a guest of `guestPages` (the
    /// rest is never written and, with initial data, is the only memory that starts zero) —
    /// e.g. a guest that fills part of its RAM and then writes there only. nil: the spec's
    /// pages are the whole guest.
    public static func write(_ spec: SyntheticWorkload.Spec, durationNanoseconds: UInt64, intervalNanoseconds: UInt64,
                             initiallyZero: Bool = false, pageSize: UInt32 = 4096, region: (start: UInt64, guestPages: UInt64)? = nil,
                             to path: String) throws(TraceError) {
        if let problem = spec.problem { throw TraceError(.invalidArgument, at: nil, problem) }
        if let region, region.start + spec.pages > region.guestPages {
            throw TraceError(.invalidArgument, at: nil, "the region (pages \(region.start) ..< \(region.start + spec.pages)) must lie within the guest's \(region.guestPages) pages")
        }
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
        if let region { provenance.append(ProvenanceEntry("region", "pages \(region.start) ..< \(region.start + spec.pages) of \(region.guestPages)")) }
        switch spec.kind {
        case .hotset:
            provenance.append(ProvenanceEntry("hot_fraction", "\(spec.hotFraction)"))
            provenance.append(ProvenanceEntry("hot_share", "\(spec.hotShare)"))
        case .zipf:
            provenance.append(ProvenanceEntry("zipf_exponent", "\(spec.zipfExponent)"))
        case .uniform, .sweep:
            break
        }
        let header = TraceHeader(pageSize: pageSize, pageCount: region?.guestPages ?? spec.pages, intervalNanoseconds: intervalNanoseconds,
                                 provenance: provenance)
        let initialData: [PageRange]? = initiallyZero ? [] : region.map { [PageRange(start: $0.start, count: spec.pages)] }
        let writer = try TraceWriter(path: path, header: header, initialData: initialData)
        var workload = SyntheticWorkload(spec)
        let intervals = durationNanoseconds / intervalNanoseconds
        let seconds = Double(intervalNanoseconds) / 1e9
        let offset = region?.start ?? 0
        for _ in 0..<intervals {
            let written = workload.next(seconds: seconds)
            try writer.append(written: offset == 0 ? written : written.map { PageRange(start: $0.start + offset, count: $0.count) })
        }
        try writer.finish()
    }
}

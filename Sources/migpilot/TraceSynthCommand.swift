import ArgumentParser
import Migration
import Traces

/// `migpilot trace synth`: a synthetic trace, exactly reproducible from its seed.
struct TraceSynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic dirty-page trace (reproducible by seed).",
        discussion: """
            --rate counts page writes per second, repeats included: uniform writes
            at rate r over W pages leave W·(1 − e^(−r·t/W)) distinct dirty pages
            after t seconds.

            Examples:
              migpilot trace synth --kind uniform --memory 1GiB --rate 20000 \\
                  --duration 60s -o u.trace
              migpilot trace synth --kind hotset --pages 262144 --rate 100000 \\
                  --hot-fraction 0.05 --hot-share 0.95 --duration 2m \\
                  --interval 100ms --seed 7 -o hot.trace
              migpilot trace synth --kind zipf --zipf-exponent 1.1 --memory 16GiB \\
                  --rate 1e6 --duration 10m -o big.trace
              # A 512 MiB guest that filled 448 MiB from 2 MiB on and writes only there
              migpilot trace synth --kind uniform --memory 512MiB --region 2MiB:448MiB \\
                  --rate 20000 --duration 60s -o qemu-guest.trace
            """
    )

    @Option(help: "uniform, hotset, zipf or sweep.") var kind: SyntheticWorkload.Kind
    @Option(help: "Guest pages (or give --memory).") var pages: UInt64?
    @Option(help: "Guest memory, e.g. 1GiB (or give --pages).", transform: Parse.byteCount) var memory: ByteCount?
    @Option(help: "Page writes per second, repeats included.") var rate: Double
    @Option(help: "Length of the trace, e.g. 60s, 2m.", transform: Parse.timeSpan) var duration: TimeSpan
    @Option(help: "Length of one interval.", transform: Parse.timeSpan) var interval: TimeSpan = TimeSpan(nanoseconds: 100_000_000)
    @Option(help: "Seed of the random generator.") var seed: UInt64 = 1
    @Option(help: "Page size in bytes.") var pageSize: UInt32 = 4096
    @Option(help: "hotset: share of pages in the hot set (0, 1].") var hotFraction: Double?
    @Option(help: "hotset: share of writes to the hot set [0, 1].") var hotShare: Double?
    @Option(help: "zipf: exponent s, popularity of rank k ∝ 1/k^s.") var zipfExponent: Double?
    @Option(help: "What memory holds at t=0: data (every page, or the --region's) or zero.") var initial: InitialMemory = .data
    @Option(help: ArgumentHelp("Only this part of memory holds data and is written, e.g. 2MiB:448MiB (offset:size); the rest stays zero.",
                               valueName: "offset:size"), transform: Parse.region) var region: ByteRegion?
    @Option(name: .shortAndLong, help: "Output file (.trace).") var output: String

    enum InitialMemory: String, ExpressibleByArgument, CaseIterable { case data, zero }

    func validate() throws {
        if (pages == nil) == (memory == nil) { throw ValidationError("give exactly one of --pages N and --memory SIZE") }
        if kind != .hotset, hotFraction != nil || hotShare != nil {
            throw ValidationError("--hot-fraction and --hot-share apply to --kind hotset only")
        }
        if kind != .zipf, zipfExponent != nil { throw ValidationError("--zipf-exponent applies to --kind zipf only") }
        guard pageSize >= 512, pageSize.nonzeroBitCount == 1 else { throw ValidationError("--page-size must be a power of two ≥ 512, got \(pageSize)") }
        if interval.nanoseconds <= 0 { throw ValidationError("--interval must be positive") }
        if duration < interval { throw ValidationError("--duration (\(duration)) must be at least one --interval (\(interval))") }
        if let region {
            let guestBytes = pages.map { $0 * UInt64(pageSize) } ?? memory?.bytes ?? 0
            guard region.offset % UInt64(pageSize) == 0, region.size % UInt64(pageSize) == 0, region.size > 0 else {
                throw ValidationError("--region: offset and size must be whole pages of \(pageSize) B, got \(region)")
            }
            guard region.offset + region.size <= guestBytes else {
                throw ValidationError("--region \(region) must lie within the guest's \(ByteCount(bytes: guestBytes))")
            }
        }
        if let problem = spec.problem { throw ValidationError(problem) }
    }

    private var guestPages: UInt64 { pages ?? (memory?.bytes ?? 0) / UInt64(pageSize) }

    var spec: SyntheticWorkload.Spec {
        var s = SyntheticWorkload.Spec(kind: kind, pages: region.map { $0.size / UInt64(pageSize) } ?? guestPages, writesPerSecond: rate, seed: seed)
        if let hotFraction { s.hotFraction = hotFraction }
        if let hotShare { s.hotShare = hotShare }
        if let zipfExponent { s.zipfExponent = zipfExponent }
        return s
    }

    func run() throws {
        do {
            try SyntheticTrace.write(spec, durationNanoseconds: UInt64(duration.nanoseconds), intervalNanoseconds: UInt64(interval.nanoseconds),
                                     initiallyZero: initial == .zero, pageSize: pageSize,
                                     region: region.map { (start: $0.offset / UInt64(pageSize), guestPages: guestPages) }, to: output)
        } catch {
            throw fail(error.description, ExitCodes.forTrace(error))
        }
    }
}

extension SyntheticWorkload.Kind: ExpressibleByArgument {}

/// The write pattern of a synthetic guest, interval by interval. The same generator feeds
/// `trace synth` and (later) the embedded engine's workloads, so that a synthetic trace and a
/// synthetic guest with the same seed write the same pages.
public struct SyntheticWorkload: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        /// Writes spread uniformly over all pages (with repeats).
        case uniform
        /// A fraction of the pages (the hot set, at the start of memory) takes most writes.
        case hotset
        /// Page popularity follows Zipf's law; popular pages are scattered over memory.
        case zipf
        /// Writes sweep memory sequentially and wrap around.
        case sweep
    }

    public struct Spec: Sendable, Equatable {
        public var kind: Kind
        public var pages: UInt64
        /// Page writes per second, repeats included (a page written twice counts twice).
        public var writesPerSecond: Double
        public var seed: UInt64
        /// hotset: share of pages in the hot set, and share of writes that go to it.
        public var hotFraction: Double = 0.1
        public var hotShare: Double = 0.9
        /// zipf: the exponent s (popularity of rank k ∝ 1/k^s).
        public var zipfExponent: Double = 0.99

        public init(kind: Kind, pages: UInt64, writesPerSecond: Double, seed: UInt64) {
            self.kind = kind
            self.pages = pages
            self.writesPerSecond = writesPerSecond
            self.seed = seed
        }

        /// Why the spec cannot run, or nil.
        public var problem: String? {
            if pages == 0 { return "pages must be at least 1" }
            if !(writesPerSecond >= 0) || !writesPerSecond.isFinite { return "rate must be a non-negative number of pages per second" }
            if kind == .hotset, !(hotFraction > 0 && hotFraction <= 1) { return "hot fraction must be in (0, 1]" }
            if kind == .hotset, !(hotShare >= 0 && hotShare <= 1) { return "hot share must be in [0, 1]" }
            if kind == .zipf, !(zipfExponent > 0 && zipfExponent.isFinite) { return "zipf exponent must be positive" }
            return nil
        }
    }

    public let spec: Spec
    private var rng: SeededRandom
    private var bitmap: PageBitmap
    private var carry = 0.0
    private var sweepPosition: UInt64 = 0
    private let zipf: ZipfSampler?
    private let hotPages: UInt64
    private let permutation: ScatterPermutation

    public init(_ spec: Spec) {
        self.spec = spec
        rng = SeededRandom(seed: spec.seed)
        bitmap = PageBitmap(pages: spec.pages)
        zipf = spec.kind == .zipf ? ZipfSampler(n: spec.pages, exponent: spec.zipfExponent) : nil
        hotPages = max(1, UInt64((Double(spec.pages) * spec.hotFraction).rounded()))
        permutation = ScatterPermutation(count: spec.pages, seed: spec.seed)
    }

    /// The pages written in the next interval of `seconds`, as sorted ranges.
    public mutating func next(seconds: Double) -> [PageRange] {
        carry += spec.writesPerSecond * seconds
        let writes = UInt64(carry)
        carry -= Double(writes)
        guard writes > 0 else { return [] }
        switch spec.kind {
        case .sweep:
            return sweep(writes)
        case .uniform:
            for _ in 0..<writes { bitmap.insert(rng.below(spec.pages)) }
        case .hotset:
            let cold = spec.pages - hotPages
            for _ in 0..<writes {
                if cold == 0 || rng.unit() < spec.hotShare {
                    bitmap.insert(rng.below(hotPages))
                } else {
                    bitmap.insert(hotPages + rng.below(cold))
                }
            }
        case .zipf:
            for _ in 0..<writes { bitmap.insert(permutation.map(zipf!.sample(&rng) - 1)) }
        }
        return bitmap.ranges(clearing: true)
    }

    private mutating func sweep(_ writes: UInt64) -> [PageRange] {
        let n = min(writes, spec.pages)
        let start = sweepPosition
        sweepPosition = (sweepPosition + writes) % spec.pages
        if start + n <= spec.pages { return [PageRange(start: start, count: n)] }
        let head = start + n - spec.pages
        // Wrapped: the head of memory, then the tail; sorted, and merged if they touch.
        if head >= start { return [PageRange(start: 0, count: spec.pages)] }
        return [PageRange(start: 0, count: head), PageRange(start: start, count: spec.pages - start)]
    }
}

/// A seeded bijection of 0..<count that scatters neighbouring ranks across memory (an odd
/// multiplier modulo a power of two, cycle-walked back into range).
struct ScatterPermutation: Sendable {
    let count: UInt64
    let mask: UInt64
    let multiplier: UInt64
    let offset: UInt64

    init(count: UInt64, seed: UInt64) {
        self.count = count
        var bits: UInt64 = 1
        while bits < count { bits <<= 1 }
        mask = bits - 1
        var rng = SeededRandom(seed: seed ^ 0x5CA7_7E12)
        multiplier = (rng.next() | 1) & mask | 1
        offset = rng.next() & mask
    }

    func map(_ x: UInt64) -> UInt64 {
        var y = x
        repeat { y = (y &* multiplier &+ offset) & mask } while y >= count
        return y
    }
}

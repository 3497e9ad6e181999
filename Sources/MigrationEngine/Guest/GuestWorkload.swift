import Migration
import Traces

/// What a guest's workload thread writes, in the command line's form:
/// `fill:SIZE`, `uniform:rate=PAGES_PER_S`, `hotset:rate=…[,hot=0.1][,share=0.9]`,
/// `zipf:rate=…[,s=0.99]`, `sweep:rate=…` (each synthetic kind also takes `seed=N`), and
/// `trace:FILE[,speed=X]`.
public enum GuestWorkload: Equatable, Sendable, CustomStringConvertible {
    /// Writes each page of the first `bytes` once, as fast as it can, then idles.
    case fill(bytes: UInt64)
    /// `SyntheticWorkload` at `rate` page writes per second (its `pages` is set by the guest).
    case synthetic(SyntheticWorkload.Spec)
    /// Replays a trace's intervals in real time, `speed` times faster.
    case trace(path: String, speed: Double)

    public init(parsing text: String) throws(QuantityError) {
        let colon = text.firstIndex(of: ":")
        let head = colon.map { String(text[..<$0]) } ?? text
        let rest = colon.map { String(text[text.index(after: $0)...]) } ?? ""
        switch head {
        case "fill":
            guard let size = try? ByteCount(parsing: rest), size.bytes > 0 else {
                throw QuantityError(expected: "fill:SIZE (e.g. fill:1GiB)", given: text)
            }
            self = .fill(bytes: size.bytes)
        case "trace":
            var path = rest, speed = 1.0
            if let comma = rest.lastIndex(of: ","), rest[comma...].hasPrefix(",speed=") {
                path = String(rest[..<comma])
                guard let s = Double(rest[rest.index(comma, offsetBy: 7)...]), s > 0, s.isFinite else {
                    throw QuantityError(expected: "trace:FILE[,speed=X] with X > 0", given: text)
                }
                speed = s
            }
            guard !path.isEmpty else { throw QuantityError(expected: "trace:FILE[,speed=X]", given: text) }
            self = .trace(path: path, speed: speed)
        default:
            guard let kind = SyntheticWorkload.Kind(rawValue: head) else {
                throw QuantityError(expected: "fill:SIZE, uniform:…, hotset:…, zipf:…, sweep:… or trace:FILE[,speed=X]",
                                    given: text)
            }
            self = .synthetic(try Self.parseSynthetic(kind, rest, text))
        }
    }

    /// The form of each synthetic kind, for error messages.
    static func form(_ kind: SyntheticWorkload.Kind) -> String {
        switch kind {
        case .uniform, .sweep: "\(kind.rawValue):rate=PAGES_PER_S[,seed=N]"
        case .hotset: "hotset:rate=PAGES_PER_S[,hot=FRACTION][,share=FRACTION][,seed=N]"
        case .zipf: "zipf:rate=PAGES_PER_S[,s=EXPONENT][,seed=N]"
        }
    }

    private static func parseSynthetic(_ kind: SyntheticWorkload.Kind, _ options: String,
                                       _ text: String) throws(QuantityError) -> SyntheticWorkload.Spec {
        let wrong = QuantityError(expected: form(kind), given: text)
        var spec = SyntheticWorkload.Spec(kind: kind, pages: 1, writesPerSecond: .nan, seed: 1)
        for option in options.split(separator: ",", omittingEmptySubsequences: false) {
            let parts = option.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { throw wrong }
            let key = parts[0], value = String(parts[1])
            switch (key, kind) {
            case ("rate", _): spec.writesPerSecond = Double(value) ?? .nan
            case ("seed", _):
                guard let seed = UInt64(value) else { throw wrong }
                spec.seed = seed
            case ("hot", .hotset): spec.hotFraction = Double(value) ?? .nan
            case ("share", .hotset): spec.hotShare = Double(value) ?? .nan
            case ("s", .zipf): spec.zipfExponent = Double(value) ?? .nan
            default: throw wrong
            }
        }
        if let problem = spec.problem { throw QuantityError(expected: "\(form(kind)) (\(problem))", given: text) }
        return spec
    }

    public var description: String {
        switch self {
        case .fill(let bytes): return "fill:\(ByteCount(bytes: bytes))"
        case .trace(let path, let speed): return speed == 1 ? "trace:\(path)" : "trace:\(path),speed=\(speed)"
        case .synthetic(let s):
            var text = "\(s.kind.rawValue):rate=\(s.writesPerSecond)"
            if s.kind == .hotset { text += ",hot=\(s.hotFraction),share=\(s.hotShare)" }
            if s.kind == .zipf { text += ",s=\(s.zipfExponent)" }
            return s.seed == 1 ? text : text + ",seed=\(s.seed)"
        }
    }
}

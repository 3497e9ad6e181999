import Migration

/// A link cut to inject, so that operators can rehearse their recovery policy and tests can
/// break a real link at a chosen moment. Written as on the command line:
///
///     cut:after=postcopy+0.3s,every=0.7s,count=4   four cuts, the first 0.3 s into postcopy
///     cut:after=postcopy+1s,for=3s                 one cut, and the link stays down for 3 s
///     cut:during=recover,count=1                   the next recovery handshake is cut half-way
///
/// A cut aborts the channel in use (both directions), exactly as a dead link would end it; a
/// timed cut that falls while the link is already down waits until it is up again, so each
/// one cuts something. While a cut's `for` lasts, every reconnection fails (the link is down),
/// as `whatif --fail-at T --fail-for D` models it.
public enum InjectedCut: Equatable, Sendable, CustomStringConvertible {
    /// `count` cuts while postcopy runs, the first `after` into it, then every `every`; each
    /// keeps the link down for `down`.
    case timed(after: TimeSpan, every: TimeSpan, count: Int, down: TimeSpan)
    /// The next `count` recovery handshakes are cut after the destination's hello-ack.
    case duringRecovery(count: Int)

    static let expected = "cut:after=postcopy+DURATION[,every=DURATION][,count=N][,for=DURATION] or cut:during=recover[,count=N]"

    public init(parsing text: String) throws(QuantityError) {
        guard text.hasPrefix("cut:") else { throw QuantityError(expected: Self.expected, given: text) }
        var fields: [String: String] = [:]
        for item in text.dropFirst(4).split(separator: ",") {
            let kv = item.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, fields.updateValue(String(kv[1]), forKey: String(kv[0])) == nil else {
                throw QuantityError(expected: Self.expected, given: text)
            }
        }
        var count = 1
        if let c = fields.removeValue(forKey: "count") {
            guard let n = Int(c), n > 0 else { throw QuantityError(expected: Self.expected + " (count a positive whole number)", given: text) }
            count = n
        }
        if let during = fields.removeValue(forKey: "during") {
            guard during == "recover", fields.isEmpty else { throw QuantityError(expected: Self.expected, given: text) }
            self = .duringRecovery(count: count)
            return
        }
        guard let after = fields.removeValue(forKey: "after"), after.hasPrefix("postcopy+"),
              let start = try? TimeSpan(parsing: String(after.dropFirst("postcopy+".count))) else {
            throw QuantityError(expected: Self.expected, given: text)
        }
        var down = TimeSpan(nanoseconds: 0)
        if let d = fields.removeValue(forKey: "for") {
            guard let span = try? TimeSpan(parsing: d) else { throw QuantityError(expected: Self.expected + " (for a duration)", given: text) }
            down = span
        }
        var every = TimeSpan(nanoseconds: 0)
        if let e = fields.removeValue(forKey: "every") {
            guard let span = try? TimeSpan(parsing: e), span.nanoseconds > 0 else {
                throw QuantityError(expected: Self.expected + " (every a positive duration)", given: text)
            }
            every = span
        }
        guard fields.isEmpty, count == 1 || every.nanoseconds > 0 else {
            throw QuantityError(expected: Self.expected + (fields.isEmpty ? " (several cuts need every=)" : ""), given: text)
        }
        self = .timed(after: start, every: every, count: count, down: down)
    }

    public var description: String {
        switch self {
        case let .timed(after, every, count, down):
            "cut:after=postcopy+\(after)" + (count > 1 ? ",every=\(every),count=\(count)" : "") + (down.nanoseconds > 0 ? ",for=\(down)" : "")
        case let .duringRecovery(count): "cut:during=recover,count=\(count)"
        }
    }
}

/// Lengths of time and amounts of memory, written the way operators write them
/// (`100ms`, `2s`, `1m`; `512MiB`, `4GiB`), parsed exactly and printed back the same way.

/// Why a quantity could not be read: what was expected, and what was given.
public struct QuantityError: Error, Equatable, CustomStringConvertible, Sendable {
    public let expected: String
    public let given: String
    public var description: String { "expected \(expected), got '\(given)'" }

    public init(expected: String, given: String) {
        self.expected = expected
        self.given = given
    }
}

/// A non-negative length of time with nanosecond resolution.
public struct TimeSpan: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public init(seconds: Double) { self.nanoseconds = Int64((seconds * 1e9).rounded()) }

    public var seconds: Double { Double(nanoseconds) / 1e9 }

    private static let units: [(suffix: String, nanoseconds: Double)] = [
        ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
    ]

    /// Parses `250us`, `100ms`, `2s`, `1.5m`, `1h`. A bare number is refused: a unit is required
    /// so that nobody mistakes milliseconds for seconds.
    public init(parsing text: String) throws(QuantityError) {
        let failure = QuantityError(expected: "a duration with a unit such as 100ms, 2s or 1m", given: text)
        guard let (value, unit) = splitNumber(text) else { throw failure }
        guard let scale = Self.units.first(where: { $0.suffix == unit })?.nanoseconds else { throw failure }
        let ns = value * scale
        guard ns >= 0, ns < 9.2e18 else { throw failure }
        self.nanoseconds = Int64(ns.rounded())
    }

    public static func < (a: TimeSpan, b: TimeSpan) -> Bool { a.nanoseconds < b.nanoseconds }

    /// The largest unit that prints the span as a whole number (`1500ms`, `2s`, `1m`).
    public var description: String {
        for (suffix, scale) in [("h", Int64(3_600_000_000_000)), ("m", 60_000_000_000), ("s", 1_000_000_000),
                                ("ms", 1_000_000), ("us", 1_000)]
        where nanoseconds != 0 && nanoseconds % scale == 0 {
            return "\(nanoseconds / scale)\(suffix)"
        }
        return "\(nanoseconds)ns"
    }
}

/// An amount of memory in bytes.
public struct ByteCount: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var bytes: UInt64
    public init(bytes: UInt64) { self.bytes = bytes }

    private static let units: [(suffix: String, bytes: Double)] = [
        ("B", 1), ("KiB", 0x1p10), ("MiB", 0x1p20), ("GiB", 0x1p30), ("TiB", 0x1p40),
        ("kB", 1e3), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
        ("K", 0x1p10), ("M", 0x1p20), ("G", 0x1p30), ("T", 0x1p40),
    ]

    /// Parses `4096B`, `512MiB`, `1.5GiB`, `2GB` (SI) and QEMU's shorthand `512M`, `4G` (binary).
    public init(parsing text: String) throws(QuantityError) {
        let failure = QuantityError(expected: "a size with a unit such as 512MiB, 4GiB or 2GB", given: text)
        guard let (value, unit) = splitNumber(text),
              let scale = Self.units.first(where: { $0.suffix == unit })?.bytes
        else { throw failure }
        let bytes = value * scale
        guard bytes >= 0, bytes < 1.8e19 else { throw failure }
        self.bytes = UInt64(bytes.rounded())
    }

    public static func < (a: ByteCount, b: ByteCount) -> Bool { a.bytes < b.bytes }

    /// Binary units, as operators read memory sizes (`448MiB`, `1.50GiB`).
    public var description: String {
        let b = Double(bytes)
        for (suffix, scale) in [("TiB", 1099511627776.0), ("GiB", 1073741824.0), ("MiB", 1048576.0), ("KiB", 1024.0)]
        where b >= scale {
            let v = b / scale
            return v == v.rounded() ? "\(Int(v))\(suffix)" : "\(formatFixed(v, decimals: 2))\(suffix)"
        }
        return "\(bytes)B"
    }
}

/// Splits `12.5ms` into (12.5, "ms"); nil when there is no leading number.
func splitNumber(_ text: String) -> (Double, String)? {
    let trimmed = text.trimmingSpaces()
    guard let split = trimmed.firstIndex(where: { !($0.isNumber || $0 == ".") }) else { return nil }
    guard split != trimmed.startIndex, let value = Double(trimmed[..<split]), value.isFinite else { return nil }
    return (value, String(trimmed[split...]).trimmingSpaces())
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

/// `value` with exactly `decimals` digits after the point, without Foundation.
public func formatFixed(_ value: Double, decimals: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let negative = value < 0
    let scaled = (abs(value) * scale).rounded()
    let whole = (scaled / scale).rounded(.towardZero)
    var fraction = String(Int64(scaled - whole * scale))
    while fraction.count < decimals { fraction = "0" + fraction }
    let sign = negative && scaled != 0 ? "-" : ""
    return decimals == 0 ? "\(sign)\(Int64(whole))" : "\(sign)\(Int64(whole)).\(fraction)"
}

/// A transfer rate in bytes per second.
public struct Bandwidth: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var bytesPerSecond: Double
    public init(bytesPerSecond: Double) { self.bytesPerSecond = bytesPerSecond }

    private static let units: [(suffix: String, bytesPerSecond: Double)] = [
        ("Gbit/s", 1e9 / 8), ("Mbit/s", 1e6 / 8), ("kbit/s", 1e3 / 8), ("bit/s", 1.0 / 8),
        ("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3), ("B/s", 1),
        ("GiB/s", 0x1p30), ("MiB/s", 0x1p20), ("KiB/s", 0x1p10),
    ]

    /// Parses `10Gbit/s`, `800Mbit/s` (SI bits), `1.25GB/s`, `100MB/s` (SI bytes), `1GiB/s`,
    /// `512MiB/s` (binary bytes).
    public init(parsing text: String) throws(QuantityError) {
        let failure = QuantityError(expected: "a bandwidth such as 10Gbit/s, 800Mbit/s, 1GB/s or 512MiB/s", given: text)
        guard let (value, unit) = splitNumber(text),
              let scale = Self.units.first(where: { $0.suffix == unit })?.bytesPerSecond,
              value > 0
        else { throw failure }
        bytesPerSecond = value * scale
    }

    public static func < (a: Bandwidth, b: Bandwidth) -> Bool { a.bytesPerSecond < b.bytesPerSecond }

    /// In bits, as links are named (`10Gbit/s`, `2.5Gbit/s`, `800Mbit/s`).
    public var description: String {
        let bits = bytesPerSecond * 8
        for (suffix, scale) in [("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)] where bits >= scale {
            let v = bits / scale
            return v == v.rounded() ? "\(Int(v))\(suffix)" : "\(formatFixed(v, decimals: 2))\(suffix)"
        }
        return "\(formatFixed(bits, decimals: 0))bit/s"
    }
}

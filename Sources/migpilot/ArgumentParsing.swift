import ArgumentParser
import Migration
import WhatIf

/// Parsers for `@Option(transform:)`: a bad value is reported with what was expected.
enum Parse {
    static func timeSpan(_ s: String) throws -> TimeSpan { try quantity(s, TimeSpan.init(parsing:)) }
    static func byteCount(_ s: String) throws -> ByteCount { try quantity(s, ByteCount.init(parsing:)) }
    static func bandwidth(_ s: String) throws -> Bandwidth { try quantity(s, Bandwidth.init(parsing:)) }
    static func constraint(_ s: String) throws -> TuningConstraint { try quantity(s, TuningConstraint.init(parsing:)) }
    static func region(_ s: String) throws -> ByteRegion {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw ValidationError("expected OFFSET:SIZE, e.g. 2MiB:448MiB, got '\(s)'") }
        return ByteRegion(offset: try byteCount(String(parts[0])).bytes, size: try byteCount(String(parts[1])).bytes)
    }

    private static func quantity<T>(_ s: String, _ parse: (String) throws(QuantityError) -> T) throws -> T {
        do { return try parse(s) } catch { throw ValidationError(error.description) }
    }
}

/// A part of guest memory given on the command line as OFFSET:SIZE.
struct ByteRegion: CustomStringConvertible {
    var offset: UInt64
    var size: UInt64
    var description: String { "\(ByteCount(bytes: offset)):\(ByteCount(bytes: size))" }
}

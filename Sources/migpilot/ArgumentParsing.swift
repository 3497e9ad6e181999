import ArgumentParser
import Migration
import WhatIf

/// Parsers for `@Option(transform:)`: a bad value is reported with what was expected.
enum Parse {
    static func timeSpan(_ s: String) throws -> TimeSpan { try quantity(s, TimeSpan.init(parsing:)) }
    static func byteCount(_ s: String) throws -> ByteCount { try quantity(s, ByteCount.init(parsing:)) }
    static func bandwidth(_ s: String) throws -> Bandwidth { try quantity(s, Bandwidth.init(parsing:)) }
    static func constraint(_ s: String) throws -> TuningConstraint { try quantity(s, TuningConstraint.init(parsing:)) }

    private static func quantity<T>(_ s: String, _ parse: (String) throws(QuantityError) -> T) throws -> T {
        do { return try parse(s) } catch { throw ValidationError(error.description) }
    }
}

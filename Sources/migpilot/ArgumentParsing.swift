import ArgumentParser
import Migration

/// Parsers for `@Option(transform:)`: a bad value is reported with what was expected.
enum Parse {
    static func timeSpan(_ s: String) throws -> TimeSpan {
        do { return try TimeSpan(parsing: s) } catch { throw ValidationError(error.description) }
    }

    static func byteCount(_ s: String) throws -> ByteCount {
        do { return try ByteCount(parsing: s) } catch { throw ValidationError(error.description) }
    }
}

import ArgumentParser
import Glibc
import Policies
import Traces

/// Exit codes with a meaning (sysexits.h where one fits), the same for every command.
enum ExitCodes {
    static let partial = ExitCode(3)
    static let dataError = ExitCode(65)
    static let noInput = ExitCode(66)
    static let unavailable = ExitCode(69)
    static let ioError = ExitCode(74)
    /// A postcopy migration ended paused (recoverable no more: the source gave up holding it).
    static let endedPaused = ExitCode(75)

    static func forTrace(_ error: TraceError) -> ExitCode {
        switch error.kind {
        case .io: error.errno == ENOENT || error.errno == EACCES || error.errno == ENOTDIR ? noInput : ioError
        case .invalidArgument: .validationFailure
        case .notATrace, .unsupportedVersion, .truncated, .checksumMismatch, .malformed: dataError
        }
    }

    /// 66 when a policy file cannot be read, 65 when it has errors.
    static func forPolicy(_ error: PolicyLoadError) -> ExitCode {
        switch error {
        case .unreadable: noInput
        case .invalid: dataError
        }
    }
}

/// Prints `error: …` on stderr and ends with `code`.
func fail(_ message: String, _ code: ExitCode) -> ExitCode {
    Terminal.standardError("error: \(message)\n")
    return code
}

/// Why the model gave no answer: inputs it cannot use, or a numerical step that failed. Cases
/// the model does have an answer for (an idle guest, a dirty rate with no saturation in sight, a
/// precopy that never converges) are results, not errors.
public enum ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer samples than the estimate needs.
    case tooFewSamples(given: Int, needed: Int)
    /// A sample that cannot be true (negative, not finite, or time not after the start).
    case invalidSample(index: Int, problem: String)
    /// An input out of its domain (a bandwidth of zero, a negative page count...).
    case invalidInput(String)
    /// The nonlinear fit ran out of iterations without meeting its tolerances.
    case fitDidNotConverge(iterations: Int)
    /// A GSL call returned an error status.
    case gsl(call: String, status: Int32, message: String)

    public var description: String {
        switch self {
        case let .tooFewSamples(given, needed): "\(given) samples given; the estimate needs at least \(needed)"
        case let .invalidSample(index, problem): "sample \(index): \(problem)"
        case let .invalidInput(problem): problem
        case let .fitDidNotConverge(iterations): "the dirty-rate fit did not converge in \(iterations) iterations"
        case let .gsl(call, status, message): "\(call) failed: \(message) (GSL status \(status))"
        }
    }
}

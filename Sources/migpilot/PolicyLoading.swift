import ArgumentParser
import Policies

/// Loads a policy for a command that uses it (show, whatif, tune): every error goes to stderr
/// with line:column and field, and the command ends with 65 (invalid) or 66 (unreadable).
func loadPolicy(_ path: String) throws -> Policy {
    do {
        return try PolicyLoader.load(path: path)
    } catch {
        guard case .invalid(let errors) = error else { throw fail(error.description, ExitCodes.forPolicy(error)) }
        Terminal.standardError(errors.description + "\n")
        throw fail("\(PolicyCheckCommand.displayName(path)) is not a valid policy", ExitCodes.forPolicy(error))
    }
}

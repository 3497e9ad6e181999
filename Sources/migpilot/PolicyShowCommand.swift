import ArgumentParser
import Policies

/// `migpilot policy show FILE`: the effective policy, every default filled in.
struct PolicyShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "Print a policy with every default filled in.",
        discussion: """
            Prints every field of the policy in the file's own schema, defaults
            filled in and unset optional fields as null, so the output is itself
            a valid policy file. Errors are reported as by policy check (exit 65;
            66 when the file cannot be read). - reads standard input.

            Examples:
              migpilot policy show policies/nova.yaml
              migpilot policy show --json policies/kubevirt.yaml
              migpilot policy show policies/adaptive.yaml | migpilot policy check -
            """
    )

    @Argument(help: "A policy file (YAML); - reads standard input.") var file: String
    @Flag(help: "Print the policy as one JSON object.") var json = false

    func run() throws {
        let policy = try loadPolicy(file)
        print(json ? policy.effective.json : policy.effective.yaml, terminator: "")
    }
}

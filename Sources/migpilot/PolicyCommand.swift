import ArgumentParser

/// `migpilot policy`: check and show migration policies.
struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check and show migration policies (docs/policies.md).",
        subcommands: [PolicyCheckCommand.self, PolicyShowCommand.self]
    )
}

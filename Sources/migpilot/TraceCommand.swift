import ArgumentParser

/// `migpilot trace`: record, inspect and synthesise dirty-page traces.
struct TraceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Record, inspect and synthesise dirty-page traces.",
        subcommands: [TraceInfoCommand.self, TraceSynthCommand.self, TraceRecordCommand.self]
    )
}

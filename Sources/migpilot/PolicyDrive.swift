import Foundation
import Migration
import Policies

/// What `migrate` does the same whatever the backend (the embedded engine, a QEMU pair over
/// QMP): the policy's engine and model under the `MigrationDriver`, every decision narrated on
/// stderr or written as a JSON line, the progress line, and the summary at the end.
struct PolicyDrive {
    let json: Bool
    let encoder: JSONEncoder

    init(json: Bool) {
        self.json = json
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    /// Drives `control` under `policy` until it finishes, the policy gives up or `timeout`
    /// passes. A driver error is rethrown after the progress line is cleared.
    func run(_ control: any MigrationControl, policy: Policy, memory: ByteCount, timeout: TimeSpan) throws -> DriverOutcome {
        // The progress line follows every observation (ten a second), naming the last decision.
        var lastAction = "start"
        let driver = MigrationDriver(control: control, engine: PolicyEngine(policy: policy, memory: memory),
                                     estimator: ModelEstimator(policy: policy),
                                     log: { [json, encoder] record in
                                         if json, let line = try? encoder.encode(record) { Terminal.standardOutputLine(String(decoding: line, as: UTF8.self)) }
                                         if !json { MigrateCommand.narrate(record) }
                                         lastAction = record.action.name
                                     },
                                     observed: { status in Terminal.progress(MigrateCommand.progressLine(status, lastAction: lastAction)) })
        defer { Terminal.endProgress() }
        return try driver.run(horizonSeconds: timeout.seconds)
    }

    /// The last line with --json, else a table on stdout.
    func finish(_ summary: MigrateSummary, table rows: [[String]]) throws {
        if json {
            Terminal.standardOutputLine(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            print(Terminal.table(rows), terminator: "")
        }
    }
}

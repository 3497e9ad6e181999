import ArgumentParser
import Foundation
import Migration
import Transport

/// `migpilot recover CONTROL`: resumes by hand a migration whose policy ran out of retries.
struct RecoverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover",
        abstract: "Resume by hand a paused postcopy migration whose policy gave up.",
        discussion: """
            When a policy's recovery retries run out, `migpilot migrate` keeps the
            migration postcopy-paused (every page kept on both sides) and prints its
            control socket. This command asks it to reconnect — to the original
            destination, or to --to URI — and says whether the recovery handshake
            succeeded; the migration then finishes in the `migrate` process.

            Example:
              migpilot recover unix:/tmp/migpilot-migrate-4242.sock
              migpilot recover unix:/tmp/migpilot-migrate-4242.sock --to tcp:10.2.0.2:4444

            Exit codes: 0 recovered; 1 the handshake failed (the migration stays
            paused: try again); 69 no paused migration answers at CONTROL.
            """
    )

    @Argument(help: "The paused migration's control socket, as `migrate` printed it (unix:PATH).") var control: String
    @Option(help: "Reconnect over this channel instead of the original destination.") var to: String?

    func validate() throws {
        guard case .unix = try? MigrationURI(parsing: control) else { throw ValidationError("expected the control socket as unix:PATH, got '\(control)'") }
        if let to { do { _ = try MigrationURI(parsing: to) } catch { throw ValidationError("--to: \(error)") } }
    }

    func run() throws {
        let channel: any ByteChannel
        do { channel = try Transport.connect(try MigrationURI(parsing: control)) } catch {
            throw fail("no paused migration answers at \(control): \(error)", ExitCodes.unavailable)
        }
        defer { channel.close() }
        var request = try JSONSerialization.data(withJSONObject: ["recover": to ?? ""])
        request.append(10)
        try request.withUnsafeBytes { try channel.send($0) }
        var answer = [UInt8](repeating: 0, count: 4096)
        let n = try answer.withUnsafeMutableBytes { try channel.receive(into: $0) }
        guard let reply = try? JSONSerialization.jsonObject(with: Data(answer[0..<n])) as? [String: Any] else {
            throw fail("the paused migration gave no answer", ExitCode.failure)
        }
        guard reply["recovered"] as? Bool == true else {
            throw fail("the recovery failed: \(reply["error"] as? String ?? "?"); the migration stays paused", ExitCode.failure)
        }
        print("recovered: the migration is postcopy-active again and finishes in its migrate process")
    }
}

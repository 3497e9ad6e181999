import Foundation
import Migration
import MigrationEngine
import Transport

/// What `migrate` does once its policy has run out of recovery retries: the migration stays
/// `postcopy-paused` with the guest kept in this process, and a control socket takes a
/// recovery by hand (`migpilot recover`), as QEMU waits for `migrate-recover` and `migrate`
/// with `resume`. A recovery that succeeds lets the migration finish; with none within the
/// window, `migrate` ends paused (exit 75).
struct ManualRecovery {
    let engine: EmbeddedMigration
    let control: MigrationURI
    let window: TimeSpan

    /// The final status once the migration completes after a recovery by hand; nil when the
    /// window passed with the migration still paused.
    func run() throws -> MigrationStatus? {
        let listener = try Transport.listen(control)
        defer { listener.close() }
        let engine = self.engine
        Thread.detachNewThread {
            while let channel = try? listener.accept() {
                Self.serve(channel, engine)
                channel.close()
            }
        }
        var deadline = Date().addingTimeInterval(window.seconds)
        while true {
            let o = try engine.nextObservation(within: 0.2)
            let state = o.status.state
            if state.isFinished { return o.status }
            if state == .postcopyActive { deadline = Date().addingTimeInterval(window.seconds) }
            if state == .postcopyPaused, Date() > deadline { return nil }
            Terminal.progress(MigrateCommand.progressLine(o.status, lastAction: "waiting for migpilot recover"))
        }
    }

    /// One `migpilot recover` request: `{"recover": URI}` (empty: the original destination);
    /// the answer comes once the handshake has succeeded or failed.
    private static func serve(_ channel: any ByteChannel, _ engine: EmbeddedMigration) {
        var line: [UInt8] = []
        var byte = [UInt8](repeating: 0, count: 1)
        while line.count < 4096, let n = try? byte.withUnsafeMutableBytes({ try channel.receive(into: $0) }), n == 1, byte[0] != 10 {
            line.append(byte[0])
        }
        let reply: [String: Any]
        if let request = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any], let uri = request["recover"] as? String {
            let before = (engine.recoveries, engine.failedRecoveries.count)
            do {
                try engine.recover(uri: uri, after: 0)
                while engine.recoveries == before.0, engine.failedRecoveries.count == before.1 { usleep(5_000) }
                reply = engine.recoveries > before.0 ? ["recovered": true]
                    : ["recovered": false, "error": engine.failedRecoveries.lastReason ?? "the handshake failed"]
            } catch {
                reply = ["recovered": false, "error": "\(error)"]
            }
        } else {
            reply = ["recovered": false, "error": "expected one line {\"recover\": URI}"]
        }
        var bytes = [UInt8]((try? JSONSerialization.data(withJSONObject: reply, options: [.sortedKeys])) ?? Data())
        bytes.append(10)
        try? bytes.withUnsafeBytes { try channel.send($0) }
    }
}

import Dispatch
import Glibc
import Migration
import MigrationEngine
import Transport

/// A destination guest run on a background thread of this process, listening on loopback tcp:
/// `migrate`'s embedded default. `outcome()` waits for the migration's end.
final class LocalDestination: @unchecked Sendable {
    // @unchecked: `result` is written once by the destination thread before `done` is signalled
    // and read only after waiting on it.
    let uri: MigrationURI
    private let listener: Listener
    private let destination: MigrationDestination
    private var result: Result<DestinationReport, any Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ destination: MigrationDestination) throws {
        listener = try Transport.listen(.tcp(host: "127.0.0.1", port: 0))
        uri = listener.uri
        self.destination = destination
        DispatchQueue.global().async { [self] in
            result = Result { () throws -> DestinationReport in
                let channel = try listener.accept()
                defer { channel.close() }
                return try destination.run(channel: channel) { try self.listener.accept() }
            }
            done.signal()
        }
    }

    func outcome() -> Result<DestinationReport, any Error> {
        done.wait()
        done.signal()
        return result!
    }

    /// Page writes the destination's guest makes in `seconds` (nil: it runs no guest).
    func destinationWrites(during seconds: Double) -> UInt64? {
        guard let guest = destination.guest else { return nil }
        let before = guest.pagesWritten
        usleep(UInt32(seconds * 1e6))
        return guest.pagesWritten - before
    }

    /// Stops listening and the destination's guest.
    func stop() {
        listener.close()
        destination.guest?.stop()
    }
}

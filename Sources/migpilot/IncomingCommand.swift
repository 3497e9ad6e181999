import ArgumentParser
import Migration
import MigrationEngine
import Transport

/// `migpilot incoming URI`: the destination of a migration, ending with it.
struct IncomingCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "incoming",
        abstract: "Receive a migration (the destination side).",
        discussion: """
            Listens on URI (tcp:HOST:PORT, unix:PATH) or reads the stream on its own
            standard input and answers on its standard output (stdio, for
            exec:ssh host migpilot incoming stdio). Serves postcopy page faults when
            the source switches. Exits 0 once the guest's memory arrived and every
            page's stamp matched the source's final stamps; 65 when one did not.
            To keep the guest running afterwards, use `migpilot guest --incoming`.

            Example:
              migpilot incoming tcp:0.0.0.0:4444 --memory 256MiB
              migpilot incoming unix:/run/mig.sock --memory 4GiB --mem-prealloc
            """
    )

    @Argument(help: "Where to listen: tcp:HOST:PORT, unix:PATH or stdio.") var uri: String
    @Option(help: "Guest memory; must match the source's.", transform: Parse.byteCount) var memory: ByteCount
    @OptionGroup var destinationMemory: DestinationMemoryOptions

    func validate() throws {
        do { _ = try MigrationURI(parsing: uri) } catch { throw ValidationError("\(error)") }
    }

    func run() throws {
        let destination = try receiveMigration(uri: uri, memory: memory, options: destinationMemory, workloads: [])
        destination.guest?.stop()
    }
}

/// Listens on `uri`, receives one migration into a guest of `memory` running `workloads`
/// afterwards, and reports on stderr. Exits 65 when the stream fails or a page does not check out.
func receiveMigration(uri: String, memory: ByteCount, options: DestinationMemoryOptions,
                      workloads: [GuestWorkload]) throws -> MigrationDestination {
    let destination: MigrationDestination
    let report: DestinationReport
    do {
        destination = try options.destination(memory, workloads: workloads)
        let listener = try Transport.listen(try MigrationURI(parsing: uri))
        defer { listener.close() }
        let channel = try listener.accept()
        defer { channel.close() }
        destination.onLinkEvent = { line in Terminal.standardError("incoming: \(line)\n") }
        // After a postcopy break the source comes back on the same listener (tcp:, unix:);
        // stdio and exec: have one channel only.
        report = try destination.run(channel: channel) { try listener.accept() }
    } catch {
        throw fail("\(error)", ExitCodes.dataError)
    }
    let how = report.postcopy ? "through postcopy, \(report.remoteFaults) pages faulted in on demand" : "in precopy"
    Terminal.standardError("incoming: \(report.pagesReceived) pages received \(how); \(report.detail)\n")
    guard report.verified else { throw ExitCodes.dataError }
    return destination
}

import ArgumentParser
import Migration

/// `migrate --source-qmp PATH --dest-qmp PATH --to URI`: the backend is a QEMU pair (or any
/// QMP pair) instead of the embedded engine.
struct QMPMigrateOptions: ParsableArguments {
    @Option(name: .customLong("source-qmp"), help: "The source QEMU's QMP socket (-qmp unix:PATH,server=on); needs --dest-qmp and --to.")
    var source: String?
    @Option(name: .customLong("dest-qmp"), help: "The destination QEMU's QMP socket (started with -incoming defer).")
    var destination: String?
    @Option(help: "With --source-qmp: the URI the destination listens on (migrate-incoming), when it is not the --to URI (a proxy between them).")
    var incoming: String?

    @Option(name: .customLong("qmp-log"), help: "With --source-qmp: write every QMP command sent (polls aside) to this file as JSON lines, with its time from migrate.")
    var log: String?

    var isGiven: Bool { source != nil || destination != nil || incoming != nil || log != nil }

    /// A monitor path as a URI: `unix:PATH`, or a bare path.
    static func monitor(_ path: String) throws -> MigrationURI {
        let uri = try MigrationURI(parsing: path.hasPrefix("unix:") || path.hasPrefix("tcp:") ? path : "unix:\(path)")
        return uri
    }

    /// Checks the flags that go with QMP; true when QMP is used (and all is well), false when
    /// it is not (the embedded engine's checks follow).
    func validate(_ m: MigrateCommand) throws -> Bool {
        guard isGiven else { return false }
        guard let source, let destination else {
            throw ValidationError("--source-qmp and --dest-qmp go together: a QEMU migration needs both monitors (and --to)")
        }
        guard let to = m.to else {
            throw ValidationError("--to is required with --source-qmp: the URI the source QEMU sends the stream to, e.g. tcp:DEST:4444")
        }
        for (flag, value) in [("--source-qmp", source), ("--dest-qmp", destination)] {
            do { _ = try Self.monitor(value) } catch { throw ValidationError("\(flag): \(error)") }
        }
        for (flag, value) in [("--to", to), ("--incoming", incoming ?? to)] {
            let uri: MigrationURI
            do { uri = try MigrationURI(parsing: value) } catch { throw ValidationError("\(flag): \(error)") }
            if case .stdio = uri { throw ValidationError("\(flag): QEMU cannot migrate over stdio; expected tcp:HOST:PORT, unix:PATH, exec:COMMAND or file:PATH") }
        }
        // What only the embedded engine has: its guest, link cuts, its control socket.
        let engineOnly: [(String, Bool)] = [
            ("--memory", m.memory != nil), ("--workload", !m.workload.isEmpty), ("--inject", !m.inject.isEmpty),
            ("--control", m.control != nil), ("--no-flush-ahead", m.noFlushAhead),
        ] + m.destinationMemory.flags
        if let given = engineOnly.first(where: \.1) {
            throw ValidationError("\(given.0) is for migpilot's own engine and guest and cannot go with --source-qmp: QEMU's guest is what its command line made it (allowed with QMP: --policy, --to, --incoming, --bandwidth, --downtime-limit, --timeout, --json)")
        }
        return true
    }
}

import Migration
import MigrationEngine
import QMP
import Transport

/// `migpilot guest --qmp URI`: a QMP monitor on the guest process that answers what QEMU's
/// tools send a QEMU, as the migration's source or (with `--incoming`) its destination. The
/// commands shared by both sides are here; `GuestQMPSource` and `GuestQMPDestination` add
/// theirs. docs/qmp.md lists them and what differs from QEMU.
final class GuestQMP: Sendable {
    enum Role: Sendable {
        case source(GuestQMPSource)
        case destination(GuestQMPDestination)
    }

    let server: QMPServer
    let settings = GuestQMPSettings()
    private let commands = QMPCommandRegistry()

    /// A monitor listening on `uri`; nothing is answered until `start(role:)`.
    init(listening uri: MigrationURI) throws {
        server = QMPServer(listener: try Transport.listen(uri), commands: commands,
                           version: QMPServer.Version(package: "migpilot guest (QEMU 7.2 QMP dialect)"))
    }

    /// Sends an event to the client, if any.
    var emit: @Sendable (String, JSONValue?) -> Void { { [server] name, data in server.emit(name, data: data) } }

    /// Registers the commands of `role` and starts serving.
    func start(role: Role, dirtyRate: GuestQMPDirtyRate) {
        let settings = self.settings
        let inProgress: @Sendable () -> Bool
        let runState: @Sendable () -> String
        switch role {
        case .source(let source):
            source.register(commands)
            inProgress = { GuestQMPSource.inProgress(source.state) }
            runState = { source.runState }
        case .destination(let destination):
            destination.register(commands)
            inProgress = { GuestQMPSource.inProgress(destination.state) }
            runState = { destination.runState }
            commands.register("migrate", parameters: [QMPParameter("uri", .string), QMPParameter("resume", .boolean, optional: true)]) { _ throws(QMPError) in
                throw QMPError(.genericError, "This guest is a migration's destination; migpilot's guest cannot migrate on from here")
            }
            commands.register("migrate-start-postcopy") { _ throws(QMPError) in
                throw QMPError(.genericError, "migrate-start-postcopy is for the source of a migration, not its destination")
            }
            commands.register("migrate_cancel") { _ in [:] }
        }
        dirtyRate.register(commands)
        commands.register("query-status") { _ in
            let status = runState()
            return ["status": .string(status), "singlestep": false, "running": .bool(status == "running")]
        }
        commands.register("migrate-set-capabilities", parameters: [QMPParameter("capabilities", .array)]) { args throws(QMPError) in
            guard !inProgress() else { throw QMPError(.genericError, "There's a migration process in progress") }
            try settings.setCapabilities(args["capabilities"]!.arrayValue!)
            return [:]
        }
        commands.register("query-migrate-capabilities") { _ in settings.capabilitiesJSON }
        commands.register("migrate-set-parameters", parameters: GuestQMPSettings.parameters) { args throws(QMPError) in
            let values = try settings.setParameters(args)
            if case .source(let source) = role { source.apply(values, changed: args) }
            return [:]
        }
        commands.register("query-migrate-parameters") { _ in settings.parametersJSON }
        server.start()
    }
}

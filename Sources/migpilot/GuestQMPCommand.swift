import Migration
import MigrationEngine
import QMP
import Synchronization

extension GuestCommand {
    /// Starts the guest's QMP monitor on `uri`, as a source (the guest runs at once) or, with
    /// `--incoming`, a destination (the guest runs once the migration has brought it); returns
    /// the guest running here. A destination whose migration fails or whose pages do not
    /// check out exits 65, as a QEMU whose incoming migration fails exits.
    func runWithQMP(_ uri: MigrationURI, workloads: [GuestWorkload]) throws -> Guest {
        let qmp: GuestQMP
        do { qmp = try GuestQMP(listening: uri) } catch { throw fail("--qmp \(uri): \(error)", ExitCodes.unavailable) }
        guard let incoming else {
            let guest: Guest, tracker: any DirtyTracker
            do {
                let source = try GuestMemory(bytes: Int(memory.bytes))
                let (t, mechanism) = try DirtyTracking.best(for: source)
                tracker = t
                try tracker.start()
                guest = try Guest(memory: source, workloads: workloads)
                try guest.start()
                Terminal.standardError(mechanism + "\n")
            } catch {
                throw fail("cannot start the guest: \(error)", ExitCodes.unavailable)
            }
            let role = GuestQMPSource(guest: guest, tracker: tracker, settings: qmp.settings, emit: qmp.emit)
            qmp.start(role: .source(role), dirtyRate: GuestQMPDirtyRate(pageSize: guest.memory.pageSize) { () throws(QMPError) in
                guard !GuestQMPSource.inProgress(role.state) else {
                    throw QMPError(.genericError, "migpilot's guest measures the dirty rate with the migration's dirty tracking: not while a migration is under way")
                }
                return tracker
            })
            Terminal.standardError("qmp: listening on \(qmp.server.uri) (source)\n")
            return guest
        }
        let destination: MigrationDestination
        do { destination = try destinationMemory.destination(memory, workloads: workloads) } catch {
            throw fail("cannot set up the destination's memory: \(error)", ExitCodes.unavailable)
        }
        destination.onLinkEvent = { line in Terminal.standardError("incoming: \(line)\n") }
        let role = GuestQMPDestination(destination: destination, emit: qmp.emit)
        // Once the guest runs here its dirty rate is measured with a tracker of its own.
        let tracker = Mutex<(any DirtyTracker)?>(nil)
        qmp.start(role: .destination(role), dirtyRate: GuestQMPDirtyRate(pageSize: destination.memory.pageSize) { () throws(QMPError) in
            guard role.state == .completed, destination.guest != nil else {
                throw QMPError(.genericError, "the guest does not run here yet (status \(role.runState))")
            }
            return try tracker.withLock { (t: inout (any DirtyTracker)?) throws(QMPError) -> any DirtyTracker in
                if let t { return t }
                do {
                    let made = try DirtyTracking.best(for: destination.memory).tracker
                    try made.start()
                    t = made
                    return made
                } catch { throw QMPError(.genericError, "cannot track the guest's writes: \(error)") }
            }
        })
        Terminal.standardError("qmp: listening on \(qmp.server.uri) (destination)\n")
        if incoming != "defer" {
            do throws(QMPError) { try role.listen(incoming) } catch { throw fail("--incoming: \(error.desc)", ExitCodes.unavailable) }
        }
        role.finished.wait()
        guard let report = role.report else { throw fail("incoming: \(role.error ?? "the migration failed")", ExitCodes.dataError) }
        let how = report.postcopy ? "through postcopy, \(report.remoteFaults) pages faulted in on demand, \(report.recoveries) recoveries" : "in precopy"
        Terminal.standardError("incoming: \(report.pagesReceived) pages received \(how); verified: \(report.verified ? "yes" : "NO"), \(report.detail)\n")
        guard report.verified, let guest = destination.guest else { throw ExitCodes.dataError }
        return guest
    }
}

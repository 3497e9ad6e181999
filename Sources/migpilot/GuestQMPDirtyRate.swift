import Foundation
import MigrationEngine
import QMP
import Synchronization

/// QEMU's `calc-dirty-rate` / `query-dirty-rate` on a migpilot guest, measured with the
/// guest's real dirty tracking (userfaultfd write-protect, every page written counted, not a
/// sample): the tracker is cleared, and after `calc-time` seconds the pages written since are
/// the rate, in MiB/s as QEMU computes its "MB/s".
final class GuestQMPDirtyRate: Sendable {
    /// The tracker to measure with now, or why there is none (`QMPError`).
    typealias TrackerSource = @Sendable () throws(QMPError) -> any DirtyTracker

    private struct Measurement {
        var status = "unstarted"
        var startTime: Int64 = 0
        var calcTime: Int64 = 0
        var samplePages: Int64 = 512
        var rate: Int64?
    }
    private let measurement = Mutex(Measurement())
    private let tracker: TrackerSource
    private let pageSize: Int

    init(pageSize: Int, tracker: @escaping TrackerSource) {
        self.pageSize = pageSize
        self.tracker = tracker
    }

    func register(_ commands: QMPCommandRegistry) {
        commands.register("calc-dirty-rate", parameters: [QMPParameter("calc-time", .integer), QMPParameter("sample-pages", .integer, optional: true),
                                                          QMPParameter("mode", .string, optional: true)]) { [self] args throws(QMPError) in
            let seconds = args["calc-time"]!.integerValue!
            guard (1...60).contains(seconds) else { throw QMPError(.genericError, "calc-time is out of range[1, 60].") }
            if let mode = args["mode"]?.stringValue, !["page-sampling", "dirty-bitmap", "dirty-ring"].contains(mode) {
                throw QMPError(.genericError, "Parameter 'mode' does not accept value '\(mode)'")
            }
            try start(seconds: seconds, samplePages: args["sample-pages"]?.integerValue ?? 512)
            return [:]
        }
        commands.register("query-dirty-rate") { [self] _ in
            let m = measurement.withLock { $0 }
            var out: [(key: String, value: JSONValue)] = [("status", .string(m.status))]
            if let rate = m.rate { out.append(("dirty-rate", .integer(rate))) }
            out += [("start-time", .integer(m.startTime)), ("calc-time", .integer(m.calcTime)),
                    ("sample-pages", .integer(m.samplePages)), ("mode", "page-sampling")]
            return .object(out)
        }
    }

    private func start(seconds: Int64, samplePages: Int64) throws(QMPError) {
        try measurement.withLock { (m: inout Measurement) throws(QMPError) in
            guard m.status != "measuring" else { throw QMPError(.genericError, "the dirty rate is already being measured.") }
            m = Measurement(status: "measuring", startTime: Int64(Date().timeIntervalSince1970), calcTime: seconds, samplePages: samplePages)
        }
        let chosen: any DirtyTracker
        do { chosen = try tracker() } catch {
            measurement.withLock { $0.status = "unstarted" }
            throw error
        }
        Thread.detachNewThread { [self, pageSize] in
            var pages: UInt64 = 0
            if (try? chosen.collect()) != nil {
                usleep(UInt32(seconds * 1_000_000))
                pages = (try? chosen.writtenSinceCollect()) ?? 0
            }
            let rate = Int64((Double(pages) * Double(pageSize) / Double(1 << 20)) / Double(seconds))
            measurement.withLock { m in
                m.rate = rate
                m.status = "measured"
            }
        }
    }
}

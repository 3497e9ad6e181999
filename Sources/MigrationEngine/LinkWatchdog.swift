import Traces
import Glibc
import Transport

/// Watches a postcopy link for silence, on either side. Errors and EOF end a link by
/// themselves; a link that just goes quiet (a peer stopped, packets dropped) would otherwise
/// hang until TCP gives up minutes later. The source pings every `pingEvery` and the destination
/// answers each ping (so that a healthy but idle link is never quiet either way), and a link
/// that brings nothing for `silence` (four missed pings) is aborted: its reader then fails,
/// and the side pauses as for any other break.
final class LinkWatchdog: @unchecked Sendable {
    // @unchecked: `stopping` is touched under `monitor` only; the rest is immutable.
    private let monitor = Monitor()
    private var stopping = false
    private var thread: pthread_t?

    /// Starts watching `connection`: `ping` is called every `pingEvery` seconds, and the channel
    /// is aborted once nothing has arrived for `silence` seconds (checked every 50 ms, so a
    /// dead link is found within `silence` + 50 ms: under a second, by default).
    init(_ connection: StreamConnection, silence: Double = 0.8, pingEvery: Double = 0.2,
         ping: @escaping @Sendable () -> Void = {}) throws(SystemCallError) {
        let silenceNanoseconds = UInt64(silence * 1e9), pingPeriod = UInt64(pingEvery * 1e9), check: UInt64 = 50_000_000
        thread = try Sys.startThread { [monitor = self.monitor, unowned self] in
            var nextCheck = Sys.monotonicNanoseconds() + check, nextPing = Sys.monotonicNanoseconds() + pingPeriod
            while monitor.locked({ () -> Bool in
                while !self.stopping, Sys.monotonicNanoseconds() < nextCheck { monitor.wait(untilMonotonic: nextCheck) }
                return !self.stopping
            }) {
                nextCheck += check
                if connection.nanosecondsSinceLastReceive > silenceNanoseconds {
                    connection.channel.abort()
                    return
                }
                if Sys.monotonicNanoseconds() >= nextPing {
                    nextPing += pingPeriod
                    ping()
                }
            }
        }
    }

    /// Stops watching (idempotent); returns once the watching thread has ended.
    func stop() {
        guard let thread else { return }
        monitor.locked {
            stopping = true
            monitor.broadcast()
        }
        Sys.join(thread)
        self.thread = nil
    }

    deinit { stop() }
}

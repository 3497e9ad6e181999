import Glibc
import Migration

/// A channel over plain descriptors, moved with read(2)/write(2): `stdio` (stdin and stdout),
/// `file:` (one way: a file written or read) and `exec:` (a command's stdin and stdout; the
/// channel owns the command and ends it on close).
public final class DescriptorChannel: ByteChannel, @unchecked Sendable {
    public let uri: MigrationURI
    private let input: Int32?   // what we receive from (-1 once shut)
    private var output: Int32?  // what we send to
    private let ownsDescriptors: Bool
    private let child: pid_t?
    private let killGrace: Double
    private let state = Mutex()
    private var closed = false
    private var exitStatus: Int32?

    init(uri: MigrationURI, input: Int32?, output: Int32?, owns: Bool, child: pid_t? = nil, killGrace: Double = 2) {
        self.uri = uri
        self.input = input
        self.output = output
        self.ownsDescriptors = owns
        self.child = child
        self.killGrace = killGrace
        _ = Sys.ignoreBrokenPipes
    }

    deinit { close() }

    public func send(_ bytes: UnsafeRawBufferPointer) throws(TransportError) {
        guard let fd = state.locked({ output }) else {
            throw TransportError(call: "send (not open for sending: one-way or shut)", errno: EBADF, uri: uri)
        }
        do { try Sys.writeAll(fd, bytes) } catch { throw withExit(error, waiting: error.errno == EPIPE) }
    }

    public func send(pieces: [UnsafeRawBufferPointer]) throws(TransportError) {
        guard let fd = state.locked({ output }) else {
            throw TransportError(call: "send (not open for sending: one-way or shut)", errno: EBADF, uri: uri)
        }
        do { try Sys.writeAll(fd, pieces, socket: false) } catch { throw withExit(error, waiting: error.errno == EPIPE) }
    }

    public func receive(into buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        guard let fd = input else {
            throw TransportError(call: "receive (one-way: send only)", errno: EBADF, uri: uri)
        }
        guard buffer.count > 0 else { return 0 }
        let n: Int
        do { n = try Sys.read(fd, buffer) } catch { throw withExit(error, waiting: false) }
        // The command's output ended: if it failed, that is the news, not the end of stream.
        if n == 0, child != nil, let status = childStatus(waiting: true), status != 0 {
            throw TransportError(call: "exec(/bin/sh -c)", errno: 0, uri: uri, exitStatus: status)
        }
        return n
    }

    public func shutdownWrite() throws(TransportError) {
        state.locked {
            if let fd = output, ownsDescriptors { Sys.close(fd) }
            output = nil
        }
    }

    /// For `exec:`: SIGTERM, SIGKILL after the grace period, reaped; its exit status.
    @discardableResult
    public func endCommand() -> Int32? {
        guard let child else { return nil }
        if let status = childStatus(waiting: false) { return status }
        Sys.kill(child, SIGTERM)
        let deadline = Sys.monotonicNanoseconds() + UInt64(killGrace * 1e9)
        while Sys.monotonicNanoseconds() < deadline {
            if let status = childStatus(waiting: false) { return status }
            Sys.sleep(nanoseconds: 10_000_000)
        }
        Sys.kill(child, SIGKILL)
        return childStatus(waiting: true)
    }

    /// Ends an `exec:` command (its pipes then close); for `stdio` and `file:` nothing to do:
    /// their reads and writes do not block for long.
    public func abort() {
        if child != nil { endCommand() }
    }

    public func close() {
        let first = state.locked { () -> Bool in
            guard !closed else { return false }
            closed = true
            return true
        }
        guard first else { return }
        try? shutdownWrite()
        if child != nil { endCommand() }
        if ownsDescriptors, let fd = input { Sys.close(fd) }
    }

    /// The command's exit status once it has ended; `waiting` gives it up to a second to end.
    private func childStatus(waiting: Bool) -> Int32? {
        guard let child else { return nil }
        return state.locked { () -> Int32? in
            if exitStatus == nil { exitStatus = Sys.reap(child, wait: false) }
            let deadline = Sys.monotonicNanoseconds() + 1_000_000_000
            while waiting && exitStatus == nil && Sys.monotonicNanoseconds() < deadline {
                Sys.sleep(nanoseconds: 5_000_000)
                exitStatus = Sys.reap(child, wait: false)
            }
            return exitStatus
        }
    }

    private func withExit(_ error: TransportError, waiting: Bool) -> TransportError {
        var e = error.at(uri)
        if child != nil { e.exitStatus = childStatus(waiting: waiting) }
        return e
    }
}

// Every system call of the Transport module, each wrapped once: EINTR is retried, a failure
// becomes a `TransportError` that names the call (the channel adds its URI). The io_uring ring
// (CUring's opaque `mp_ring`) is wrapped here too: its completions carry -errno.
import CUring
import Glibc
import Migration

/// A transport that failed: which call, the errno it returned (0 when the failure is not an
/// errno, e.g. a command that exited), the URI it was working for, and for `exec:` the exit
/// status of the command once it has ended (its code, or 128 + signal).
public struct TransportError: Error, CustomStringConvertible, Sendable, Equatable {
    public let call: String
    public let errno: Int32
    public internal(set) var uri: MigrationURI?
    public internal(set) var exitStatus: Int32?

    public init(call: String, errno: Int32, uri: MigrationURI? = nil, exitStatus: Int32? = nil) {
        self.call = call
        self.errno = errno
        self.uri = uri
        self.exitStatus = exitStatus
    }

    /// The same error, said of `uri` (unless it already names one).
    func at(_ uri: MigrationURI) -> TransportError {
        var e = self
        if e.uri == nil { e.uri = uri }
        return e
    }

    public var description: String {
        var text = call
        if let uri { text += " (\(uri))" }
        if errno != 0 { text += ": \(String(cString: strerror(errno))) (errno \(errno))" }
        if let exitStatus {
            text += exitStatus > 128 ? ", command killed by signal \(exitStatus - 128)" : ", command exited with status \(exitStatus)"
        }
        return text
    }
}

/// Runs `body` again while it fails with EINTR; a negative result becomes a `TransportError`.
@inline(__always)
func systemCall<T: BinaryInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws(TransportError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = Glibc.errno
        if error != EINTR { throw TransportError(call: call(), errno: error) }
    }
}

/// Runs `body`; a `TransportError` it throws gets `uri` attached.
@inline(__always)
func on<T>(_ uri: MigrationURI, _ body: () throws(TransportError) -> T) throws(TransportError) -> T {
    do { return try body() } catch { throw error.at(uri) }
}

enum Sys {
    static let streamType = Int32(SOCK_STREAM.rawValue)
    static let tcpLevel = Int32(IPPROTO_TCP)
    // Linux values that glibc shows only under _GNU_SOURCE.
    static let setPipeSize: Int32 = 1031 // F_SETPIPE_SZ
    static let maxVectors = 1024          // IOV_MAX: vectors one sendmsg or writev takes

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    static func setCloseOnExec(_ fd: Int32) {
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }

    // MARK: sockets

    static func socket(_ family: Int32) throws(TransportError) -> Int32 {
        let fd = try systemCall("socket") { Glibc.socket(family, streamType, 0) }
        setCloseOnExec(fd)
        return fd
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws(TransportError) {
        var v = value
        _ = try systemCall("setsockopt(\(label))") { setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    static func option(_ fd: Int32, _ level: Int32, _ name: Int32, _ label: String) throws(TransportError) -> Int32 {
        var v: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = try systemCall("getsockopt(\(label))") { getsockopt(fd, level, name, &v, &length) }
        return v
    }

    static func bind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) throws(TransportError) {
        _ = try systemCall("bind") { Glibc.bind(fd, address, length) }
    }

    static func listen(_ fd: Int32) throws(TransportError) {
        _ = try systemCall("listen") { Glibc.listen(fd, 16) }
    }

    static func accept(_ fd: Int32) throws(TransportError) -> Int32 {
        let client = try systemCall("accept") { Glibc.accept(fd, nil, nil) }
        setCloseOnExec(client)
        return client
    }

    /// connect(2); EINTR leaves the connection going on, so wait for it rather than call again.
    static func connect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) throws(TransportError) {
        if Glibc.connect(fd, address, length) == 0 { return }
        var error = Glibc.errno
        if error == EINTR {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            while poll(&p, 1, -1) < 0 && Glibc.errno == EINTR {}
            error = try option(fd, SOL_SOCKET, SO_ERROR, "SO_ERROR")
            if error == 0 { return }
        }
        throw TransportError(call: "connect", errno: error)
    }

    /// The local port a socket is bound to (IPv4 or IPv6).
    static func boundPort(_ fd: Int32) throws(TransportError) -> UInt16 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { p throws(TransportError) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a throws(TransportError) in
                try systemCall("getsockname") { getsockname(fd, a, &length) }
            }
        }
        return withUnsafeBytes(of: &storage) { raw in
            // sin_port and sin6_port both sit at offset 2, in network order.
            UInt16(bigEndian: raw.load(fromByteOffset: 2, as: UInt16.self))
        }
    }

    static func shutdown(_ fd: Int32, _ how: Int32) throws(TransportError) {
        _ = try systemCall("shutdown") { Glibc.shutdown(fd, how) }
    }

    /// The addresses of `host`:`port` for a stream socket (passive: for bind).
    static func resolve(_ host: String, _ port: UInt16, passive: Bool) throws(TransportError) -> [[UInt8]] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = streamType
        hints.ai_flags = passive ? AI_PASSIVE | AI_NUMERICSERV : AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0 else {
            let errno = rc == EAI_SYSTEM ? Glibc.errno : 0
            throw TransportError(call: "getaddrinfo(\(host)): \(String(cString: gai_strerror(rc)))", errno: errno)
        }
        defer { freeaddrinfo(list) }
        var out: [[UInt8]] = []
        var next = list
        while let a = next {
            if let address = a.pointee.ai_addr {
                out.append(Array(UnsafeRawBufferPointer(start: address, count: Int(a.pointee.ai_addrlen))))
            }
            next = a.pointee.ai_next
        }
        return out
    }

    /// A `sockaddr_un` for `path`, as bytes.
    static func unixAddress(_ path: String) throws(TransportError) -> [UInt8] {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw TransportError(call: "sockaddr_un(\(path))", errno: ENAMETOOLONG) }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafeBytes(of: &address) { Array($0) }
    }

    static func unlink(_ path: String) { _ = Glibc.unlink(path) }

    static func isSocket(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFSOCK
    }

    // MARK: plain descriptors (pipes, files, stdio)

    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(TransportError) -> Int32 {
        try systemCall("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(TransportError) -> Int {
        try systemCall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes all of `bytes`, however many calls it takes. EPIPE is an error, not a signal: the
    /// module ignores SIGPIPE (see `ignoreBrokenPipes`).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(TransportError) {
        var done = 0
        while done < bytes.count {
            done += try systemCall("write") { Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done) }
        }
    }

    /// Writes all of `pieces`, in order, with gathered writes (`sendmsg` on a socket, with
    /// MSG_NOSIGNAL; `writev` on anything else), however many calls it takes.
    static func writeAll(_ fd: Int32, _ pieces: [UnsafeRawBufferPointer], socket: Bool) throws(TransportError) {
        var vectors = pieces.filter { !$0.isEmpty }.map { iovec(iov_base: UnsafeMutableRawPointer(mutating: $0.baseAddress), iov_len: $0.count) }
        var first = 0
        while first < vectors.count {
            let count = min(maxVectors, vectors.count - first)
            var done = try vectors.withUnsafeMutableBufferPointer { v throws(TransportError) -> Int in
                let start = v.baseAddress! + first
                if !socket { return try systemCall("writev") { Glibc.writev(fd, start, Int32(count)) } }
                var message = msghdr()
                message.msg_iov = start
                message.msg_iovlen = count
                return try systemCall("sendmsg") { Glibc.sendmsg(fd, &message, Int32(MSG_NOSIGNAL)) }
            }
            // A short write stops inside a vector: skip what went, trim the one it stopped in.
            while done > 0, done >= vectors[first].iov_len {
                done -= vectors[first].iov_len
                first += 1
            }
            if done > 0 {
                vectors[first].iov_base += done
                vectors[first].iov_len -= done
            }
        }
    }

    static func pipe() throws(TransportError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        _ = try systemCall("pipe") { Glibc.pipe(&fds) }
        setCloseOnExec(fds[0])
        setCloseOnExec(fds[1])
        // Larger pipes move a stream in fewer, larger copies; best effort.
        _ = fcntl(fds[1], setPipeSize, 1 << 20)
        return (fds[0], fds[1])
    }

    /// A write to a pipe or socket whose reader is gone fails with EPIPE instead of killing us.
    static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    // MARK: processes

    /// Starts `/bin/sh -c command` with `stdin` and `stdout` as its standard input and output
    /// and a clean signal state (no mask, default actions: SIGTERM ends it).
    static func spawnShell(_ command: String, stdin: Int32, stdout: Int32) throws(TransportError) -> pid_t {
        let arguments = ["/bin/sh", "-c", command]
        var cArgs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var child: Int32 = 0
        let rc = mp_spawn(&cArgs, 0, stdin, stdout, &child)
        guard rc == 0 else { throw TransportError(call: "posix_spawn(/bin/sh -c \(command))", errno: rc) }
        return child
    }

    /// The exit status of `pid` if it has ended (code, or 128 + signal), nil while it runs.
    /// `wait` blocks until it ends.
    static func reap(_ pid: pid_t, wait: Bool) -> Int32? {
        var status: Int32 = 0
        while true {
            let rc = waitpid(pid, &status, wait ? 0 : WNOHANG)
            if rc == pid { break }
            if rc < 0 && Glibc.errno == EINTR { continue }
            return rc < 0 ? -1 : nil
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    static func kill(_ pid: pid_t, _ signal: Int32) { _ = Glibc.kill(pid, signal) }

    // MARK: time

    static func monotonicNanoseconds() -> UInt64 { mp_monotonic_ns() }

    static func sleep(nanoseconds: UInt64) { mp_sleep_ns(nanoseconds) }
}

/// One io_uring ring, used by one thread at a time. Operations are prepared, submitted
/// together, and all their completions collected before the buffers are given back.
final class Ring {
    private let ring: OpaquePointer

    init(entries: UInt32) throws(TransportError) {
        var error: Int32 = 0
        guard let r = mp_ring_create(entries, 0, &error) else {
            throw TransportError(call: "io_uring_queue_init", errno: -error)
        }
        ring = r
    }

    deinit { mp_ring_destroy(ring) }

    func prepSend(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, flags: Int32, tag: UInt64) {
        precondition(mp_ring_prep_send(ring, fd, bytes.baseAddress, bytes.count, flags, tag) == 0, "io_uring queue full")
    }

    func prepRecv(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32, tag: UInt64) {
        precondition(mp_ring_prep_recv(ring, fd, buffer.baseAddress, buffer.count, flags, tag) == 0, "io_uring queue full")
    }

    func linkLast() { mp_ring_link_last(ring) }

    func prepLinkTimeout(nanoseconds: UInt64, tag: UInt64) {
        precondition(mp_ring_prep_link_timeout(ring, nanoseconds, tag) == 0, "io_uring queue full")
    }

    /// Submits what is queued and collects exactly `count` completions as (tag, result).
    func submit(collecting count: Int, call: String) throws(TransportError) -> [(tag: UInt64, result: Int32)] {
        var out: [(tag: UInt64, result: Int32)] = []
        out.reserveCapacity(count)
        while out.count < count {
            // Wait for what is still missing (an EINTR may come after some have arrived).
            let rc = mp_ring_submit_and_wait(ring, UInt32(count - out.count))
            if rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY {
                throw TransportError(call: "io_uring_enter(\(call))", errno: -rc)
            }
            var tag: UInt64 = 0, result: Int32 = 0
            while out.count < count, mp_ring_next_completion(ring, &tag, &result) == 1 { out.append((tag, result)) }
        }
        return out
    }
}

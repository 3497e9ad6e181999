import Glibc
import Migration

/// Opens channels for migration URIs. The caller gets a `ByteChannel` and never needs to
/// know which transport is behind it.
public enum Transport {
    /// The sending side: connects to `tcp:`/`unix:`, starts `exec:` (its stdin carries the
    /// stream, its stdout the return path), uses this process's stdin/stdout for `stdio`, or
    /// creates (truncates) `file:` for a one-way save.
    public static func connect(_ uri: MigrationURI, options: TransportOptions = TransportOptions()) throws(TransportError) -> any ByteChannel {
        try on(uri) { () throws(TransportError) -> any ByteChannel in
            switch uri {
            case let .tcp(host, port):
                return try firstAddress(host, port, passive: false) { (fd, address) throws(TransportError) in
                    try withSocketAddress(address) { (a, n) throws(TransportError) in try Sys.connect(fd, a, n) }
                    try configureTCP(fd, options)
                    return try SocketChannel(descriptor: fd, uri: uri, options: options)
                }
            case let .unix(path):
                let address = try Sys.unixAddress(path)
                let fd = try Sys.socket(AF_UNIX)
                do throws(TransportError) {
                    try withSocketAddress(address) { (a, n) throws(TransportError) in try Sys.connect(fd, a, n) }
                    return try SocketChannel(descriptor: fd, uri: uri, options: options)
                } catch {
                    Sys.close(fd)
                    throw error
                }
            case let .exec(command):
                return try spawn(command, uri: uri, options: options)
            case .stdio:
                return DescriptorChannel(uri: uri, input: 0, output: 1, owns: false)
            case let .file(path):
                let fd = try Sys.open(path, O_WRONLY | O_CREAT | O_TRUNC)
                return DescriptorChannel(uri: uri, input: nil, output: fd, owns: true)
            }
        }
    }

    /// The receiving side: a listening socket for `tcp:` (port 0: the kernel picks one, see
    /// `Listener.port`) and `unix:`; for `exec:`, `stdio` and `file:` (read back) the listener
    /// hands out its one channel on the first `accept()`.
    public static func listen(_ uri: MigrationURI, options: TransportOptions = TransportOptions()) throws(TransportError) -> Listener {
        try on(uri) { () throws(TransportError) -> Listener in
            switch uri {
            case let .tcp(host, port):
                return try firstAddress(host, port, passive: true) { (fd, address) throws(TransportError) in
                    try Sys.setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR")
                    try withSocketAddress(address) { (a, n) throws(TransportError) in try Sys.bind(fd, a, n) }
                    try Sys.listen(fd)
                    let bound = try Sys.boundPort(fd)
                    return Listener(kind: .socket(fd, tcp: true), uri: .tcp(host: host, port: bound), options: options)
                }
            case let .unix(path):
                let address = try Sys.unixAddress(path)
                if Sys.isSocket(path) { Sys.unlink(path) } // a stale socket from an earlier run
                let fd = try Sys.socket(AF_UNIX)
                do throws(TransportError) {
                    try withSocketAddress(address) { (a, n) throws(TransportError) in try Sys.bind(fd, a, n) }
                    try Sys.listen(fd)
                } catch {
                    Sys.close(fd)
                    throw error
                }
                return Listener(kind: .socket(fd, tcp: false), uri: uri, options: options)
            case let .exec(command):
                return Listener(kind: .once(try spawn(command, uri: uri, options: options)), uri: uri, options: options)
            case .stdio:
                return Listener(kind: .once(DescriptorChannel(uri: uri, input: 0, output: 1, owns: false)), uri: uri, options: options)
            case let .file(path):
                let fd = try Sys.open(path, O_RDONLY)
                return Listener(kind: .once(DescriptorChannel(uri: uri, input: fd, output: nil, owns: true)), uri: uri, options: options)
            }
        }
    }

    /// Tries `body` on a new socket for each address of `host`:`port` in turn (IPv4, IPv6);
    /// the first success, or the last failure. The socket is closed when `body` fails.
    private static func firstAddress<T>(_ host: String, _ port: UInt16, passive: Bool,
                                        _ body: (Int32, [UInt8]) throws(TransportError) -> T) throws(TransportError) -> T {
        var last = TransportError(call: "getaddrinfo(\(host)): no address", errno: 0)
        for address in try Sys.resolve(host, port, passive: passive) {
            let family = Int32(address.withUnsafeBytes { $0.load(as: sa_family_t.self) })
            let fd = try Sys.socket(family)
            do throws(TransportError) { return try body(fd, address) } catch {
                Sys.close(fd)
                last = error
            }
        }
        throw last
    }

    static func spawn(_ command: String, uri: MigrationURI, options: TransportOptions) throws(TransportError) -> DescriptorChannel {
        let toChild = try Sys.pipe()
        let fromChild: (read: Int32, write: Int32)
        do { fromChild = try Sys.pipe() } catch {
            Sys.close(toChild.read)
            Sys.close(toChild.write)
            throw error
        }
        defer {
            Sys.close(toChild.read)
            Sys.close(fromChild.write)
        }
        let pid: pid_t
        do { pid = try Sys.spawnShell(command, stdin: toChild.read, stdout: fromChild.write) } catch {
            Sys.close(toChild.write)
            Sys.close(fromChild.read)
            throw error
        }
        return DescriptorChannel(uri: uri, input: fromChild.read, output: toChild.write, owns: true,
                                 child: pid, killGrace: options.killGrace)
    }

    static func configureTCP(_ fd: Int32, _ options: TransportOptions) throws(TransportError) {
        if options.noDelay { try Sys.setOption(fd, Sys.tcpLevel, TCP_NODELAY, 1, "TCP_NODELAY") }
        if let k = options.keepAlive {
            try Sys.setOption(fd, SOL_SOCKET, SO_KEEPALIVE, 1, "SO_KEEPALIVE")
            try Sys.setOption(fd, Sys.tcpLevel, TCP_KEEPIDLE, k.idle, "TCP_KEEPIDLE")
            try Sys.setOption(fd, Sys.tcpLevel, TCP_KEEPINTVL, k.interval, "TCP_KEEPINTVL")
            try Sys.setOption(fd, Sys.tcpLevel, TCP_KEEPCNT, k.count, "TCP_KEEPCNT")
        }
        if let seconds = options.userTimeout {
            try Sys.setOption(fd, Sys.tcpLevel, TCP_USER_TIMEOUT, seconds * 1000, "TCP_USER_TIMEOUT")
        }
    }

    private static func withSocketAddress(_ bytes: [UInt8], _ body: (UnsafePointer<sockaddr>, socklen_t) throws(TransportError) -> Void) throws(TransportError) {
        var copy = bytes
        let result = copy.withUnsafeMutableBytes { raw -> TransportError? in
            do throws(TransportError) {
                try body(raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
                return nil
            } catch { return error }
        }
        if let result { throw result }
    }
}

/// Where a destination waits for its source.
public final class Listener: @unchecked Sendable {
    enum Kind {
        case socket(Int32, tcp: Bool)
        case once(DescriptorChannel)
    }

    /// What was asked for, with the port the kernel chose for `tcp:…:0`.
    public let uri: MigrationURI
    private var kind: Kind?
    private let options: TransportOptions
    private let state = Mutex()

    init(kind: Kind, uri: MigrationURI, options: TransportOptions) {
        self.kind = kind
        self.uri = uri
        self.options = options
    }

    deinit { close() }

    /// The TCP port listened on (nil for other transports).
    public var port: UInt16? {
        if case let .tcp(_, port) = uri { return port }
        return nil
    }

    /// The next channel: a connection for `tcp:`/`unix:`, the one channel otherwise (a second
    /// `accept()` fails with EBADF).
    public func accept() throws(TransportError) -> any ByteChannel {
        let current = state.locked { () -> Kind? in
            let k = kind
            if case .once = k { kind = nil }
            return k
        }
        return try on(uri) { () throws(TransportError) -> any ByteChannel in
            switch current {
            case let .socket(fd, tcp):
                let client = try Sys.accept(fd)
                do throws(TransportError) {
                    if tcp { try Transport.configureTCP(client, options) }
                    return try SocketChannel(descriptor: client, uri: uri, options: options)
                } catch {
                    Sys.close(client)
                    throw error
                }
            case let .once(channel):
                return channel
            case nil:
                throw TransportError(call: "accept (listener closed or its one channel taken)", errno: EBADF)
            }
        }
    }

    /// Stops listening (a `unix:` socket file is removed). Channels already accepted live on.
    public func close() {
        let current = state.locked { () -> Kind? in
            defer { kind = nil }
            return kind
        }
        switch current {
        case let .socket(fd, _):
            Sys.close(fd)
            if case let .unix(path) = uri { Sys.unlink(path) }
        case let .once(channel):
            channel.close()
        case nil:
            break
        }
    }
}

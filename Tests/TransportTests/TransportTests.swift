import CUring
import Glibc
import Migration
import Testing
@testable import Transport

private let loopback = MigrationURI.tcp(host: "127.0.0.1", port: 0)

private func connectedPair(_ uri: MigrationURI, options: TransportOptions = TransportOptions())
    throws -> (client: SocketChannel, server: SocketChannel, listener: Listener) {
    let listener = try Transport.listen(uri, options: options)
    let client = try Transport.connect(listener.uri, options: options) as! SocketChannel
    let server = try listener.accept() as! SocketChannel
    return (client, server, listener)
}

private func unixPath(_ name: String) -> String { "/tmp/migpilot-transport-\(getpid())-\(name).sock" }

@Test func listenerOnPortZeroReportsTheKernelsPort() throws {
    let listener = try Transport.listen(loopback)
    defer { listener.close() }
    let port = try #require(listener.port)
    #expect(port != 0)
    #expect(listener.uri == .tcp(host: "127.0.0.1", port: port))
}

@Test func tcpCarries256MiBEachWayAtOnce() throws {
    let (client, server, listener) = try connectedPair(loopback)
    defer { listener.close(); client.close(); server.close() }
    let watchdog = Watchdog(seconds: 120) {
        shutdown(client.descriptor, Int32(SHUT_RDWR)); shutdown(server.descriptor, Int32(SHUT_RDWR))
    }
    try fullDuplex(client, server, all: true)
    #expect(!watchdog.cancel(), "the transfer hung and was cut by the watchdog")
}

@Test func tcpOverIPv6Loopback() throws {
    let (client, server, listener) = try connectedPair(.tcp(host: "::1", port: 0))
    defer { listener.close(); client.close(); server.close() }
    #expect(listener.uri.description.hasPrefix("tcp:[::1]:"))
    try fullDuplex(client, server, chunks: 8, all: false)
}

@Test func unixCarries256MiBEachWayAtOnce() throws {
    var options = TransportOptions()
    options.receiveTimeout = 60 // the watchdog: a hang becomes ETIMEDOUT
    let path = unixPath("duplex")
    let (client, server, listener) = try connectedPair(.unix(path: path), options: options)
    defer { client.close(); server.close() }
    try fullDuplex(client, server, all: false)
    listener.close()
    #expect(access(path, F_OK) != 0, "closing the listener removes its socket file")
}

@Test func execCatEchoes256MiBWhileItIsSent() throws {
    let cat = try Transport.connect(.exec(command: "cat")) as! DescriptorChannel
    defer { cat.close() }
    let watchdog = Watchdog(seconds: 120) { cat.endCommand() }
    let stream = Pattern(seed: 3, chunks: 256)
    let sender = Worker { () throws in try stream.send(on: cat) }
    let (bytes, crc) = try drain(cat, all: true)
    #expect(bytes == stream.bytes)
    #expect(crc == (try sender.join()))
    #expect(!watchdog.cancel(), "the transfer hung and was cut by the watchdog")
    #expect(cat.endCommand() == 0, "cat ends by itself at end of input, with status 0")
}

@Test func connectingToAClosedPortNamesConnectAndECONNREFUSED() throws {
    // A socket bound to a kernel-chosen port but not listening: connections are refused, and
    // since it keeps the port, no test running meanwhile can take it.
    let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(holder) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    try withUnsafeMutablePointer(to: &address) { p in
        try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { a in
            try #require(bind(holder, a, length) == 0)
            try #require(getsockname(holder, a, &length) == 0)
        }
    }
    let port = UInt16(bigEndian: address.sin_port)
    let uri = MigrationURI.tcp(host: "127.0.0.1", port: port)
    let error = #expect(throws: TransportError.self) { try Transport.connect(uri) }
    #expect(error?.call == "connect")
    #expect(error?.errno == ECONNREFUSED)
    #expect(error?.uri == uri)
    #expect(error?.description.contains("tcp:127.0.0.1:\(port)") == true)
}

@Test func tcpPeerVanishingMidStreamGivesAnErrorOrEndOfStream() throws {
    let (client, server, listener) = try connectedPair(loopback)
    defer { listener.close(); client.close(); server.close() }
    let watchdog = Watchdog(seconds: 30) {
        shutdown(client.descriptor, Int32(SHUT_RDWR)); shutdown(server.descriptor, Int32(SHUT_RDWR))
    }
    // The client streams 1 GiB; the server takes 4 MiB and vanishes with a reset.
    let sender = Worker { () throws in try Pattern(seed: 4, chunks: 1024).send(on: client) }
    var buffer = [UInt8](repeating: 0, count: 4 * MiB)
    let got = try buffer.withUnsafeMutableBytes { b throws in try server.receiveAll(into: b) }
    #expect(got == 4 * MiB)
    var linger = linger(l_onoff: 1, l_linger: 0)
    setsockopt(server.descriptor, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<linger>.size))
    server.close()
    let error = #expect(throws: TransportError.self) { try sender.join() }
    #expect(error?.call == "send")
    #expect([EPIPE, ECONNRESET].contains(error?.errno ?? 0))
    // The client's receive side sees the reset or the end, never a hang.
    do {
        let n = try buffer.withUnsafeMutableBytes { b throws in try client.receive(into: b) }
        #expect(n == 0)
    } catch let error as TransportError {
        #expect(error.errno == ECONNRESET)
    }
    #expect(!watchdog.cancel(), "a vanished peer hung the transfer")
}

@Test func unixSenderVanishingGivesEndOfStreamWithWhatArrived() throws {
    let (client, server, listener) = try connectedPair(.unix(path: unixPath("vanish")))
    defer { listener.close(); server.close() }
    var block = [UInt8](repeating: 7, count: MiB + 5)
    let sender = Worker { [block] () throws in
        try block.withUnsafeBytes { b throws in try client.send(b) }
        client.close()
    }
    var big = [UInt8](repeating: 0, count: 8 * MiB)
    let got = try big.withUnsafeMutableBytes { m throws in try server.receiveAll(into: m) }
    try sender.join()
    #expect(got == MiB + 5)
    #expect(try block.withUnsafeMutableBytes { b throws in try server.receive(into: b) } == 0)
}

@Test func receiveTimeoutEndsASilentLink() throws {
    var options = TransportOptions()
    options.receiveTimeout = 0.2
    let (client, server, listener) = try connectedPair(loopback, options: options)
    defer { listener.close(); client.close(); server.close() }
    var buffer = [UInt8](repeating: 0, count: 64)
    let start = now()
    let error = #expect(throws: TransportError.self) {
        try buffer.withUnsafeMutableBytes { b throws in try client.receive(into: b) }
    }
    #expect(error?.errno == ETIMEDOUT)
    #expect(now() - start < 5)
    // The link still works after a timeout.
    try [UInt8](repeating: 1, count: 10).withUnsafeBytes { b throws in try server.send(b) }
    #expect(try buffer.withUnsafeMutableBytes { b throws in try client.receiveAll(into: b[0..<10].rebased()) } == 10)
}

@Test func abortWakesAReceiverBlockedInAnotherThread() throws {
    let (client, server, listener) = try connectedPair(loopback)
    defer { listener.close(); client.close(); server.close() }
    let receiver = Worker { () throws -> Int in
        var buffer = [UInt8](repeating: 0, count: MiB)
        return try buffer.withUnsafeMutableBytes { b throws in try client.receiveAll(into: b) }
    }
    usleep(100_000)
    let start = now()
    client.abort()
    #expect(try receiver.join() == 0)
    #expect(now() - start < 5)
}

@Test func keepaliveAndUserTimeoutAreSetOnBothEnds() throws {
    var options = TransportOptions()
    options.keepAlive = .init(idle: 7, interval: 3, count: 4)
    options.userTimeout = 11
    let (client, server, listener) = try connectedPair(loopback, options: options)
    defer { listener.close(); client.close(); server.close() }
    for fd in [client.descriptor, server.descriptor] {
        func get(_ level: Int32, _ name: Int32) -> Int32 {
            var v: Int32 = -1
            var n = socklen_t(4)
            #expect(getsockopt(fd, level, name, &v, &n) == 0)
            return v
        }
        let tcp = Int32(IPPROTO_TCP)
        #expect(get(SOL_SOCKET, SO_KEEPALIVE) == 1)
        #expect(get(tcp, TCP_KEEPIDLE) == 7)
        #expect(get(tcp, TCP_KEEPINTVL) == 3)
        #expect(get(tcp, TCP_KEEPCNT) == 4)
        #expect(get(tcp, TCP_USER_TIMEOUT) == 11_000)
        #expect(get(tcp, TCP_NODELAY) == 1)
    }
}

@Test func execWithAFailingCommandReportsItsExit() throws {
    let channel = try Transport.connect(.exec(command: "echo partial; exit 3"))
    defer { channel.close() }
    var buffer = [UInt8](repeating: 0, count: 64)
    let n = try buffer.withUnsafeMutableBytes { b throws in try channel.receive(into: b) }
    #expect(Array(buffer[0..<n]) == Array("partial\n".utf8))
    let error = #expect(throws: TransportError.self) {
        try buffer.withUnsafeMutableBytes { b throws in try channel.receive(into: b) }
    }
    #expect(error?.exitStatus == 3)
    #expect(error?.description.contains("exited with status 3") == true)
}

@Test func execCommandThatStopsReadingGivesEPIPEWithItsStatus() throws {
    let channel = try Transport.connect(.exec(command: "head -c 100000 >/dev/null; exit 5"))
    defer { channel.close() }
    let error = #expect(throws: TransportError.self) { try Pattern(seed: 5, chunks: 64).send(on: channel) }
    #expect(error?.errno == EPIPE)
    #expect(error?.exitStatus == 5)
}

@Test func execCloseEndsACommandThatIgnoresSIGTERM() throws {
    var options = TransportOptions()
    options.killGrace = 0.3
    let channel = try Transport.connect(.exec(command: "trap '' TERM; echo ready; sleep 30"), options: options) as! DescriptorChannel
    var ready = [UInt8](repeating: 0, count: 6)
    #expect(try ready.withUnsafeMutableBytes { b throws in try channel.receiveAll(into: b) } == 6)
    let start = now()
    #expect(channel.endCommand() == 128 + SIGKILL)
    #expect(now() - start < 5)
    channel.close()
}

@Test func fileIsOneWayAndReadsBackWhatWasWritten() throws {
    let path = "/tmp/migpilot-transport-\(getpid()).stream"
    defer { unlink(path) }
    let stream = Pattern(seed: 6, chunks: 8)
    let writer = try Transport.connect(.file(path: path))
    var small = [UInt8](repeating: 0, count: 8)
    #expect(throws: TransportError.self) {
        try small.withUnsafeMutableBytes { b throws in try writer.receive(into: b) }
    }
    let sent = try stream.send(on: writer)
    writer.close()
    let reader = try Transport.listen(.file(path: path)).accept()
    defer { reader.close() }
    let error = #expect(throws: TransportError.self) {
        try small.withUnsafeBytes { b throws in try reader.send(b) }
    }
    #expect(error?.errno == EBADF)
    let (bytes, crc) = try drain(reader, all: false)
    #expect(bytes == stream.bytes)
    #expect(crc == sent)
}

@Test func aSecondAcceptOnAOneChannelListenerFails() throws {
    let listener = try Transport.listen(.exec(command: "cat"))
    defer { listener.close() }
    let channel = try listener.accept()
    defer { channel.close() }
    let error = #expect(throws: TransportError.self) { try listener.accept() }
    #expect(error?.errno == EBADF)
}

extension Slice where Base == UnsafeMutableRawBufferPointer {
    func rebased() -> UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(rebasing: self) }
}

/// Gathered writes: 3,000 pieces of odd sizes (more than one `sendmsg`/`writev` takes, and
/// more bytes than a socket or pipe buffer holds, so that writes come back short) arrive as
/// the one stream they make, in order.
private func piecesArriveAsOneStream(_ sender: any ByteChannel, _ receiver: any ByteChannel) throws {
    let block = Pattern(seed: 4, chunks: 1).block()
    let sizes = (0..<3000).map { i in i % 7 == 0 ? 0 : (i * 7919) % 9000 + 1 }
    var expected: UInt32 = 0, at = 0
    var pieces: [(Int, Int)] = []
    for size in sizes {
        if at + size > block.count { at = 0 }
        pieces.append((at, size))
        expected = block.withUnsafeBytes { mp_crc32c(expected, $0.baseAddress! + at, size) }
        at += size
    }
    let received = Worker { () throws in try drain(receiver, all: false) }
    try block.withUnsafeBytes { b throws in
        try sender.send(pieces: pieces.map { UnsafeRawBufferPointer(rebasing: b[$0.0..<$0.0 + $0.1]) })
    }
    try sender.shutdownWrite()
    let (bytes, crc) = try received.join()
    #expect(bytes == sizes.reduce(0, +))
    #expect(crc == expected)
}

@Test func tcpSendsPiecesAsOneStream() throws {
    let (client, server, listener) = try connectedPair(loopback)
    defer { listener.close(); client.close(); server.close() }
    try piecesArriveAsOneStream(client, server)
}

@Test func execSendsPiecesAsOneStream() throws {
    let cat = try Transport.connect(.exec(command: "cat")) as! DescriptorChannel
    defer { cat.close() }
    try piecesArriveAsOneStream(cat, cat)
}

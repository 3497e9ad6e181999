// migpilot-transport-bench: one-way tcp throughput over loopback, in a release build.
//   migpilot-transport-bench [GIB] [IN_FLIGHT] [CHUNK_KIB] [SEND_MIB] [RUNS]
// Sends GIB GiB (default 1) from one thread to a receiver thread in the same process through
// Transport's tcp: channel (send calls of SEND_MIB MiB, cut into CHUNK_KIB pieces, IN_FLIGHT
// linked on io_uring at once); prints the best of RUNS runs in GB/s (SI).
import Glibc
import Migration
import Transport

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments.dropFirst().map { Int($0) ?? 0 }
func arg(_ i: Int, _ fallback: Int) -> Int { i < args.count && args[i] > 0 ? args[i] : fallback }
let total = arg(0, 1) << 30
let options = {
    var o = TransportOptions()
    o.inFlight = arg(1, 4)
    o.chunkSize = arg(2, 256) << 10
    return o
}()
let sendSize = arg(3, 8) << 20
let runs = arg(4, 3)

final class Receiver: @unchecked Sendable {
    let channel: any ByteChannel
    var received = 0
    var end = 0.0
    var failure: (any Error)?
    init(_ channel: any ByteChannel) { self.channel = channel }
    func run() {
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        do {
            while true {
                let n = try buffer.withUnsafeMutableBytes { b throws in try channel.receiveAll(into: b) }
                if n == 0 { break }
                received += n
            }
        } catch { failure = error }
        end = now()
    }
}

func oneRun() throws -> Double {
    let listener = try Transport.listen(.tcp(host: "127.0.0.1", port: 0), options: options)
    defer { listener.close() }
    let sender = try Transport.connect(listener.uri, options: options)
    defer { sender.close() }
    let receiver = Receiver(try listener.accept())
    defer { receiver.channel.close() }
    var thread = pthread_t()
    let context = Unmanaged.passRetained(receiver).toOpaque()
    pthread_create(&thread, nil, { raw in
        Unmanaged<Receiver>.fromOpaque(raw!).takeRetainedValue().run()
        return nil
    }, context)
    var block = [UInt8](repeating: 0, count: sendSize)
    for i in block.indices { block[i] = UInt8(truncatingIfNeeded: i &* 2654435761 >> 7) }
    let start = now()
    var sent = 0
    while sent < total {
        let n = min(sendSize, total - sent)
        try block.withUnsafeBytes { b throws in try sender.send(UnsafeRawBufferPointer(rebasing: b[0..<n])) }
        sent += n
    }
    try sender.shutdownWrite()
    pthread_join(thread, nil)
    if let failure = receiver.failure { throw failure }
    precondition(receiver.received == total, "received \(receiver.received) of \(total) bytes")
    return Double(total) / (receiver.end - start) / 1e9
}

do {
    var best = 0.0
    for _ in 0..<runs { best = max(best, try oneRun()) }
    let gbs = (best * 100).rounded() / 100
    print("transport tcp loopback: \(gbs) GB/s (best of \(runs), \(total >> 30) GiB one way, send \(sendSize >> 20) MiB, chunk \(options.chunkSize >> 10) KiB, in flight \(options.inFlight))")
} catch {
    print("transport bench failed: \(error)")
    exit(1)
}

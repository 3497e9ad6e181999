import CUring
import Glibc
import Testing
import Transport

/// A body run on its own thread, joined for its result.
final class Worker<T>: @unchecked Sendable {
    private final class Box: Runnable, @unchecked Sendable {
        let body: () throws -> T
        var result: Result<T, any Error>?
        init(_ body: @escaping () throws -> T) { self.body = body }
        func run() { result = Result { try body() } }
    }

    private var thread = pthread_t()
    private let box: Box

    init(_ body: @escaping () throws -> T) {
        box = Box(body)
        let context = Unmanaged.passRetained(box as any Runnable as AnyObject).toOpaque()
        precondition(pthread_create(&thread, nil, runWorker, context) == 0)
    }

    func join() throws -> T {
        pthread_join(thread, nil)
        return try box.result!.get()
    }
}

protocol Runnable: AnyObject { func run() }

private func runWorker(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    (Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue() as! any Runnable).run()
    return nil
}

/// After `seconds`, runs `action` (e.g. shuts a socket) unless cancelled: a hung test ends.
final class Watchdog: @unchecked Sendable {
    private var cancelled = false
    private var mutex = pthread_mutex_t()
    private var fired = false
    private var worker: Worker<Void>?

    init(seconds: Double, _ action: @escaping @Sendable () -> Void) {
        pthread_mutex_init(&mutex, nil)
        worker = Worker { [self] in
            let end = now() + seconds
            while now() < end {
                if isCancelled { return }
                usleep(10_000)
            }
            pthread_mutex_lock(&mutex); fired = true; pthread_mutex_unlock(&mutex)
            action()
        }
    }

    private var isCancelled: Bool {
        pthread_mutex_lock(&mutex); defer { pthread_mutex_unlock(&mutex) }
        return cancelled
    }

    /// Stops the watchdog; true if it had already fired (the test hung).
    func cancel() -> Bool {
        pthread_mutex_lock(&mutex); cancelled = true; pthread_mutex_unlock(&mutex)
        _ = try? worker?.join()
        return fired
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let MiB = 1 << 20

/// A seeded stream: `chunks` pieces of 1 MiB from one seeded block, each stamped with its index
/// (so a lost, repeated or reordered piece changes the CRC32C).
struct Pattern {
    let seed: UInt64
    let chunks: Int
    var bytes: Int { chunks * MiB }

    func block() -> [UInt8] {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        var words = [UInt64](repeating: 0, count: MiB / 8)
        for i in words.indices {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            words[i] = state ^ (state >> 29)
        }
        return words.withUnsafeBytes { Array($0) }
    }

    /// Sends the stream, then shuts the write side; the CRC32C of what was sent.
    func send(on channel: any ByteChannel) throws -> UInt32 {
        var block = block()
        var crc: UInt32 = 0
        for i in 0..<chunks {
            block.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(i) ^ seed, as: UInt64.self) }
            crc = block.withUnsafeBytes { mp_crc32c(crc, $0.baseAddress, $0.count) }
            try block.withUnsafeBytes { b throws in try channel.send(b) }
        }
        try channel.shutdownWrite()
        return crc
    }
}

/// Receives to the end of the stream in odd-sized pieces; (bytes, CRC32C).
func drain(_ channel: any ByteChannel, all: Bool, piece: Int = 3 * MiB + 17) throws -> (Int, UInt32) {
    var buffer = [UInt8](repeating: 0, count: piece)
    var total = 0
    var crc: UInt32 = 0
    while true {
        let n = try buffer.withUnsafeMutableBytes { b throws in
            all ? try channel.receiveAll(into: b) : try channel.receive(into: b)
        }
        if n == 0 { return (total, crc) }
        crc = buffer.withUnsafeBytes { mp_crc32c(crc, $0.baseAddress, n) }
        total += n
    }
}

/// Both ends send a 256 MiB stream at once; each end receives the other's byte-exact.
func fullDuplex(_ a: any ByteChannel, _ b: any ByteChannel, chunks: Int = 256, all: Bool) throws {
    let up = Pattern(seed: 1, chunks: chunks), down = Pattern(seed: 2, chunks: chunks)
    let upSend = Worker { () throws in try up.send(on: a) }
    let downSend = Worker { () throws in try down.send(on: b) }
    let upReceive = Worker { () throws in try drain(b, all: all) }
    let (downBytes, downCRC) = try drain(a, all: all)
    let (upBytes, upCRC) = try upReceive.join()
    let upSent = try upSend.join(), downSent = try downSend.join()
    #expect(upBytes == up.bytes)
    #expect(downBytes == down.bytes)
    #expect(upCRC == upSent)
    #expect(downCRC == downSent)
}

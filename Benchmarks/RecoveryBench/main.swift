// The received-bitmap exchange of a postcopy recovery for a 16 GiB guest (4 Mi pages of
// 4 KiB), one core, no socket: the destination turns its received bitmap into ranges and
// encodes the frame, the source decodes it and rebuilds the set of pages still to send.
// `swift run -c release migpilot-recovery-bench`.
import Glibc
import MigrationEngine
import Traces

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func ms(_ seconds: Double) -> String {
    let hundredths = Int((seconds * 1e5).rounded())
    return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) ms"
}

let pageCount: UInt64 = 4 << 20
// What a destination holds half-way through postcopy: the first half pushed in order, and
// `scattered` pages of the second half that its guest faulted in on demand.
for scattered in [0, 10_000, 100_000] {
    var received = PageBitmap(pages: pageCount)
    received.insert(PageRange(start: 0, count: pageCount / 2))
    var x: UInt64 = 0x9E37_79B9_7F4A_7C15
    for _ in 0..<scattered {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17
        received.insert(pageCount / 2 + x % (pageCount / 2))
    }
    var times: [Double] = []
    var frameBytes = 0, missing: UInt64 = 0
    for _ in 0..<20 {
        let t0 = now()
        var copy = received
        let ranges = copy.ranges(clearing: false)
        var encoder = FrameEncoder(pageSize: 4096)
        try encoder.append(.receivedBitmap(ranges))
        var decoder = FrameDecoder(pageSize: 4096)
        decoder.feed(encoder.bytes)
        guard case let .receivedBitmap(arrived)? = try decoder.next() else { fatalError("no bitmap decoded") }
        let pending = EmbeddedMigration.missing(from: arrived, pageCount: pageCount)
        times.append(now() - t0)
        frameBytes = encoder.bytes.count
        missing = pending.count
    }
    times.sort()
    // The frame crosses the link too: at the loopback rate measured here (3.6 GB/s, iperf3).
    let wire = Double(frameBytes) / 3.6e9
    print("16 GiB guest, \(received.count) pages received (\(scattered) scattered): bitmap frame \(frameBytes) bytes, \(missing) pages still to send; "
          + "median \(ms(times[times.count / 2])), max \(ms(times.last!)) over 20 (+ \(ms(wire)) on a 3.6 GB/s link)")
}

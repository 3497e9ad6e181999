// Encode + decode throughput of 4 KiB-page runs through FrameEncoder and FrameDecoder, one
// core, no socket: what the stream itself costs. `swift run -c release migpilot-stream-bench`.
import Glibc
import MigrationEngine

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func fixed2(_ v: Double) -> String {
    let hundredths = Int((v * 100).rounded())
    let frac = hundredths % 100
    return "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
}

func pad(_ s: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - s.count)) + s }

let pageSize = 4096
let pages = 16384  // a 64 MiB guest
var memory = [UInt8](repeating: 0, count: pages * pageSize)
var x: UInt64 = 0x9E37_79B9_7F4A_7C15
for i in stride(from: 0, to: memory.count, by: 8) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17
    withUnsafeBytes(of: x) { for k in 0..<8 { memory[i + k] = $0[k] } }
}

var guest = [UInt8](repeating: 1, count: pages * pageSize)  // the destination's copy

// Peer, same run: one memcpy of the whole region, the floor under any copy of page data.
var best = Double.infinity
for _ in 0..<8 {
    let t0 = now()
    guest.withUnsafeMutableBytes { g in memory.withUnsafeBytes { g.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
    best = min(best, now() - t0)
}
print("peer: memcpy of the 64 MiB region \(fixed2(Double(memory.count) / 1e9 / best)) GB/s (best of 8)")
print("run pages  encode GB/s  decode GB/s  encode+decode GB/s  in-place decode GB/s  encode+in-place GB/s")
print("(page bytes per second, one core; in place: straight from the checked frame into a guest region)")
for run in [1, 16, 64, 256] {
    var encoder = FrameEncoder(pageSize: UInt32(pageSize), reservingCapacity: 8 << 20)
    var decoder = FrameDecoder(pageSize: UInt32(pageSize))
    var inPlaceDecoder = FrameDecoder(pageSize: UInt32(pageSize))
    var encodeTime = 0.0, decodeTime = 0.0, inPlaceTime = 0.0, bytes = 0, check: UInt64 = 0
    let rounds = 8
    for _ in 0..<rounds {
        var page = 0
        while page < pages {
            // Batches of 8 MiB, as a source would hand to its socket.
            let t0 = now()
            encoder.removeAll()
            while page < pages, encoder.bytes.count < 8 << 20 {
                try memory.withUnsafeBytes { m in
                    try encoder.appendPages(start: UInt64(page), count: UInt32(run),
                                            from: UnsafeRawBufferPointer(rebasing: m[page * pageSize..<(page + run) * pageSize]))
                }
                page += run
                bytes += run * pageSize
            }
            let t1 = now()
            decoder.feed(encoder.bytes)
            while let message = try decoder.next() {
                if case let .pages(start, count, _, data) = message { check &+= start &+ UInt64(count) &+ UInt64(data[data.count - 1]) }
            }
            let t2 = now()
            inPlaceDecoder.feed(encoder.bytes)
            try guest.withUnsafeMutableBytes { g in
                while let _ = try inPlaceDecoder.next(pagesInPlace: { (start, _, _, data) throws(StreamError) in
                    (g.baseAddress! + Int(start) * pageSize).copyMemory(from: data.baseAddress!, byteCount: data.count)
                }) {}
            }
            let t3 = now()
            encodeTime += t1 - t0
            decodeTime += t2 - t1
            inPlaceTime += t3 - t2
        }
    }
    let gb = Double(bytes) / 1e9
    let rates = [gb / encodeTime, gb / decodeTime, gb / (encodeTime + decodeTime), gb / inPlaceTime, gb / (encodeTime + inPlaceTime)].map { fixed2($0) }
    precondition(check != 0 && guest == memory)
    print(pad(String(run), 9), pad(rates[0], 12), pad(rates[1], 12), pad(rates[2], 19), pad(rates[3], 21), pad(rates[4], 21))
}

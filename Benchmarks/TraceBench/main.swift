// migpilot-trace-bench: throughput of the trace format, measured in a release build.
//   migpilot-trace-bench decode FILE…   open (all CRCs checked) and decode every interval
//   migpilot-trace-bench memcpy MIB      the machine's copy bandwidth: the floor under any scan
import Glibc
import Migration
import Traces

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func median(_ xs: [Double]) -> Double { percentile(xs.sorted(), 50) }

func decode(_ files: [String]) throws {
    print(["trace".padding(28), "MiB".left(7), "intervals".left(10), "page-events".left(13), "open ms".left(9),
           "decode ms".left(10), "M events/s".left(11)].joined())
    for file in files {
        var opens: [Double] = [], decodes: [Double] = []
        var events: UInt64 = 0
        var size = 0, intervals = 0
        for _ in 0..<5 {
            let t0 = now()
            let trace = try TraceReader(path: file)
            let t1 = now()
            var n: UInt64 = 0
            try trace.forEachInterval { view in
                for r in view.written { n &+= r.count }
            }
            let t2 = now()
            opens.append(t1 - t0)
            decodes.append(t2 - t1)
            events = n
            size = trace.fileSize
            intervals = trace.intervalCount
        }
        let name = String(file.split(separator: "/").last ?? "")
        let rate = Double(events) / median(decodes) / 1e6
        let cells = [formatFixed(Double(size) / 1048576, decimals: 1).left(7), "\(intervals)".left(10), "\(events)".left(13),
                     formatFixed(median(opens) * 1e3, decimals: 2).left(9), formatFixed(median(decodes) * 1e3, decimals: 2).left(10),
                     formatFixed(rate, decimals: 0).left(11)]
        print(name.padding(28) + cells.joined())
    }
}

func memcpyBandwidth(mebibytes: Int) {
    let n = mebibytes << 20
    let a = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
    let b = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 4096)
    memset(a, 1, n)
    memset(b, 2, n)
    var times: [Double] = []
    for _ in 0..<5 {
        let t0 = now()
        memcpy(b, a, n)
        times.append(now() - t0)
    }
    print("memcpy \(mebibytes) MiB: \(formatFixed(median(times) * 1e3, decimals: 1)) ms median, \(formatFixed(Double(n) / median(times) / 1e9, decimals: 2)) GB/s")
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    /// Right-aligned in `width` columns.
    func left(_ width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}

let args = CommandLine.arguments.dropFirst()
switch args.first {
case "decode":
    do { try decode(Array(args.dropFirst())) } catch { print("error: \(error)"); exit(65) }
case "memcpy":
    memcpyBandwidth(mebibytes: Int(args.dropFirst().first ?? "1024") ?? 1024)
default:
    print("usage: migpilot-trace-bench decode FILE… | memcpy MIB")
    exit(64)
}

// What dirty tracking costs the guest (issue 4): the time of one page-write with the async
// write-protect tracker armed and not, a 100 k pages/s workload's CPU time armed and not, and
// one collect() over 1 GiB. Release build: `swift run -c release migpilot-guest-bench`.
import Glibc
import MigrationEngine
import Traces

func nanoseconds(_ clock: clockid_t = CLOCK_MONOTONIC) -> UInt64 {
    var ts = timespec()
    clock_gettime(clock, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
func fixed(_ x: Double, _ decimals: Int = 3) -> String {
    let scale = pow(10.0, Double(decimals))
    return "\((x * scale).rounded() / scale)"
}

let gib = 1 << 30
let memory = try GuestMemory(bytes: gib)
try memory.populate()  // first touch (≈ 6 µs/page here) is not what is measured
let pageCount = memory.pageCount
var rng = SeededRandom(seed: 42)
// 100 k distinct pages, scattered over the GiB.
var chosen = PageBitmap(pages: pageCount)
while chosen.count < 100_000 { _ = chosen.insert(rng.below(pageCount)) }
var pages = chosen.ranges(clearing: false).flatMap { $0.start..<$0.end }
for i in stride(from: pages.count - 1, to: 0, by: -1) { pages.swapAt(i, Int(rng.below(UInt64(i + 1)))) }

var sequence: UInt64 = 0
/// Nanoseconds per page-write of one pass over `pages` (a stamp at the start of each page).
@MainActor func writePass() -> Double {
    sequence += 1
    let t0 = nanoseconds()
    for page in pages { PageStamp(page: page, sequence: sequence).write(to: memory.pointer(page: page)) }
    return Double(nanoseconds() - t0) / Double(pages.count)
}

let rounds = 9
let tracker = try AsyncWriteProtectTracker(memory: memory)
var unarmed: [Double] = [], armed: [Double] = [], collectWritten: [Double] = [], collectIdle: [Double] = []
for _ in 0..<rounds {
    unarmed.append(writePass())
    try tracker.start()
    armed.append(writePass())  // every write is the first since the page was protected
    var t0 = nanoseconds()
    let found = try tracker.collect()
    collectWritten.append(Double(nanoseconds() - t0) / 1e6)
    precondition(found.pageCount == UInt64(pages.count), "collect found \(found.pageCount) pages")
    t0 = nanoseconds()
    let none = try tracker.collect()
    collectIdle.append(Double(nanoseconds() - t0) / 1e6)
    precondition(none.isEmpty)
    tracker.stop()
}
// The fallback (synchronous faults through a handler thread), fewer rounds: it is slow.
let fallback = try SyncWriteProtectTracker(memory: memory)
var fallbackArmed: [Double] = []
for _ in 0..<3 {
    try fallback.start()
    fallbackArmed.append(writePass())
    fallback.stop()
}
let extra = median(armed) - median(unarmed)
print("page-write, 100k scattered pages of a populated 1 GiB, median of \(rounds) passes:")
print("  unarmed \(fixed(median(unarmed) / 1e3)) µs, armed (first write after protect) \(fixed(median(armed) / 1e3)) µs, "
    + "tracking adds \(fixed(extra / 1e3)) µs per first write")
print("  fallback (synchronous write-protect faults) armed: \(fixed(median(fallbackArmed) / 1e3)) µs per first write")
print("collect() on 1 GiB: \(fixed(median(collectWritten))) ms with 100k pages written, "
    + "\(fixed(median(collectIdle))) ms with none")

// A guest writing 100 k pages/s (uniform over the GiB) for 3 s: the process's CPU time per
// second with tracking off, then on with a collect() every 100 ms.
var pauses: [Double] = []
@MainActor func workloadCPU(tracked: Bool) throws -> (cpuPerSecond: Double, rate: Double) {
    let guest = try Guest(memory: memory, workloads: [try GuestWorkload(parsing: "uniform:rate=100000,seed=7")])
    if tracked { try tracker.start() }
    try guest.start()
    let seconds = 3.0
    let c0 = nanoseconds(CLOCK_PROCESS_CPUTIME_ID), t0 = nanoseconds(), w0 = guest.pagesWritten
    while nanoseconds() - t0 < UInt64(seconds * 1e9) {
        var ts = timespec(tv_sec: 0, tv_nsec: 100_000_000)
        nanosleep(&ts, nil)
        if tracked { _ = try tracker.collect() }
    }
    let cpu = Double(nanoseconds(CLOCK_PROCESS_CPUTIME_ID) - c0) / 1e9, wall = Double(nanoseconds() - t0) / 1e9
    let rate = Double(guest.pagesWritten - w0) / wall
    for _ in 0..<20 {  // how long a stop-and-copy waits for the writers to park
        let p0 = nanoseconds()
        guest.pause()
        pauses.append(Double(nanoseconds() - p0) / 1e3)
        guest.resume()
        var ts = timespec(tv_sec: 0, tv_nsec: 10_000_000)
        nanosleep(&ts, nil)
    }
    guest.stop()
    if tracked { tracker.stop() }
    return (cpu / wall, rate)
}
let off = try workloadCPU(tracked: false), on = try workloadCPU(tracked: true)
print("uniform:rate=100000 for 3 s: untracked \(fixed(off.rate, 0)) pages/s at \(fixed(off.cpuPerSecond * 100, 2))% of a core; "
    + "tracked (collect every 100 ms) \(fixed(on.rate, 0)) pages/s at \(fixed(on.cpuPerSecond * 100, 2))% of a core")
print("pause() of that workload (until its writer is parked), 40 pauses: median \(fixed(median(pauses), 1)) µs, "
    + "max \(fixed(pauses.max()!, 1)) µs")

import Glibc

/// Why a recording could not be made, or could not be finished.
public enum RecorderError: Error, CustomStringConvertible {
    case noSuchProcess(Int32)
    /// One scan takes longer than the interval allows; `suggestion` is an interval it can keep.
    case intervalTooShort(intervalMilliseconds: Double, scanMilliseconds: Double, suggestionMilliseconds: Int)
    case system(SystemCallError)
    case trace(TraceError)

    public var description: String {
        switch self {
        case .noSuchProcess(let pid):
            return "no process with pid \(pid) (or it cannot be read: run as root or as its owner)"
        case let .intervalTooShort(interval, scan, suggestion):
            return "cannot keep a \(Int(interval))ms interval: one scan of the process takes \(Int(scan.rounded()))ms and must stay under half the interval; use --interval \(suggestion)ms or more"
        case .system(let e): return e.description
        case .trace(let e): return e.description
        }
    }
}

/// What the recorder did, and what it cost.
public struct RecordingReport: Sendable {
    public var path: String
    public var intervals: Int
    public var requestedIntervals: Int
    /// Set when the process exited before the duration was over.
    public var endedEarly: Bool
    public var scanMilliseconds: [Double]
    /// Scans that ended after the next interval should have started.
    public var overruns: Int
    public var pages: UInt64
    public var usesPagemapScan: Bool
}

/// Progress of a recording, handed to the caller after every interval.
public struct RecordingProgress: Sendable {
    public var interval: Int
    public var intervals: Int
    public var changedPages: Int
    public var scanMilliseconds: Double
    public var presentBytes: Int
}

/// Records a dirty-page trace of a live process by sampling its writable memory every interval
/// and keeping the pages whose content changed.
///
/// Limits (also in docs/trace-format.md): a page rewritten with identical bytes is not seen; a
/// page written several times in an interval counts once; pages are compared only while
/// present, so memory handed back to the kernel and not touched again does not count as written.
public final class TraceRecorder {
    public let pid: Int32
    public let intervalNanoseconds: UInt64
    public let durationNanoseconds: UInt64
    public var provenance: [ProvenanceEntry]
    /// A scan may take at most this share of an interval.
    public static let maximumScanShare = 0.5

    public init(pid: Int32, intervalNanoseconds: UInt64, durationNanoseconds: UInt64, provenance: [ProvenanceEntry] = []) {
        self.pid = pid
        self.intervalNanoseconds = intervalNanoseconds
        self.durationNanoseconds = durationNanoseconds
        self.provenance = provenance
    }

    public func record(to path: String, progress: (RecordingProgress) -> Void = { _ in }) throws(RecorderError) -> RecordingReport {
        guard Sys.processExists(pid) else { throw .noSuchProcess(pid) }
        let scanner: ProcessScanner
        do { scanner = try ProcessScanner(pid: pid) } catch { throw error.errno == ENOENT || error.errno == ESRCH ? .noSuchProcess(pid) : .system(error) }

        // The first scan sets the baseline (what holds data at t=0) and shows what a scan costs.
        let t0 = Sys.monotonicNanoseconds()
        let wallStart = Sys.realtimeNanoseconds()
        let baseline: ProcessScanner.Result
        do { baseline = try scanner.scan() } catch { throw error.errno == ESRCH ? .noSuchProcess(pid) : .system(error) }
        let baselineNanoseconds = Sys.monotonicNanoseconds() - t0
        if Double(baselineNanoseconds) > Double(intervalNanoseconds) * Self.maximumScanShare {
            let ms = Double(baselineNanoseconds) / 1e6
            throw .intervalTooShort(intervalMilliseconds: Double(intervalNanoseconds) / 1e6, scanMilliseconds: ms,
                                    suggestionMilliseconds: Int((ms / Self.maximumScanShare / 50).rounded(.up)) * 50)
        }
        var initial = baseline.changedPages
        var header = TraceHeader(pageSize: UInt32(scanner.pageSize), pageCount: scanner.index.pageCount,
                                 intervalNanoseconds: intervalNanoseconds, startTimeNanoseconds: wallStart)
        header.provenance = provenance + [
            ProvenanceEntry("recorder", "migpilot trace record"),
            ProvenanceEntry("recorder_method", scanner.usesPagemapScan
                ? "process_vm_readv + CRC32C page fingerprints; present pages found with PAGEMAP_SCAN"
                : "process_vm_readv + CRC32C page fingerprints; every writable page read (no PAGEMAP_SCAN)"),
            ProvenanceEntry("pid", "\(pid)"),
            ProvenanceEntry("target_command", Self.commandLine(pid)),
            ProvenanceEntry("target_rss_bytes_at_start", "\(Self.residentBytes(pid) ?? 0)"),
            ProvenanceEntry("target_writable_bytes_at_start", "\(baseline.writableBytes)"),
            ProvenanceEntry("kernel", Self.kernel()),
            ProvenanceEntry("baseline_scan_ms", formatMilliseconds(Double(baselineNanoseconds) / 1e6)),
        ]
        let writer: TraceWriter
        do { writer = try TraceWriter(path: path, header: header, initialData: .coalescing(pages: &initial)) } catch { throw .trace(error) }

        let requested = Int(durationNanoseconds / intervalNanoseconds)
        var scans: [Double] = []
        var overruns = 0
        var peakRSS = Self.residentBytes(pid) ?? 0
        let start = Sys.monotonicNanoseconds()
        var endedEarly = false
        for k in 0..<requested {
            let deadline = start + UInt64(k + 1) * intervalNanoseconds
            let now = Sys.monotonicNanoseconds()
            if now < deadline { Sys.sleep(nanoseconds: deadline - now) } else if now > deadline + intervalNanoseconds / 10 { overruns += 1 }
            let scanStart = Sys.monotonicNanoseconds()
            var result: ProcessScanner.Result
            do {
                result = try scanner.scan()
            } catch where error.errno == ESRCH || error.errno == ENOENT {
                endedEarly = true
                break
            } catch {
                throw .system(error)
            }
            let ms = Double(Sys.monotonicNanoseconds() - scanStart) / 1e6
            scans.append(ms)
            let changed = result.changedPages.count
            do { try writer.append(written: .coalescing(pages: &result.changedPages)) } catch { throw .trace(error) }
            if k % 10 == 0 { peakRSS = max(peakRSS, Self.residentBytes(pid) ?? 0) }
            progress(RecordingProgress(interval: k + 1, intervals: requested, changedPages: changed, scanMilliseconds: ms,
                                       presentBytes: result.presentBytes))
        }
        let sorted = scans.sorted()
        writer.addNote("scan_ms_median", formatMilliseconds(percentile(sorted, 50)))
        writer.addNote("scan_ms_p99", formatMilliseconds(percentile(sorted, 99)))
        writer.addNote("scan_ms_max", formatMilliseconds(sorted.last ?? 0))
        writer.addNote("scan_overruns", "\(overruns)")
        writer.addNote("target_peak_rss_bytes", "\(peakRSS)")
        if endedEarly { writer.addNote("ended_early", "the process exited after \(scans.count) of \(requested) intervals") }
        do { try writer.finish(pageCount: scanner.index.pageCount) } catch { throw .trace(error) }
        return RecordingReport(path: path, intervals: scans.count, requestedIntervals: requested, endedEarly: endedEarly,
                               scanMilliseconds: scans, overruns: overruns, pages: scanner.index.pageCount,
                               usesPagemapScan: scanner.usesPagemapScan)
    }

    static func commandLine(_ pid: Int32) -> String {
        guard let bytes = try? Sys.readWholeFile("/proc/\(pid)/cmdline") else { return "" }
        return bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.joined(separator: " ")
    }

    /// VmRSS of a process in bytes.
    public static func residentBytes(_ pid: Int32) -> UInt64? {
        guard let bytes = try? Sys.readWholeFile("/proc/\(pid)/status") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").dropFirst().first.flatMap { UInt64($0) }
            return kb.map { $0 * 1024 }
        }
        return nil
    }

    static func kernel() -> String {
        var u = utsname()
        uname(&u)
        func field<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return "\(field(u.sysname)) \(field(u.release)) \(field(u.machine))"
    }
}

func formatMilliseconds(_ ms: Double) -> String {
    let tenths = (ms * 10).rounded()
    return "\(Int(tenths) / 10).\(Int(tenths) % 10)"
}

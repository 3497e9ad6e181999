import ArgumentParser
import Foundation
import Migration
import Traces

/// `migpilot trace info FILE`: the headline figures of a trace.
struct TraceInfoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info",
        abstract: "Show a trace's size, dirty rate and working set.",
        discussion: """
            Checks every block's CRC32C first; a damaged file is reported with its
            byte offset (exit 65), never summarised in part.

            Examples:
              migpilot trace info datasets/redis-benchmark.trace
              migpilot trace info --json datasets/*.trace
              migpilot trace info --csv app.trace > app-intervals.csv
            """
    )

    @Argument(help: "Trace files (.trace).") var files: [String]
    @Flag(help: "Print one JSON object per file.") var json = false
    @Flag(help: "Print a per-interval table as CSV.") var csv = false

    func validate() throws {
        if json && csv { throw ValidationError("--json and --csv exclude each other: choose one") }
    }

    func run() throws {
        for file in files {
            let trace: TraceReader
            do { trace = try TraceReader(path: file) } catch { throw fail(error.description, ExitCodes.forTrace(error)) }
            if csv {
                printCSV(trace)
            } else if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(TraceStatistics(trace)), as: UTF8.self))
            } else {
                print(human(TraceStatistics(trace), trace), terminator: files.count > 1 ? "\n" : "")
            }
        }
    }

    private func printCSV(_ trace: TraceReader) {
        var out = "interval,start_s,written_pages,dirty_pages_per_s" + (trace.readPages != nil ? ",read_pages" : "") + "\n"
        let seconds = trace.header.intervalSeconds
        for (i, n) in trace.writtenPages.enumerated() {
            out += "\(i),\(Double(i) * seconds),\(n),\(Double(n) / seconds)"
            if let reads = trace.readPages { out += ",\(reads[i])" }
            out += "\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }

    private func human(_ s: TraceStatistics, _ trace: TraceReader) -> String {
        func pages(_ n: UInt64) -> String { "\(n) (\(ByteCount(bytes: n * UInt64(s.pageSize))))" }
        func rate(_ r: Double) -> String { "\(Int(r.rounded()))" }
        var rows: [[String]] = [
            ["file", "\(s.path) (\(ByteCount(bytes: UInt64(s.fileBytes))))"],
            ["page size", "\(s.pageSize) B"],
            ["pages", pages(s.pages)],
            ["holding data at start", pages(s.initialDataPages)],
            ["interval", "\(Int((s.intervalSeconds * 1000).rounded()))ms × \(s.intervals) = \(formatFixed(s.durationSeconds, decimals: 1)) s"],
            ["dirty pages/s", "min \(rate(s.dirtyPagesPerSecond.min))  median \(rate(s.dirtyPagesPerSecond.median))  p99 \(rate(s.dirtyPagesPerSecond.p99))  max \(rate(s.dirtyPagesPerSecond.max))"],
            ["unique pages written", pages(s.uniquePages)],
        ]
        for w in trace.summary.windows {
            let note = w.completeWindows == 0 ? " (trace shorter than the window)" : " (mean of \(w.completeWindows), max \(w.maxPages))"
            rows.append(["writable working set \(w.name)", pages(UInt64(w.meanPages.rounded())) + note])
        }
        for e in trace.provenance { rows.append([e.key, e.value]) }
        return Terminal.table(rows)
    }
}


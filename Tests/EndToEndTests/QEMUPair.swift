import Foundation
import Testing

/// Two real QEMUs (TCG, Debian's qemu-system-x86) for migration tests: a source booting
/// Tests/Fixtures/qemu-guest with `fill=` and `rate=`, and a destination with the same
/// command line waiting with `-incoming defer`, each with a QMP socket and COM1 in a file. Both
/// are killed by `stop()` (call it in a `defer`) and, as a last resort, when the pair goes.
final class QEMUPair: @unchecked Sendable {
    let directory: URL
    let source: Process
    let destination: Process
    var sourceQMP: String { directory.appendingPathComponent("src.qmp").path }
    var destinationQMP: String { directory.appendingPathComponent("dst.qmp").path }
    var sourceSerial: String { directory.appendingPathComponent("src.serial").path }
    var destinationSerial: String { directory.appendingPathComponent("dst.serial").path }
    /// A unix socket path in the pair's directory (migration streams, recovery channels).
    func socket(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The guest, assembled once per test run (binutils).
    static let guestDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-qemu-guest-\(getpid())")
    static let guest: Result<String, any Error> = Result {
        let out = guestDirectory
        // Removed when the test process exits (a closure that captures nothing can be a C hook).
        atexit { try? FileManager.default.removeItem(at: QEMUPair.guestDirectory) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [TraceCommandTests.packageRoot.appendingPathComponent("Tests/Fixtures/qemu-guest/build.sh").path, out.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let path = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        p.waitUntilExit()
        guard p.terminationStatus == 0, FileManager.default.fileExists(atPath: path) else {
            throw QEMUTestError("Tests/Fixtures/qemu-guest/build.sh failed (\(p.terminationStatus)); binutils installed?")
        }
        return path
    }

    /// Boots the pair (memory in MiB) and waits until the source's guest says `filled`.
    init(memoryMiB: Int = 128, fill: String = "48M", rate: Int) throws {
        let guest = try Self.guest.get()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-qemu-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        func qemu(_ extra: [String]) -> Process {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "\(memoryMiB)", "-display", "none", "-nodefaults",
                           "-kernel", guest, "-append", "fill=\(fill) rate=\(rate)"] + extra
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            return p
        }
        source = qemu(["-qmp", "unix:\(directory.path)/src.qmp,server=on,wait=off", "-serial", "file:\(directory.path)/src.serial"])
        destination = qemu(["-qmp", "unix:\(directory.path)/dst.qmp,server=on,wait=off", "-serial", "file:\(directory.path)/dst.serial",
                            "-incoming", "defer"])
        try source.run()
        do { try destination.run() } catch { stop(); throw error }
        guard waitForSerial(sourceSerial, 30, { $0.contains("filled") }) else {
            stop()
            throw QEMUTestError("the source's guest did not say 'filled' within 30 s: \(serial(sourceSerial))")
        }
    }

    deinit { stop() }

    /// Kills both QEMUs (SIGKILL: nothing of theirs needs to be kept) and removes the directory.
    func stop() {
        for p in [source, destination] where p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    func serial(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }

    /// Waits up to `seconds` for `match` to hold on the serial output at `path`.
    func waitForSerial(_ path: String, _ seconds: Double, _ match: (String) -> Bool) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if match(serial(path)) { return true }
            // A QEMU that has exited writes no more.
            if !(path == sourceSerial ? source : destination).isRunning { return match(serial(path)) }
            usleep(20_000)
        }
        return false
    }

    /// The guest's `dirtied N` counts on the serial output at `path`.
    func dirtied(_ path: String) -> [Int] {
        serial(path).split(separator: "\n").compactMap { line in
            line.hasPrefix("dirtied ") ? Int(line.dropFirst("dirtied ".count).trimmingCharacters(in: .whitespaces)) : nil
        }
    }

    /// The guest runs on at the destination: its COM1 goes on counting past what the source
    /// had counted when it stopped. Under TCG after postcopy, on a busy two-core host, that
    /// took more than 8 s once (2026-12-07, in a run of the whole suite): hence 20.
    func destinationGuestRunsOn(within seconds: Double = 20) -> Bool {
        let before = dirtied(sourceSerial).max() ?? 0
        return waitForSerial(destinationSerial, seconds) { _ in (dirtied(destinationSerial).max() ?? 0) > before }
    }
}

struct QEMUTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

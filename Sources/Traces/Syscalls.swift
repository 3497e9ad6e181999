// Every system call of the Traces module, each wrapped once: EINTR is retried, a failure
// becomes a `SystemCallError` that names the call.
import CUring
import Glibc

/// A failed system call: which call on what, and the errno it returned.
public struct SystemCallError: Error, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32
    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }
    public var description: String { "\(call): \(String(cString: strerror(errno))) (errno \(errno))" }
}

/// Runs `body` again while it fails with EINTR; a negative result becomes a `SystemCallError`.
/// The one helper behind every system call of the project's Swift modules.
@inlinable
public func systemCall<T: BinaryInteger>(_ call: @autoclosure () -> String, _ body: () -> T) throws(SystemCallError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let error = Glibc.errno
        if error != EINTR { throw SystemCallError(call: call(), errno: error) }
    }
}

enum Sys {
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemCallError) -> Int32 {
        try systemCall("open(\(path))") { Glibc.open(path, flags | O_CLOEXEC, mode) }
    }

    static func close(_ fd: Int32) { _ = Glibc.close(fd) }

    static func fileSize(_ fd: Int32) throws(SystemCallError) -> Int {
        var st = stat()
        _ = try systemCall("fstat") { fstat(fd, &st) }
        return Int(st.st_size)
    }

    /// Writes all of `bytes` at `offset`, however many calls it takes.
    static func pwriteAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int) throws(SystemCallError) {
        var done = 0
        while done < bytes.count {
            let n = try systemCall("pwrite") {
                bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
            }
            done += n
        }
    }

    /// Maps `size` bytes of `fd` read-only (nil for an empty file).
    static func mapReadOnly(_ fd: Int32, size: Int) throws(SystemCallError) -> UnsafeRawBufferPointer? {
        guard size > 0 else { return nil }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw SystemCallError(call: "mmap", errno: Glibc.errno)
        }
        _ = madvise(p, size, MADV_SEQUENTIAL)
        return UnsafeRawBufferPointer(start: p, count: size)
    }

    static func unmap(_ region: UnsafeRawBufferPointer) {
        _ = munmap(UnsafeMutableRawPointer(mutating: region.baseAddress), region.count)
    }

    /// Copies remote ranges of process `pid` into local buffers; returns the bytes copied (a short
    /// count when a remote range vanished meanwhile).
    static func readProcessMemory(pid: pid_t, local: UnsafeBufferPointer<mp_iovec>,
                                  remote: UnsafeBufferPointer<mp_iovec>) throws(SystemCallError) -> Int {
        try systemCall("process_vm_readv(pid \(pid))") {
            mp_process_vm_readv(pid, local.baseAddress, UInt(local.count), remote.baseAddress, UInt(remote.count))
        }
    }

    /// PAGEMAP_SCAN on an open /proc/PID/pagemap; returns the number of regions filled.
    static func pagemapScan(_ fd: Int32, _ arg: inout mp_pm_scan_arg) throws(SystemCallError) -> Int {
        try systemCall("ioctl(PAGEMAP_SCAN)") { Int(ioctl(fd, mp_ioctl_pagemap_scan, &arg)) }
    }

    static func readWholeFile(_ path: String) throws(SystemCallError) -> [UInt8] {
        let fd = try open(path, O_RDONLY)
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = try systemCall("read(\(path))") { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    static func monotonicNanoseconds() -> UInt64 { mp_monotonic_ns() }

    static func realtimeNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    static func sleep(nanoseconds: UInt64) { mp_sleep_ns(nanoseconds) }

    static func processExists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || Glibc.errno == EPERM }

    /// Alive and not a zombie (a zombie still answers kill(pid, 0) but has no memory to read).
    static func processIsRunning(_ pid: pid_t) -> Bool {
        guard processExists(pid), let stat = try? readWholeFile("/proc/\(pid)/stat"),
              let close = stat.lastIndex(of: UInt8(ascii: ")")), close + 2 < stat.count else { return false }
        let state = stat[close + 2]
        return state != UInt8(ascii: "Z") && state != UInt8(ascii: "X")
    }
}

/// A command started by migpilot (the recorder's `-- COMMAND`), reaped by migpilot alone.
public final class ChildProcess {
    public let pid: pid_t
    private var exitStatus: Int32?

    /// Starts `arguments[0]` (looked up in PATH) with the rest as its arguments.
    public init(_ arguments: [String]) throws(SystemCallError) {
        var cArgs: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for a in cArgs { free(a) } }
        var child: Int32 = 0
        let rc = mp_spawn(&cArgs, 1, -1, -1, &child)
        guard rc == 0 else { throw SystemCallError(call: "posix_spawnp(\(arguments[0]))", errno: rc) }
        pid = child
    }

    /// True once the process has exited (and been reaped).
    public var hasExited: Bool {
        if exitStatus != nil { return true }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { exitStatus = status }
        return exitStatus != nil
    }

    /// SIGTERM, then SIGKILL if it is still running after `grace` seconds; waits for the end.
    public func stop(grace: Double = 5) {
        guard !hasExited else { return }
        kill(pid, SIGTERM)
        let deadline = Sys.monotonicNanoseconds() + UInt64(grace * 1e9)
        while !hasExited && Sys.monotonicNanoseconds() < deadline { Sys.sleep(nanoseconds: 20_000_000) }
        if !hasExited {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            _ = waitpid(pid, &status, 0)
            exitStatus = status
        }
    }
}

import Foundation
import Migration
import Synchronization
import Testing
import Transport
@testable import QMP

/// QMPClient against a real QEMU monitor (TCG, no guest, started paused with -S) and against
/// peers on real sockets that misbehave: one that never greets, one that hangs up mid-command.
@Suite(.serialized) struct QMPClientTests {
    /// A QEMU with a QMP socket; killed by `stop()`. (@unchecked: only `process` is shared, to be killed.)
    final class QEMU: @unchecked Sendable {
        let process = Process()
        let socket: String

        init() throws {
            socket = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-qmp-\(UUID().uuidString.prefix(8)).sock").path
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["qemu-system-x86_64", "-machine", "q35,accel=tcg", "-m", "32", "-display", "none", "-nodefaults", "-S",
                                 "-qmp", "unix:\(socket),server=on,wait=off"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
        }

        func stop() {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
            try? FileManager.default.removeItem(atPath: socket)
        }

        func client() throws -> QMPClient { try QMPClient.connect(.unix(path: socket), retrying: 10) }
    }

    @Test func greetsNegotiatesOutOfBandAndRunsCommands() throws {
        let qemu = try QEMU()
        defer { qemu.stop() }
        let client = try qemu.client()
        defer { client.close() }
        #expect(client.greeting["QMP"]?["version"]?["qemu"]?["major"]?.integerValue ?? 0 >= 7)
        #expect(client.oob, "QEMU offers oob: \(client.greeting)")
        #expect(try client.execute("query-status")["status"]?.stringValue == "prelaunch")
        // Out of band (migrate-recover allows it: a destination in postcopy may be stuck in band),
        // its refusal matched to it by id.
        #expect(throws: QMPError(className: "GenericError", desc: "Migrate recover can only be run when postcopy is paused.")) {
            try client.executeOOB("migrate-recover", ["uri": "tcp:127.0.0.1:1"])
        }
        let info = try client.execute("query-migrate")
        #expect(info.objectValue != nil, "\(info)")
    }

    @Test func aRefusedCommandIsThrownWithQEMUsClassAndDesc() throws {
        let qemu = try QEMU()
        defer { qemu.stop() }
        let client = try qemu.client()
        defer { client.close() }
        #expect(throws: QMPError(className: "CommandNotFound", desc: "The command no-such-command has not been found")) {
            try client.execute("no-such-command")
        }
        do {
            try client.execute("migrate-set-parameters", ["downtime-limit": "soon"])
            Issue.record("a string downtime-limit was accepted")
        } catch let e as QMPError {
            #expect(e.className == "GenericError")
            #expect(e.desc.contains("downtime-limit"), "\(e)")
        }
        // The connection is still good after refusals.
        #expect(try client.execute("query-status")["running"]?.boolValue == false)
    }

    @Test func eventsAreQueuedAndWaitedForWithATimeout() throws {
        let qemu = try QEMU()
        defer { qemu.stop() }
        let client = try qemu.client()
        defer { client.close() }
        try client.execute("cont")
        let resume = try client.waitForEvent("RESUME", timeout: 10)
        #expect(resume != nil)
        #expect(resume?.timestamp ?? 0 > 1.7e9, "QEMU's wall-clock timestamp: \(String(describing: resume))")
        try client.execute("stop")
        let stop = try #require(try client.waitForEvent("STOP", timeout: 10))
        #expect(stop.sequence > resume!.sequence)
        let start = Date()
        #expect(try client.waitForEvent("SHUTDOWN", timeout: 0.3) == nil)
        #expect(Date().timeIntervalSince(start) >= 0.3)
    }

    @Test func aMonitorThatGoesAwayFailsWaitingAndLaterCallsAtOnce() throws {
        let qemu = try QEMU()
        defer { qemu.stop() }
        let client = try qemu.client()
        defer { client.close() }
        Thread.detachNewThread {
            usleep(200_000)
            kill(qemu.process.processIdentifier, SIGKILL)
        }
        let start = Date()
        #expect(throws: QMPConnectionError.self) { _ = try client.waitForEvent("SHUTDOWN", timeout: 30) }
        #expect(Date().timeIntervalSince(start) < 10, "the end of the connection is seen, not the timeout")
        do {
            try client.execute("query-status")
            Issue.record("a command on a closed monitor returned")
        } catch let e as QMPConnectionError {
            #expect(e.kind == .closed)
            #expect(e.description.contains("query-status: the QMP monitor at unix:\(qemu.socket) is closed"), "\(e)")
        }
    }

    @Test func aPeerThatNeverGreetsTimesOut() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-silent-\(UUID().uuidString.prefix(8)).sock").path
        let listener = try Transport.listen(.unix(path: path))
        defer { listener.close() }
        let held = Mutex<(any ByteChannel)?>(nil)
        Thread.detachNewThread { held.withLock { $0 = try? listener.accept() } }  // accepts and stays silent
        defer { held.withLock { $0?.close() } }
        let start = Date()
        do {
            _ = try QMPClient.connect(.unix(path: path), timeout: 0.5)
            Issue.record("connected to a peer that never greeted")
        } catch let e as QMPConnectionError {
            #expect(e.kind == .timeout, "\(e)")
            #expect(e.description.contains("the QMP greeting: no answer from the QMP monitor at unix:\(path) within 0.5 s"), "\(e)")
        }
        #expect(Date().timeIntervalSince(start) < 5)
    }

    @Test func aPeerThatIsNotQMPIsRefused() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migpilot-notqmp-\(UUID().uuidString.prefix(8)).sock").path
        let listener = try Transport.listen(.unix(path: path))
        defer { listener.close() }
        Thread.detachNewThread {
            guard let channel = try? listener.accept() else { return }
            let hello = Array(#"{"hello": "I am not QEMU"}"#.utf8)
            hello.withUnsafeBytes { try? channel.send($0) }
            usleep(2_000_000)
            channel.close()
        }
        #expect(throws: QMPConnectionError(.protocolViolation, "the peer at unix:\(path) sent {\"hello\": \"I am not QEMU\"}, not a QMP greeting")) {
            _ = try QMPClient.connect(.unix(path: path), timeout: 5)
        }
    }
}

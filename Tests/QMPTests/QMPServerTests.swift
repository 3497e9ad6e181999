import Foundation
import Migration
import Synchronization
import Testing
import Transport
@testable import QMP

/// A real server on a real unix socket, with a small registry of test commands (the server is
/// generic: no engine here).
@Suite(.serialized) struct QMPServerTests {
    /// A server on a fresh socket with `query-status`, a `migrate`-like command with a string
    /// and a boolean parameter, and `block`/`unblock` to hold the in-band queue.
    final class Fixture: @unchecked Sendable {
        let server: QMPServer
        let uri: MigrationURI
        let gate = DispatchSemaphore(value: 0)

        init() throws {
            let path = NSTemporaryDirectory() + "qmp-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
            uri = .unix(path: path)
            let commands = QMPCommandRegistry()
            server = QMPServer(listener: try Transport.listen(uri), commands: commands, version: .init(package: "migpilot test"))
            commands.register("query-status") { _ in ["status": "running", "singlestep": false, "running": true] }
            commands.register("migrate", parameters: [QMPParameter("uri", .string), QMPParameter("resume", .boolean, optional: true)]) { args in
                ["uri": args["uri"]!, "resume": args["resume"] ?? false]
            }
            commands.register("fail") { _ throws(QMPError) in throw QMPError(.genericError, "it failed, as asked") }
            commands.register("block") { [gate] _ in
                gate.wait()
                return [:]
            }
            commands.register("peek", allowsOutOfBand: true) { _ in ["peeked": true] }
            commands.register("unblock", allowsOutOfBand: true) { [gate] _ in
                gate.signal()
                return ["unblocked": true]
            }
            server.start()
        }

        func client(oob: Bool = false) throws -> QMPTestClient {
            let c = try QMPTestClient(uri)
            try c.negotiate(oob: oob)
            return c
        }

        deinit { server.stop() }
    }

    @Test func greetingAndCapabilitiesNegotiationAreQEMUs() throws {
        let f = try Fixture()
        let c = try QMPTestClient(f.uri)
        #expect(c.greeting == ["QMP": ["version": ["qemu": ["micro": 0, "minor": 2, "major": 7], "package": "migpilot test"],
                                       "capabilities": ["oob"]]])
        let early = try #require(try c.execute("query-status", id: "a"))
        #expect(early.errorClass == "CommandNotFound")
        #expect(early.errorDesc == "Expecting capabilities negotiation with 'qmp_capabilities'")
        #expect(early["id"] == "a")
        let bad = try #require(try c.execute("qmp_capabilities", ["enable": ["turbo"]]))
        #expect(bad.errorDesc == "Parameter 'enable[0]' does not accept value 'turbo'")
        try c.negotiate()
        let again = try #require(try c.execute("qmp_capabilities"))
        #expect(again.errorClass == "CommandNotFound")
        #expect(again.errorDesc == "Capabilities negotiation is already complete, command ignored")
        #expect(try c.execute("query-status", id: ["n": 7]) == ["return": ["status": "running", "singlestep": false, "running": true], "id": ["n": 7]])
    }

    @Test func badRequestsGetQEMUsErrorsWithTheirId() throws {
        let f = try Fixture()
        let c = try f.client()
        let cases: [(JSONValue, String)] = [
            ([1, 2], "QMP input must be a JSON object"),
            (["id": 1], "QMP input lacks member 'execute'"),
            (["execute": 5], "QMP input member 'execute' must be a string"),
            (["execute": "migrate", "arguments": [1]], "QMP input member 'arguments' must be an object"),
            (["execute": "migrate", "extra": 1], "QMP input member 'extra' is unexpected"),
            (["exec-oob": "unblock"], "QMP input member 'exec-oob' is unexpected"),
            (["execute": "nope"], "The command nope has not been found"),
            (["execute": "migrate", "arguments": ["uri": 5]], "Invalid parameter type for 'uri', expected: string"),
            (["execute": "migrate", "arguments": ["uri": "unix:/x", "resume": "yes"]], "Invalid parameter type for 'resume', expected: boolean"),
            (["execute": "migrate", "arguments": ["uri": "unix:/x", "x": 1]], "Parameter 'x' is unexpected"),
            (["execute": "migrate", "arguments": [:]], "Parameter 'uri' is missing"),
            (["execute": "fail"], "it failed, as asked"),
        ]
        for (i, (message, desc)) in cases.enumerated() {
            var m = message
            if case .object(var members) = m, i > 0 { members.append(("id", .integer(Int64(i)))); m = .object(members) }
            try c.send(m)
            let r = try #require(c.reply(), "no reply to \(message)")
            #expect(r.errorDesc == desc, "\(message)")
            #expect(r.errorClass == (desc.hasPrefix("The command") ? "CommandNotFound" : "GenericError"))
            if i > 0 { #expect(r["id"] == .integer(Int64(i))) }
        }
        try c.sendRaw(Array("{\"execute\": tru}\r\n".utf8))
        #expect(c.reply()?.errorDesc?.hasPrefix("JSON parse error, expected 'true'") == true)
        #expect(try c.execute("migrate", ["uri": "unix:/x", "resume": true]) == ["return": ["uri": "unix:/x", "resume": true]])
    }

    @Test func outOfBandIsAnsweredWhileAnInBandCommandRuns() throws {
        let f = try Fixture()
        let c = try f.client(oob: true)
        try c.send(["execute": "block", "id": "in-band"])
        try c.send(["execute": "query-status", "id": "queued"])
        // The in-band queue is held: only out-of-band commands can answer now.
        #expect(c.reply(within: 0.3)?.description == nil)
        try c.send(["exec-oob": "peek", "id": "oob"])
        #expect(c.reply()?["id"] == "oob")
        try c.send(["exec-oob": "unblock", "id": "unblock"])
        let rest = [c.reply(), c.reply(), c.reply()].compactMap { $0?["id"]?.stringValue }
        #expect(rest.count == 3 && rest.filter { $0 != "unblock" } == ["in-band", "queued"], "\(rest)")
        let refused = try #require(try { try c.send(["exec-oob": "query-status", "id": 9]); return c.reply() }())
        #expect(refused.errorDesc == "The command query-status does not support OOB")
    }

    @Test func eventsCarryQEMUsTimestampAndTheNextClientIsServedAfterAHangUp() throws {
        let f = try Fixture()
        do {
            let c = try f.client()
            f.server.emit("MIGRATION", data: ["status": "active"])
            let e = try #require(c.event("MIGRATION"))
            #expect(e["data"] == ["status": "active"])
            let seconds = try #require(e["timestamp"]?["seconds"]?.integerValue)
            #expect(abs(Double(seconds) - Date().timeIntervalSince1970) < 60)
            #expect((0..<1_000_000).contains(try #require(e["timestamp"]?["microseconds"]?.integerValue)))
            f.server.emit("STOP")
            #expect(try #require(c.event("STOP"))["data"] == nil)
            c.close()
        }
        // The first client is gone (its channel closed): the next one gets a greeting.
        let next = try f.client()
        #expect(try next.execute("query-status")?["return"]?["running"] == true)
    }

    @Test func eventsFromAnotherThreadNeverInterleaveWithReplies() throws {
        let f = try Fixture()
        let c = try f.client()
        let padding = JSONValue.string(String(repeating: "p", count: 20_000))
        let emitter = Thread { for i in 0..<500 { f.server.emit("MIGRATION_PASS", data: ["pass": .integer(Int64(i)), "padding": padding]) } }
        emitter.start()
        for i in 0..<300 { try c.send(["execute": "migrate", "arguments": ["uri": padding], "id": .integer(Int64(i))]) }
        // Every reply arrives whole and in order: a message cut by another would end the
        // client's stream (it reads only well-formed messages) and leave replies missing.
        for i in 0..<300 {
            let r = try #require(c.reply(within: 10), "reply \(i) missing")
            #expect(r["id"] == .integer(Int64(i)))
        }
        for i in 0..<500 { #expect(c.event("MIGRATION_PASS")?["data"]?["pass"] == .integer(Int64(i))) }
    }
}

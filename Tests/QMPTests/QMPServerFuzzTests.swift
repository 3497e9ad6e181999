import Foundation
import Migration
import Testing
import Traces
import Transport
@testable import QMP

/// A real server on a real unix socket fed seeded, bounded bad input: every bad message gets a
/// QMP error reply, bytes that are not a message get an error, and the server stays alive —
/// `query-status` still answers afterwards.
@Suite(.serialized) struct QMPServerFuzzTests {
    static let valid: [String] = [
        #"{"execute": "query-status"}"#,
        #"{"execute": "migrate", "arguments": {"uri": "unix:/tmp/x", "resume": false}, "id": "m1"}"#,
        #"{"execute": "fail", "id": [1, {"a": null}]}"#,
        #"{"exec-oob": "unblock", "id": 3}"#,
    ]

    /// Sends `bytes` on a connection of its own and ends it; the replies the server sent
    /// before it hung up.
    private func feed(_ f: QMPServerTests.Fixture, _ bytes: [UInt8], negotiate: Bool) throws -> [JSONValue] {
        let c = try QMPTestClient(f.uri)
        if negotiate { try c.negotiate() }
        try c.sendRaw(bytes)
        try c.channel.shutdownWrite()
        var replies: [JSONValue] = []
        while let r = c.reply(within: 10) { replies.append(r) }
        return replies
    }

    private func isReply(_ r: JSONValue) -> Bool { r["error"]?["desc"]?.stringValue != nil || r["return"] != nil }

    @Test func randomBytesAndMangledMessagesGetErrorsAndTheServerStaysUp() throws {
        let f = try QMPServerTests.Fixture()
        var random = SeededRandom(seed: 20261201)
        for round in 0..<160 {
            let bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 1...300, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            } else {
                // A valid request with a few bytes deleted, replaced or inserted.
                var b = Array(Self.valid.randomElement(using: &random)!.utf8)
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    let at = Int.random(in: 0..<b.count, using: &random)
                    switch Int.random(in: 0..<3, using: &random) {
                    case 0: b.remove(at: at)
                    case 1: b[at] = UInt8.random(in: 0...255, using: &random)
                    default: b.insert(Array(#"{}[]",:\ x"#.utf8).randomElement(using: &random)!, at: at)
                    }
                    if b.isEmpty { b = [0x7B] }
                }
                bytes = b
            }
            let replies = try feed(f, bytes, negotiate: round % 4 < 2)
            // Every byte string that is not pure whitespace is answered; nothing but replies come.
            let blank = bytes.allSatisfy { [0x20, 0x0A, 0x0D, 0x09].contains($0) }
            #expect(blank || !replies.isEmpty, "round \(round): no reply to \(bytes)")
            #expect(replies.allSatisfy(isReply), "round \(round): \(replies)")
        }
        let c = try f.client()
        #expect(try c.execute("query-status")?["return"]?["status"] == "running")
    }

    @Test func hostileShapesGetQEMUsErrorsOnOneConnection() throws {
        let f = try QMPServerTests.Fixture()
        let c = try f.client()
        var random = SeededRandom(seed: 7)
        let huge = #"{"execute": "migrate", "arguments": {"uri": ""# + String(repeating: "A", count: (1 << 20) + 4096) + #""}}"#
        let cases: [(String, (JSONValue) -> Bool)] = [
            (#"{"execute": "no-such-command", "id": 1}"#, { $0.errorClass == "CommandNotFound" && $0.errorDesc == "The command no-such-command has not been found" }),
            (#"{"execute": "migrate", "arguments": {"uri": 42}}"#, { $0.errorDesc == "Invalid parameter type for 'uri', expected: string" }),
            (#"{"execute": "migrate", "arguments": {"uri": ["unix:/x"]}}"#, { $0.errorDesc == "Invalid parameter type for 'uri', expected: string" }),
            (#"{"execute": "migrate", "arguments": "uri"}"#, { $0.errorDesc == "QMP input member 'arguments' must be an object" }),
            (#"["execute", "query-status"]"#, { $0.errorDesc == "QMP input must be a JSON object" }),
            (#""query-status""#, { $0.errorDesc?.hasPrefix("JSON parse error") == true }),
            (#"{"execute": "query-status", "id": 1, "id": 2}"#, { $0["return"] != nil && $0["id"] == 2 }),
            (huge, { $0.errorDesc == "JSON parse error, message longer than 1048576 bytes" }),
            (String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000), { $0.errorDesc?.contains("nesting deeper than 1024 levels") == true }),
            (#"{"execute": "migrate", "arguments": {"uri": "x", "x": "#.appending(String(repeating: "{\"a\":", count: 1500) + "1" + String(repeating: "}", count: 1500)) + "}}",
             { $0.errorDesc?.contains("nesting deeper than 1024 levels") == true }),
            (#"{"execute": "query-status", "arguments": {"\u0000": "\ud800"}}"#, { $0.errorDesc == "Parameter '\u{0}' is unexpected" }),
        ]
        for (text, check) in cases.shuffled(using: &random) {
            try c.sendRaw(Array((text + "\n").utf8))
            let r = try #require(c.reply(within: 10), "no reply to \(text.prefix(80))")
            #expect(check(r), "\(text.prefix(80)): \(r.description.prefix(200))")
        }
        // A long run of bytes outside any message is reported in pieces, never hoarded.
        try c.sendRaw(Array(repeating: UInt8(ascii: "x"), count: (2 << 20) + 10) + Array(" ".utf8))
        var garbage = 0
        while let r = c.reply(within: 2) {
            #expect(r.errorDesc?.hasPrefix("JSON parse error") == true)
            garbage += 1
        }
        #expect(garbage >= 2)
        #expect(try c.execute("query-status")?["return"]?["running"] == true)
    }
}

import Testing
@testable import QMP

@Suite struct QMPStreamTests {
    private func split(_ chunks: [String], limit: Int = 1 << 20) -> [QMPStream.Incoming] {
        var splitter = QMPStream.Splitter(limit: limit)
        var out: [QMPStream.Incoming] = []
        for chunk in chunks {
            splitter.append(ArraySlice(Array(chunk.utf8)))
            while let item = splitter.next() { out.append(item) }
        }
        if let last = splitter.finish() { out.append(last) }
        return out
    }

    @Test func messagesAreCutWhereTheirValueEndsNotWhereLinesEnd() throws {
        let out = split(["{\"execute\": \"query-", "status\"}{\"execute\":\n\"stop\", \"id\": \"}{\"}\r\n  [1]"])
        #expect(out == [.message(["execute": "query-status"]),
                        .message(["execute": "stop", "id": "}{"]),
                        .message([1])])
    }

    @Test func garbageIsReportedAndTheNextMessageStillArrives() {
        let out = split(["hello {\"execute\": \"x\"}", "oops{\"a\": tru}\n{\"b\": 1}"])
        #expect(out.count == 5)
        if case .malformed(let m) = out[0] { #expect(m.contains("outside any message")) } else { Issue.record("\(out[0])") }
        #expect(out[1] == .message(["execute": "x"]))
        if case .malformed = out[2] {} else { Issue.record("\(out[2])") }
        if case .malformed(let m) = out[3] { #expect(m.contains("expected 'true' at byte 6"), "\(m)") } else { Issue.record("\(out[3])") }
        #expect(out[4] == .message(["b": 1]))
    }

    @Test func aMessageOverTheLimitIsDroppedWholeAndTheStreamGoesOn() {
        let huge = "{\"execute\": \"" + String(repeating: "x", count: 5000) + "\"}"
        let out = split([String(huge.prefix(3000)), String(huge.dropFirst(3000)), "{\"ok\": true}"], limit: 1024)
        #expect(out == [.malformed("message longer than 1024 bytes"), .message(["ok": true])])
    }

    @Test func aStreamThatEndsInsideAMessageSaysSo() {
        #expect(split(["{\"execute\": "]) == [.malformed("the stream ended inside a message")])
    }

    @Test func theParserKeepsIntegersAndSaysWhereItFailed() throws {
        #expect(try JSONParser.parse("{\"max-bandwidth\": 9007199254740993, \"x\": -1.5e3}")
                == ["max-bandwidth": .integer(9_007_199_254_740_993), "x": .number(-1500)])
        #expect(try JSONParser.parse("\"\\u00e9\\ud83d\\ude00\\n\"") == .string("é😀\n"))
        #expect(throws: JSONSyntaxError(offset: 7, message: "expected ',' or '}' in an object")) { try JSONParser.parse("{\"a\":1 \"b\":2}") }
        let deep = String(repeating: "[", count: 2000) + String(repeating: "]", count: 2000)
        #expect(throws: JSONSyntaxError.self) { try JSONParser.parse(deep) }
    }

    @Test func whatIsWrittenParsesBackTheSame() throws {
        let value: JSONValue = ["return": ["status": "active", "ram": ["total": .integer(1 << 40), "mbps": 812.5]],
                                "id": "a\"b\\c\u{1}", "list": [.null, true, false]]
        #expect(try JSONParser.parse(value.description) == value)
    }
}

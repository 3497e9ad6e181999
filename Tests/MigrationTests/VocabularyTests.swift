import Foundation
import Migration
import Testing

@Suite struct VocabularyTests {
    @Test func statesUseQEMUNames() {
        #expect(MigrationState.allCases.map(\.rawValue).contains("postcopy-paused"))
        #expect(MigrationState(rawValue: "pre-switchover") == .preSwitchover)
        #expect(MigrationState.postcopyRecover.isPostcopy && !MigrationState.active.isPostcopy)
        #expect(MigrationState.cancelled.isFinished && !MigrationState.device.isFinished)
    }

    @Test(arguments: [
        (Action.continue, #"{"action":"continue"}"#),
        (.startPostcopy, #"{"action":"start-postcopy"}"#),
        (.complete(maxPendingPages: 1200), #"{"action":"complete","max_pending_pages":1200}"#),
        (.setDowntimeLimit(seconds: 0.5), #"{"action":"set-downtime-limit","seconds":0.5}"#),
        (.recover(uri: "tcp:127.0.0.1:4445", afterSeconds: 0.2), #"{"action":"recover","after_s":0.2,"uri":"tcp:127.0.0.1:4445"}"#),
        (.abort(reason: "timeout"), #"{"action":"abort","reason":"timeout"}"#),
    ])
    func actionsAreKebabCaseInJSON(action: Action, json: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: try encoder.encode(action), as: UTF8.self) == json)
        #expect(try JSONDecoder().decode(Action.self, from: Data(json.utf8)) == action)
    }

    @Test func unknownActionsAreRefusedByName() {
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(Action.self, from: Data(#"{"action":"teleport"}"#.utf8)) }
    }

    @Test func observationsRoundTrip() throws {
        let o = Observation(status: MigrationStatus(state: .postcopyPaused, elapsedSeconds: 12.5, pass: 3, remainingPages: 99),
                            events: [.channelBroken(reason: "EOF"), .completionRefused(pendingPages: 7)], recoveryAttempts: 2)
        let data = try JSONEncoder().encode(o)
        #expect(try JSONDecoder().decode(Observation.self, from: data) == o)
        #expect(String(decoding: data, as: UTF8.self).contains(#""status":"postcopy-paused""#))
    }
}

@Suite struct MigrationURITests {
    @Test(arguments: [("tcp:127.0.0.1:4444", MigrationURI.tcp(host: "127.0.0.1", port: 4444)),
                      ("tcp:[::1]:4444", .tcp(host: "::1", port: 4444)),
                      ("unix:/run/m.sock", .unix(path: "/run/m.sock")),
                      ("exec:ssh dst migpilot incoming stdio", .exec(command: "ssh dst migpilot incoming stdio")),
                      ("file:/tmp/save.mig", .file(path: "/tmp/save.mig")), ("stdio", .stdio)])
    func parsesAndPrintsBack(text: String, uri: MigrationURI) throws {
        #expect(try MigrationURI(parsing: text) == uri)
        #expect(uri.description == text)
    }

    @Test(arguments: ["", "4444", "tcp:host", "tcp::4444", "tcp:h:0", "tcp:h:70000", "unix:", "exec: ", "rdma:h:1", "file:"])
    func refusesWhatIsNotAURI(text: String) {
        #expect(throws: QuantityError.self) { try MigrationURI(parsing: text) }
    }
}

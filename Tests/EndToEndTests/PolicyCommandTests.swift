import Foundation
import Testing

/// `migpilot policy check|show` as a user runs them.
@Suite struct PolicyCommandTests {
    let cli = TraceCommandTests()

    static func path(_ relative: String) -> String { TraceCommandTests.packageRoot.appendingPathComponent(relative).path }

    @Test func everyShippedFileChecks() throws {
        let dir = Self.path("policies")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") }.sorted()
        let run = try cli.migpilot(["policy", "check"] + files.map { "\(dir)/\($0)" })
        #expect(run.status == 0, "\(run.stdout)\(run.stderr)")
        #expect(run.stdout.contains("\(dir)/nova.yaml: ok (policy nova)\n"))
        #expect(run.stdout.contains("\(dir)/adaptive-space.yaml: ok (parameter space: downtime_limit × postcopy.budget × postcopy.when_precopy_slower_by, 96 points)\n"))
    }

    @Test func errorsGiveTheirPlaceAndExit65() throws {
        let file = Self.path("Tests/PoliciesTests/Malformed/out-of-range.yaml")
        let run = try cli.migpilot(["policy", "check", file, Self.path("policies/nova.yaml")])
        #expect(run.status == 65)
        #expect(run.stdout.hasPrefix("\(file):4:17: field 'postcopy.after_passes': expected an integer ≥ 1, got 0\n\(file):7:13: "))
        #expect(run.stderr == "error: 1 of 2 files not valid\n")
    }

    @Test func aMissingFileExits66() throws {
        let run = try cli.migpilot(["policy", "check", "/nonexistent/p.yaml"])
        #expect(run.status == 66)
        #expect(run.stdout == "/nonexistent/p.yaml: cannot read: No such file or directory\n")
    }

    @Test(arguments: [[], ["--json"]])
    func showThenCheckFromStandardInput(flags: [String]) throws {
        let show = try cli.migpilot(["policy", "show"] + flags + [Self.path("policies/nova.yaml")])
        #expect(show.status == 0)
        let check = try cli.migpilot(["policy", "check", "-"], stdin: show.stdout)
        #expect(check.status == 0, "\(check.stdout)")
        #expect(check.stdout == "<stdin>: ok (policy nova)\n")
    }

    @Test func checkJSON() throws {
        let run = try cli.migpilot(["policy", "check", "--json", "-"], stdin: "name: x\npostcopy: {after: 1s}\n")
        #expect(run.status == 65)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(json["ok"] as? Bool == false)
        let errors = try #require(json["errors"] as? [[String: Any]])
        #expect(errors.count == 1)
        #expect(errors.first?["field"] as? String == "postcopy.after")
        #expect(errors.first?["line"] as? Int == 2)
    }
}

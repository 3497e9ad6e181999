import Testing
@testable import Policies

/// Each file in Malformed/ and the exact errors it must give, in order: place, field, message.
@Suite struct MalformedPolicyTests {
    static let cases: [(file: String, errors: [String])] = [
        ("unknown-key.yaml", [
            "unknown-key.yaml:4:3: field 'postcopy.after_pases': unknown key; did you mean 'after_passes'? (allowed here: allowed, after_passes, after, when_not_converging, budget, when_precopy_slower_by)",
        ]),
        ("wrong-type.yaml", [
            "wrong-type.yaml:3:15: field 'completion.exact_sync': expected a boolean (true or false), got 'maybe'",
            "wrong-type.yaml:5:12: field 'recovery.retries': expected an integer ≥ 0, got a list",
        ]),
        ("out-of-range.yaml", [
            "out-of-range.yaml:4:17: field 'postcopy.after_passes': expected an integer ≥ 1, got 0",
            "out-of-range.yaml:7:13: field 'recovery.backoff.factor': expected a number ≥ 1, got 0.5",
        ]),
        ("bad-duration-unit.yaml", [
            "bad-duration-unit.yaml:2:17: field 'downtime_limit': expected a duration with a unit such as 100ms, 2s or 1m, got '300'",
            "bad-duration-unit.yaml:5:10: field 'postcopy.after': expected a duration with a unit such as 100ms, 2s or 1m, got '30 secs'",
        ]),
        ("bad-bandwidth-unit.yaml", [
            "bad-bandwidth-unit.yaml:3:14: field 'completion.bandwidth': expected a bandwidth such as 10Gbit/s, 800Mbit/s, 1GB/s or 512MiB/s, got '10Gbps'",
        ]),
        ("missing-name.yaml", [
            "missing-name.yaml:1:1: field 'name': missing; every policy needs a name",
        ]),
        ("invalid-enum.yaml", [
            "invalid-enum.yaml:4:11: field 'timeouts.action': expected one of abort, force-complete, postcopy, pause, got 'force_complete'; did you mean 'force-complete'?",
        ]),
        ("syntax-error.yaml", [
            "syntax-error.yaml:4:2: YAML syntax error: did not find expected key (while parsing a block mapping at line 1, column 1)",
        ]),
        ("duplicate-key.yaml", [
            "duplicate-key.yaml:4:3: field 'postcopy.allowed': duplicate key; it is first given at line 3",
            "duplicate-key.yaml:6:1: field 'downtime_limit': duplicate key; it is first given at line 5",
        ]),
        ("inconsistent.yaml", [
            "inconsistent.yaml:3:3: field 'postcopy.when_not_converging': set while postcopy is not allowed; add 'allowed: true' to 'postcopy' or remove it",
            "inconsistent.yaml:5:3: field 'timeouts.action': 'postcopy' needs 'postcopy.allowed: true' ('force-complete' pauses the guest when postcopy is not allowed)",
            "inconsistent.yaml:5:3: field 'timeouts.action': 'postcopy' never happens without 'completion_per_gib' or 'progress' in 'timeouts'",
        ]),
        ("needs-budget.yaml", [
            "needs-budget.yaml:4:3: field 'postcopy.when_not_converging': needs 'postcopy.budget', the precopy time budget the model's prediction is checked against",
        ]),
        ("bad-channel.yaml", [
            "bad-channel.yaml:5:7: field 'recovery.channels[1]': expected a port 1–65535 in tcp:HOST:PORT, got 'tcp:10.0.0.3:99999'",
            "bad-channel.yaml:6:7: field 'recovery.channels[2]': expected a channel URI (tcp:HOST:PORT, unix:PATH or exec:COMMAND), got 'http://10.0.0.4/'",
            "bad-channel.yaml:7:7: field 'recovery.channels[3]': a file: channel only saves a stream one way; recovery needs a two-way channel (tcp:, unix: or exec:), got 'file:/tmp/saved'",
        ]),
        ("several-errors.yaml", [
            "several-errors.yaml:2:1: field 'downtime_limt': unknown key; did you mean 'downtime_limit'? (allowed here: name, description, downtime_limit, completion, postcopy, timeouts, downtime_steps, recovery, precopy_retries)",
            "several-errors.yaml:4:14: field 'completion.bandwidth': expected measured, predicted or a bandwidth such as 10Gbit/s, got 'fastest'",
            "several-errors.yaml:7:3: field 'postcopy.after_passes': set while postcopy is not allowed; add 'allowed: true' to 'postcopy' or remove it",
            "several-errors.yaml:9:23: field 'timeouts.completion_per_gib': expected a duration with a unit such as 100ms, 2s or 1m, got '-5s'",
            "several-errors.yaml:10:16: field 'timeouts.minimum_gib': expected a number ≥ 0, got 'two'",
            "several-errors.yaml:13:3: field 'recovery.retries': duplicate key; it is first given at line 12",
            "several-errors.yaml:16:5: field 'recovery.backoff.max': expected at least 'initial' (2s), got 1s",
            "several-errors.yaml:17:18: field 'precopy_retries': expected an integer ≥ 0, got -1",
        ]),
    ]

    @Test(arguments: cases)
    func reportsExactErrors(file: String, errors: [String]) throws {
        #expect(try Repository.errors(ofMalformed: file) == errors)
    }

    @Test func everyMalformedFileHasItsExpectations() throws {
        let files = try Repository.files(in: "Tests/PoliciesTests/Malformed")
        #expect(Set(files) == Set(Self.cases.map(\.file)))
    }

    @Test func errorsCarryTheirParts() {
        #expect(throws: PolicyErrors([PolicyError(file: "p.yaml", line: 3, column: 17, field: "postcopy.after_passes",
                                                  message: "expected an integer ≥ 1, got 0")])) {
            try PolicyLoader.parse("name: p\npostcopy:\n  after_passes: 0\n", file: "p.yaml")
        }
    }

    @Test(arguments: [
        ("", "1:1: expected a mapping of policy fields with at least 'name', got an empty document"),
        ("# nothing\n", "1:1: expected a mapping of policy fields with at least 'name', got an empty document"),
        ("- name: x\n", "1:1: expected a mapping of policy fields, got a list"),
        ("name: x\npostcopy: yes\n", "2:11: field 'postcopy': expected a mapping, got yes"),
        ("name: x\nbudget: 10s\n", "2:1: field 'budget': unknown key here; 'budget' belongs at 'postcopy.budget' (allowed here: name, description, downtime_limit, completion, postcopy, timeouts, downtime_steps, recovery, precopy_retries)"),
        ("name: ''\n", "1:7: field 'name': expected a non-empty string, got ''"),
        ("name: x\ndowntime_limit: 0s\n", "2:17: field 'downtime_limit': expected a duration > 0, got 0ns"),
        ("name: x\npostcopy: {allowed: true, after_passes: 2.5}\n", "2:41: field 'postcopy.after_passes': expected an integer ≥ 1, got 2.5"),
        ("name: x\ndowntime_steps: {steps: null}\n", "2:25: field 'downtime_steps.steps': expected an integer ≥ 1, got null"),
        ("name: x\nrecovery: {on_exhausted: abort}\n", "2:26: field 'recovery.on_exhausted': expected one of stay-paused, got 'abort'"),
        ("name: x\ntimeouts: {progress: 150s, action: pause}\nrecovery: {channels: tcp:a:1}\n", "3:22: field 'recovery.channels': expected a list of channel URIs (tcp:HOST:PORT, unix:PATH or exec:COMMAND), got 'tcp:a:1'"),
        ("name: x\npostcopy: {allowed: true, budget: 60s}\n", "2:27: field 'postcopy.budget': is only used with 'when_not_converging: true'; set it or remove the budget"),
        ("name: a\nname: b\n", "2:1: field 'name': duplicate key; it is first given at line 1"),
        ("name: x\npostcopy: {allowed: true, allowed: false}\n", "2:12: field 'allowed': duplicate key in one mapping"),
    ])
    func smallCases(text: String, expected: String) {
        #expect(loadErrors(text) == [expected])
    }
}

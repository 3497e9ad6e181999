import Migration
import Testing
@testable import Policies

@Suite struct ParameterSpaceTests {
    static func spaceErrors(_ text: String) -> [String] {
        do {
            _ = try ParameterSpace.parse(text, file: "space.yaml")
            return []
        } catch {
            return error.errors.map(\.description)
        }
    }

    @Test func shippedSpaceIsThreeLimitsByEightBudgetsByFourMargins() throws {
        let space = try ParameterSpace.load(path: Repository.path("policies/adaptive-space.yaml"))
        #expect(space.base == "adaptive.yaml")
        #expect(space.parameters == [
            .init(field: "downtime_limit", values: [.duration(ms(100)), .duration(ms(300)), .duration(ms(500))]),
            .init(field: "postcopy.budget", values: [20, 60, 100, 140, 180, 220, 260, 300].map { .duration(s($0)) }),
            .init(field: "postcopy.when_precopy_slower_by", values: [0, 0.02, 0.05, 0.1].map { .number($0) }),
        ])
        #expect(space.count == 96)
        #expect(space.points.count == 96)
        #expect(space.points.first?.description == "downtime_limit=100ms postcopy.budget=20s postcopy.when_precopy_slower_by=0")
        #expect(space.points.last?.description == "downtime_limit=500ms postcopy.budget=5m postcopy.when_precopy_slower_by=0.1")
    }

    @Test func everyPointOfTheShippedSpaceAppliesToAdaptive() throws {
        let space = try ParameterSpace.load(path: Repository.path("policies/adaptive-space.yaml"))
        let base = try ShippedPoliciesTests.shipped("adaptive")
        for point in space.points {
            let policy = try space.policy(applying: point, to: base)
            #expect(policy.name == "adaptive")
            #expect(policy.recovery == base.recovery)
        }
        let policy = try space.policy(applying: space.points[37], to: base)
        #expect(policy.downtimeLimit == ms(300))
        #expect(policy.postcopy.budget == s(60))
        #expect(policy.postcopy.whenPrecopySlowerBy == 0.02)
    }

    @Test func applyingToABaseThatForbidsItFails() throws {
        let space = try ParameterSpace.parse("parameters:\n  - field: postcopy.budget\n    values: [60s]\n")
        let precopy = try ShippedPoliciesTests.shipped("precopy")
        #expect(throws: PolicyErrors([PolicyError(field: "postcopy.budget",
                                                  message: "set while postcopy is not allowed; add 'allowed: true' to 'postcopy' or remove it")])) {
            try space.policy(applying: space.points[0], to: precopy)
        }
    }

    @Test func applyingAddsAnOptionalSection() throws {
        let space = try ParameterSpace.parse("""
            parameters:
              - field: downtime_steps.steps
                range: {min: 3, max: 4, steps: 4}
              - field: completion.bandwidth
                values: [measured, 10Gbit/s]
            """)
        #expect(space.parameters[0].values == [.integer(3), .integer(4)])
        #expect(space.parameters[1].values == [.text("measured"), .bandwidth(Bandwidth(bytesPerSecond: 1.25e9))])
        let p = try space.policy(applying: space.points[3], to: Policy(name: "x"))
        #expect(p.downtimeSteps == DowntimeSteps(steps: 4))
        #expect(p.completion.bandwidth == .fixed(Bandwidth(bytesPerSecond: 1.25e9)))
    }

    @Test func pointsMadeInCodeAreChecked() {
        let space = ParameterSpace(parameters: [])
        let point = ParameterSpace.Point([("postcopy.after_passes", .integer(0)), ("postcopy.nope", .boolean(true)),
                                          ("downtime_limit", .integer(3))])
        #expect(throws: PolicyErrors([
            PolicyError(field: "postcopy.after_passes", message: "expected an integer ≥ 1, got 0"),
            PolicyError(field: "postcopy.nope", message: "not a policy field"),
            PolicyError(field: "downtime_limit", message: "expected a duration > 0 with a unit such as 100ms, 2s or 1m, got 3"),
        ])) {
            try space.policy(applying: point, to: Policy(name: "x"))
        }
    }

    @Test(arguments: [
        ("parameters:\n  - field: postcopy.budgt\n    values: [10s]\n",
         ["space.yaml:2:12: field 'parameters[0].field': unknown policy field 'postcopy.budgt'; did you mean 'postcopy.budget'?"]),
        ("parameters:\n  - field: postcopy.allowed\n    range: {min: 1, max: 2, steps: 2}\n",
         ["space.yaml:3:12: field 'parameters[0].range': a range needs a duration, integer or number field; 'postcopy.allowed' holds a boolean (true or false): use 'values'"]),
        ("parameters:\n  - field: downtime_limit\n    values: [100ms, 3 secs, fast]\n",
         ["space.yaml:3:21: field 'parameters[0].values[1]': expected a duration with a unit such as 100ms, 2s or 1m, got '3 secs'",
          "space.yaml:3:29: field 'parameters[0].values[2]': expected a duration with a unit such as 100ms, 2s or 1m, got 'fast'"]),
        ("parameters:\n  - field: downtime_limit\n    values: [100ms]\n    range: {min: 1s, max: 2s, steps: 2}\n",
         ["space.yaml:2:5: field 'parameters[0]': give either 'values' or 'range'"]),
        ("parameters:\n  - field: downtime_limit\n    values: [1s]\n  - field: downtime_limit\n    values: [2s]\n",
         ["space.yaml:4:12: field 'parameters[1].field': 'downtime_limit' is already varied by parameters[0]"]),
        ("parameters:\n  - field: postcopy.budget\n    range: {min: 300s, max: 10s, steps: 1}\n",
         ["space.yaml:3:41: field 'parameters[0].range.steps': expected an integer ≥ 2, got 1"]),
        ("parameters:\n  - field: postcopy.budget\n    range: {min: 300s, max: 10s, steps: 3}\n",
         ["space.yaml:3:29: field 'parameters[0].range.max': expected more than min (5m), got 10s"]),
        ("parameters:\n  - field: postcopy.budget\n    range: {min: 10s, steps: 3}\n",
         ["space.yaml:3:12: field 'parameters[0].range.max': missing; a range needs min, max and steps"]),
        ("parameters:\n  - field: name\n    values: [a, b]\n",
         ["space.yaml:2:12: field 'parameters[0].field': 'name' cannot be varied: it holds a non-empty string"]),
        ("parameters: []\nbase: ''\nextra: 1\n",
         ["space.yaml:1:13: field 'parameters': expected a non-empty list of parameters, got an empty list",
          "space.yaml:2:7: field 'base': expected a non-empty string, got ''",
          "space.yaml:3:1: field 'extra': unknown key (allowed here: description, base, parameters)"]),
        ("description: nothing to vary\n",
         ["space.yaml:1:1: field 'parameters': missing; list the policy fields to vary"]),
    ])
    func reportsExactErrors(text: String, expected: [String]) {
        #expect(Self.spaceErrors(text) == expected)
    }

    @Test func numberAndIntegerRanges() throws {
        let space = try ParameterSpace.parse("""
            parameters:
              - field: recovery.backoff.factor
                range: {min: 1, max: 2, steps: 5}
              - field: recovery.retries
                range: {min: 0, max: 2, steps: 5}
            """)
        #expect(space.parameters[0].values == [1, 1.25, 1.5, 1.75, 2].map { .number($0) })
        #expect(space.parameters[1].values == [0, 1, 2].map { .integer($0) })
        #expect(space.count == 15)
    }
}

import Migration
import Testing
@testable import Policies

func ms(_ n: Int64) -> TimeSpan { TimeSpan(nanoseconds: n * 1_000_000) }
func s(_ n: Int64) -> TimeSpan { TimeSpan(nanoseconds: n * 1_000_000_000) }

/// The policies in policies/ load and hold the values their comments cite.
@Suite struct ShippedPoliciesTests {
    static func shipped(_ name: String) throws -> Policy {
        try PolicyLoader.load(path: Repository.path("policies/\(name).yaml"))
    }

    /// Every policy file shipped (the parameter spaces beside them are another format).
    static var policyFiles: [String] {
        get throws { try Repository.files(in: "policies").filter { $0.hasSuffix(".yaml") && !$0.hasSuffix("-space.yaml") } }
    }

    @Test func sixPoliciesShipAndEachLoadsWithoutError() throws {
        let files = try Self.policyFiles
        #expect(files == ["adaptive.yaml", "kubevirt.yaml", "libvirt-postcopy-after-precopy.yaml",
                          "libvirt-timeout-postcopy.yaml", "nova.yaml", "precopy.yaml"])
        for file in files {
            let policy = try PolicyLoader.load(path: Repository.path("policies/\(file)"))
            #expect(policy.name + ".yaml" == file)
            #expect(policy.problems().isEmpty)
            #expect(!policy.description.isEmpty)
        }
    }

    @Test func everyShippedPolicySaysHowItRecovers() throws {
        for file in try Self.policyFiles {
            #expect(try Repository.text("policies/\(file)").contains("\nrecovery:\n"), "\(file)")
        }
    }

    @Test func precopyIsQEMUsDefault() throws {
        var expected = Policy(name: "precopy")
        expected.description = "QEMU precopy; stop at 300 ms of pending data, never switch to postcopy."
        #expect(try Self.shipped("precopy") == expected)
        #expect(expected.downtimeLimit == ms(300))
        #expect(expected.completion == Completion(exactSync: true, bandwidth: .measured))
        #expect(expected.postcopy.allowed == false)
    }

    @Test func libvirtPostcopyAfterPrecopySwitchesAfterTheFirstPass() throws {
        let p = try Self.shipped("libvirt-postcopy-after-precopy")
        #expect(p.downtimeLimit == ms(300))
        #expect(p.postcopy == Postcopy(allowed: true, afterPasses: 1))
        #expect(p.timeouts == Timeouts())
    }

    @Test func libvirtTimeoutPostcopySwitchesAfterThirtySeconds() throws {
        let p = try Self.shipped("libvirt-timeout-postcopy")
        #expect(p.downtimeLimit == ms(300))
        #expect(p.postcopy == Postcopy(allowed: true, after: s(30)))
    }

    @Test func novaHasNovasNumbers() throws {
        let p = try Self.shipped("nova")
        #expect(p.postcopy == Postcopy(allowed: true))
        #expect(p.timeouts == Timeouts(completionPerGiB: s(800), minimumGiB: 2, action: .forceComplete))
        #expect(p.downtimeSteps == DowntimeSteps(max: ms(500), steps: 10, delayPerGiB: s(75)))
        #expect(p.downtimeLimit == ms(500))
        // data_gb = max(2, RAM GiB): a 1 GiB guest counts 2 GiB, an 8 GiB guest 8 GiB.
        #expect(p.completionTimeout(memory: ByteCount(bytes: 1 << 30)) == s(1600))
        #expect(p.completionTimeout(memory: ByteCount(bytes: 8 << 30)) == s(6400))
    }

    @Test func kubevirtHasKubeVirtsNumbers() throws {
        let p = try Self.shipped("kubevirt")
        #expect(p.downtimeLimit == ms(900))
        #expect(p.postcopy == Postcopy(allowed: true))
        #expect(p.timeouts == Timeouts(completionPerGiB: s(150), minimumGiB: 0, progress: s(150), action: .postcopy))
        #expect(p.downtimeSteps == nil)
        #expect(p.completionTimeout(memory: ByteCount(bytes: 6 << 30)) == s(900))
    }

    @Test func adaptiveIsOurs() throws {
        let p = try Self.shipped("adaptive")
        #expect(p.downtimeLimit == ms(300))
        #expect(p.completion.bandwidth == .predicted)
        #expect(p.postcopy == Postcopy(allowed: true, afterPasses: nil, whenNotConverging: true, budget: s(120), whenPrecopySlowerBy: 0.02))
        #expect(p.recovery == Recovery(retries: 8, backoff: Backoff(initial: ms(100), factor: 2, max: s(2))))
        #expect(p.timeouts.completionPerGiB == nil)
    }
}

/// `policy show FILE | policy check -`: the effective YAML (and JSON) loads back to the same policy.
@Suite struct EffectivePolicyTests {
    @Test(arguments: ["adaptive", "kubevirt", "libvirt-postcopy-after-precopy", "libvirt-timeout-postcopy", "nova", "precopy"])
    func showThenCheckRoundTrips(name: String) throws {
        let policy = try ShippedPoliciesTests.shipped(name)
        #expect(try PolicyLoader.parse(policy.effective.yaml, file: "<stdin>") == policy)
        // JSON is YAML too: the --json output loads back as well.
        #expect(try PolicyLoader.parse(policy.effective.json, file: "<stdin>") == policy)
    }

    @Test func unusualValuesRoundTrip() throws {
        var policy = Policy(name: "yes")
        policy.description = "line one\nline \"two\": # not a comment\ttab"
        policy.downtimeLimit = TimeSpan(nanoseconds: 1_500_001)
        policy.completion = Completion(exactSync: false, bandwidth: .fixed(Bandwidth(bytesPerSecond: 1_073_741_824)))
        policy.timeouts = Timeouts(progress: s(90), action: .pause)
        policy.downtimeSteps = DowntimeSteps(max: ms(800), steps: 4, delayPerGiB: ms(2500))
        policy.recovery = Recovery(retries: 0, backoff: Backoff(initial: .init(nanoseconds: 0), factor: 1.5, max: s(1)),
                                   channels: ["tcp:[::1]:4444", "unix:/run/migpilot.sock", "exec:ssh dst nc -U /run/m.sock"])
        policy.precopyRetries = 3
        #expect(policy.problems().isEmpty)
        #expect(try PolicyLoader.parse(policy.effective.yaml) == policy)
        #expect(try PolicyLoader.parse(policy.effective.json) == policy)
    }

    @Test func showPrintsEveryFieldInSchemaOrder() throws {
        let yaml = try ShippedPoliciesTests.shipped("libvirt-timeout-postcopy").effective.yaml
        #expect(yaml == """
            name: libvirt-timeout-postcopy
            description: "libvirt --timeout 30 --timeout-postcopy; switch to postcopy after 30 s of precopy."
            downtime_limit: 300ms
            completion:
              exact_sync: true
              bandwidth: measured
            postcopy:
              allowed: true
              after_passes: null
              after: 30s
              when_not_converging: false
              budget: null
              when_precopy_slower_by: null
            timeouts:
              completion_per_gib: null
              minimum_gib: 0
              progress: null
              action: abort
            downtime_steps: null
            recovery:
              retries: 5
              backoff:
                initial: 200ms
                factor: 2
                max: 5s
              channels: []
              on_exhausted: stay-paused
            precopy_retries: 0

            """)
    }

    @Test func jsonUsesTheSameKeys() throws {
        let json = try ShippedPoliciesTests.shipped("nova").effective.json
        #expect(json.hasPrefix(#"{"name": "nova", "description": "#))
        #expect(json.contains(#""timeouts": {"completion_per_gib": "800s", "minimum_gib": 2, "progress": null, "action": "force-complete"}"#))
        #expect(json.contains(#""downtime_steps": {"max": "500ms", "steps": 10, "delay_per_gib": "75s"}"#))
    }
}

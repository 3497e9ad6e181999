import Foundation
import Migration
import Policies
import Testing
@testable import WhatIf

/// Shipped policies on the simulator, against closed forms and their systems' documented behaviour.
@Suite struct ShippedPolicyWhatIfTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    func shipped(_ name: String) throws -> Policy { try PolicyLoader.load(path: Self.root.appendingPathComponent("policies/\(name).yaml").path) }
    let pageCost = 4096.0 + 8

    @Test func postcopyAfterPrecopySwitchesAtWOverBWithTheClosedFormLeft() throws {
        // Uniform writes over W pages at r pages/s, a link of B pages/s, the downtime limit forced tiny.
        let w = 30_000.0, r = 12_000.0, b = 20_000.0
        let workload = try syntheticWorkload(pages: UInt64(w), rate: r)
        let result = try WhatIf.run(policy: try shipped("libvirt-postcopy-after-precopy"), workload: workload,
                                    link: LinkModel(bandwidthBytesPerSecond: b * pageCost), downtimeLimit: 1e-6)
        let t1 = w / b
        let switchAt = try #require(result.switchAtSeconds)
        #expect(abs(switchAt - t1) / t1 < 0.03, "switched at \(switchAt) s, expected \(t1)")
        let left = w * (1 - exp(-r * t1 / w))
        let atSwitch = Double(try #require(result.remainingPagesAtSwitch))
        #expect(abs(atSwitch - left) / left < 0.05, "\(atSwitch) pages left, expected \(left)")
        #expect(result.completed && !result.converged)
        #expect(result.passes == 3)  // dirty-sync-count: pass 1, pass 2, and the sync at the switch
    }

    @Test func aWriterFasterThanTheLinkNeverConvergesUnderPrecopyAndAdaptiveCompletesIt() throws {
        let workload = try syntheticWorkload(pages: 40_000, rate: 60_000)
        let link = LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost)
        let precopy = try WhatIf.run(policy: try shipped("precopy"), workload: workload, link: link, horizonSeconds: 120)
        #expect(!precopy.completed && !precopy.converged)
        #expect(precopy.state == .active)
        #expect(precopy.reason?.contains("did not converge") == true, "\(precopy.reason ?? "no reason")")

        let adaptive = try WhatIf.run(policy: try shipped("adaptive"), workload: workload, link: link, horizonSeconds: 120)
        #expect(adaptive.completed)
        #expect(!adaptive.converged)  // through postcopy
        #expect((adaptive.downtimeSeconds ?? 1) <= 0.3)
        // It switches at the first sync: after pass 1 (W/B = 2 s), not after a wasted pass.
        #expect(try #require(adaptive.switchAtSeconds) < 2.2)
    }

    @Test func aSlowWriterConvergesInPrecopyUnderEveryPolicyThatAllowsIt() throws {
        let workload = try syntheticWorkload(.hotset, pages: 20_000, rate: 500)
        // The policies' own stop (pending within bandwidth × limit): the engine's switch work
        // comes on top of the limit, as it does in the engine.
        let link = LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost, switchoverCost: .none)
        for name in ["precopy", "libvirt-timeout-postcopy", "nova", "kubevirt", "adaptive"] {
            let r = try WhatIf.run(policy: try shipped(name), workload: workload, link: link)
            #expect(r.completed && r.converged, "\(name): \(r.reason ?? "")")
            #expect((r.downtimeSeconds ?? 1) <= (try shipped(name)).downtimeLimit.seconds + 0.0011, "\(name)")
        }
    }

    @Test func libvirtTimeoutPostcopySwitchesAfterThirtySeconds() throws {
        let workload = try syntheticWorkload(pages: 40_000, rate: 60_000)
        let r = try WhatIf.run(policy: try shipped("libvirt-timeout-postcopy"), workload: workload,
                               link: LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost))
        let switchAt = try #require(r.switchAtSeconds)
        #expect(switchAt >= 30 && switchAt < 30.6, "switched at \(switchAt) s")
        #expect(r.completed)
    }

    @Test func novaForcesCompletionThroughPostcopyAfter800sPerGiBCountingAtLeast2GiB() throws {
        // 78 MiB of guest counts as 2 GiB: completion timeout 1600 s; downtime steps every 150 s.
        let workload = try syntheticWorkload(pages: 20_000, rate: 60_000, intervalMilliseconds: 100)
        var log: [DecisionRecord] = []
        let r = try WhatIf.run(policy: try shipped("nova"), workload: workload, link: LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost)) { log.append($0) }
        let switchAt = try #require(r.switchAtSeconds)
        #expect(switchAt >= 1600 && switchAt < 1601, "switched at \(switchAt) s")
        #expect(r.completed)
        let steps = log.compactMap { d -> Double? in if case .setDowntimeLimit = d.action { d.timeSeconds } else { nil } }
        #expect(steps.count == 11)
        #expect(steps.enumerated().allSatisfy { i, t in t >= Double(i) * 150 && t < Double(i) * 150 + 1 }, "\(steps)")
    }

    @Test func kubevirtSwitchesAt150sPerGiB() throws {
        // 40,000 pages = 0.153 GiB: acceptable completion time 150 s × 0.153 = 22.9 s; the 900 ms
        // limit fits 18,000 pages, the writer dirties ~38,000 per pass: precopy cannot finish.
        let workload = try syntheticWorkload(pages: 40_000, rate: 60_000, intervalMilliseconds: 100)
        let r = try WhatIf.run(policy: try shipped("kubevirt"), workload: workload, link: LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost))
        let expected = 150 * 40_000 * 4096 / 1_073_741_824.0
        let switchAt = try #require(r.switchAtSeconds)
        #expect(switchAt >= expected && switchAt < expected + 0.6, "switched at \(switchAt) s, expected \(expected)")
        #expect(r.completed)
    }

    @Test func aBrokenLinkInPostcopyIsRecoveredByThePolicyAndThePauseMatchesTheCut() throws {
        let workload = try syntheticWorkload(pages: 40_000, rate: 60_000)
        let link = LinkModel(bandwidthBytesPerSecond: 20_000 * pageCost, failures: [.init(atSeconds: 2.5, forSeconds: 1.0)])
        let r = try WhatIf.run(policy: try shipped("adaptive"), workload: workload, link: link)
        #expect(r.completed)
        #expect(r.recoveries == 1)
        // Back-off 100, 200, 400, 800 ms: the attempt at +1.5 s is the first after the 1 s cut.
        #expect(r.pausedSeconds >= 1.0 && r.pausedSeconds < 1.6, "paused \(r.pausedSeconds) s")
    }
}

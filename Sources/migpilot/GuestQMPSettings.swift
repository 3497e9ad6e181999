import Foundation
import QMP
import Synchronization

/// What `migrate-set-capabilities` and `migrate-set-parameters` set on a guest driven over
/// QMP, with QEMU 7.2's names and defaults (qapi/migration.json, migration/options.c):
/// downtime-limit 300 ms, max-bandwidth 128 MiB/s, max-postcopy-bandwidth 0 (unlimited).
final class GuestQMPSettings: Sendable {
    /// QEMU 7.2's `MigrationCapability` enum, in its order.
    static let capabilityNames = [
        "xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress", "events", "postcopy-ram", "x-colo",
        "release-ram", "block", "return-path", "pause-before-switchover", "multifd", "dirty-bitmaps", "postcopy-blocktime",
        "late-block-activate", "x-ignore-shared", "validate-uuid", "background-snapshot", "zero-copy-send", "postcopy-preempt",
    ]
    /// What the embedded engine does: postcopy; events are always sent; the return path
    /// always exists (postcopy's page requests use it).
    static let supported: Set<String> = ["postcopy-ram", "events", "return-path"]

    struct Values {
        var capabilities: Set<String> = []
        var downtimeLimitMs: Int64 = 300
        var maxBandwidth: Int64 = 128 << 20
        var maxPostcopyBandwidth: Int64 = 0
    }
    private let values = Mutex(Values())

    var current: Values { values.withLock { $0 } }
    var postcopyRAM: Bool { values.withLock { $0.capabilities.contains("postcopy-ram") } }

    /// `migrate-set-capabilities {"capabilities": [{"capability": NAME, "state": BOOL}]}`;
    /// nothing changes unless every entry is valid.
    func setCapabilities(_ list: [JSONValue]) throws(QMPError) {
        var changes: [(String, Bool)] = []
        for (i, entry) in list.enumerated() {
            let at = "capabilities[\(i)]"
            guard entry.objectValue != nil else { throw QMPError(.genericError, "Invalid parameter type for '\(at)', expected: object") }
            guard let name = entry["capability"] else { throw QMPError(.genericError, "Parameter '\(at).capability' is missing") }
            guard let text = name.stringValue else { throw QMPError(.genericError, "Invalid parameter type for '\(at).capability', expected: string") }
            guard let state = entry["state"] else { throw QMPError(.genericError, "Parameter '\(at).state' is missing") }
            guard let on = state.boolValue else { throw QMPError(.genericError, "Invalid parameter type for '\(at).state', expected: boolean") }
            if let extra = entry.objectValue!.first(where: { $0.key != "capability" && $0.key != "state" }) {
                throw QMPError(.genericError, "Parameter '\(at).\(extra.key)' is unexpected")
            }
            guard Self.capabilityNames.contains(text) else { throw QMPError(.genericError, "Parameter 'capability' does not accept value '\(text)'") }
            if on, !Self.supported.contains(text) {
                throw QMPError(.genericError, "Capability '\(text)' is not supported by migpilot's guest (it supports \(Self.supported.sorted().joined(separator: ", ")))")
            }
            changes.append((text, on))
        }
        values.withLock { v in for (name, on) in changes { if on { v.capabilities.insert(name) } else { v.capabilities.remove(name) } } }
    }

    var capabilitiesJSON: JSONValue {
        let on = values.withLock { $0.capabilities }
        return .array(Self.capabilityNames.map { ["capability": .string($0), "state": .bool(on.contains($0))] })
    }

    static let parameters = [
        QMPParameter("downtime-limit", .integer, optional: true),
        QMPParameter("max-bandwidth", .integer, optional: true),
        QMPParameter("max-postcopy-bandwidth", .integer, optional: true),
    ]

    /// `migrate-set-parameters`, with QEMU's range checks; returns what was set.
    @discardableResult
    func setParameters(_ arguments: JSONValue) throws(QMPError) -> Values {
        let downtime = arguments["downtime-limit"]?.integerValue
        if let downtime, !(0...2_000_000).contains(downtime) {
            throw QMPError(.genericError, "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds")
        }
        for name in ["max-bandwidth", "max-postcopy-bandwidth"] {
            if let v = arguments[name]?.integerValue, v < 0 {
                throw QMPError(.genericError, "Parameter '\(name.replacingOccurrences(of: "-", with: "_"))' expects an integer in the range of 0 to 18446744073709551615 bytes/second")
            }
        }
        return values.withLock { v in
            if let downtime { v.downtimeLimitMs = downtime }
            if let b = arguments["max-bandwidth"]?.integerValue { v.maxBandwidth = b }
            if let b = arguments["max-postcopy-bandwidth"]?.integerValue { v.maxPostcopyBandwidth = b }
            return v
        }
    }

    var parametersJSON: JSONValue {
        let v = current
        return ["downtime-limit": .integer(v.downtimeLimitMs), "max-bandwidth": .integer(v.maxBandwidth),
                "max-postcopy-bandwidth": .integer(v.maxPostcopyBandwidth)]
    }
}

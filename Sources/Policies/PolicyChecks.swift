/// Checks of a whole policy: each value in its range, and combinations that contradict each
/// other or do nothing.
extension Policy {
    /// Everything wrong with this policy, field by field (no file, no place): what the loader
    /// reports for a file, for a policy built or changed in code.
    public func problems() -> [PolicyError] {
        var found: [PolicyError] = []
        PolicySchema.forEachField(of: self) { path, field, value in
            if value == .null { return }
            if let problem = field.kind.problem(with: value) { found.append(PolicyError(field: path, message: problem)) }
        }
        return found + inconsistencies().map { PolicyError(field: $0.field, message: $0.message) }
    }

    /// A combination of fields that contradict each other or do nothing.
    struct Inconsistency {
        /// The field the error is reported at.
        let field: String
        let message: String
        /// Every field the finding depends on: when one of them could not be read, the finding
        /// is not reported (it would only echo the first error).
        let involves: [String]
    }

    func inconsistencies() -> [Inconsistency] {
        var found: [Inconsistency] = []
        let p = postcopy
        let switches: [(key: String, isSet: Bool)] = [
            ("after_passes", p.afterPasses != nil), ("after", p.after != nil),
            ("when_not_converging", p.whenNotConverging), ("budget", p.budget != nil),
            ("when_precopy_slower_by", p.whenPrecopySlowerBy != nil),
        ]
        if !p.allowed {
            for (key, isSet) in switches where isSet {
                found.append(Inconsistency(
                    field: "postcopy.\(key)",
                    message: "set while postcopy is not allowed; add 'allowed: true' to 'postcopy' or remove it",
                    involves: ["postcopy.allowed", "postcopy.\(key)"]))
            }
        } else if p.whenNotConverging, p.budget == nil {
            found.append(Inconsistency(
                field: "postcopy.when_not_converging",
                message: "needs 'postcopy.budget', the precopy time budget the model's prediction is checked against",
                involves: ["postcopy.when_not_converging", "postcopy.budget"]))
        } else if !p.whenNotConverging, p.whenPrecopySlowerBy != nil {
            found.append(Inconsistency(
                field: "postcopy.when_precopy_slower_by",
                message: "is only used with 'when_not_converging: true' (it compares the model's predictions); set it or remove this",
                involves: ["postcopy.when_not_converging", "postcopy.when_precopy_slower_by"]))
        } else if !p.whenNotConverging, p.budget != nil {
            found.append(Inconsistency(
                field: "postcopy.budget",
                message: "is only used with 'when_not_converging: true'; set it or remove the budget",
                involves: ["postcopy.when_not_converging", "postcopy.budget"]))
        }
        if timeouts.action == .postcopy, !p.allowed {
            found.append(Inconsistency(
                field: "timeouts.action",
                message: "'postcopy' needs 'postcopy.allowed: true' ('force-complete' pauses the guest when postcopy is not allowed)",
                involves: ["timeouts.action", "postcopy.allowed"]))
        }
        if timeouts.action != .abort, timeouts.completionPerGiB == nil, timeouts.progress == nil {
            found.append(Inconsistency(
                field: "timeouts.action",
                message: "'\(timeouts.action.rawValue)' never happens without 'completion_per_gib' or 'progress' in 'timeouts'",
                involves: ["timeouts.action", "timeouts.completion_per_gib", "timeouts.progress"]))
        }
        if recovery.backoff.max < recovery.backoff.initial {
            found.append(Inconsistency(
                field: "recovery.backoff.max",
                message: "expected at least 'initial' (\(recovery.backoff.initial)), got \(recovery.backoff.max)",
                involves: ["recovery.backoff.initial", "recovery.backoff.max"]))
        }
        return found
    }
}

extension PolicySchema {
    /// Calls `body` with every field's dotted path and value, in schema order; the fields of an
    /// absent optional section are skipped.
    static func forEachField(of policy: Policy, _ body: (String, SchemaField, PolicyValue) -> Void) {
        func walk(_ entries: [SchemaEntry], _ prefix: String) {
            for entry in entries {
                switch entry {
                case .field(let f): body(prefix + f.key, f, f.get(policy))
                case .section(let s):
                    if let presence = s.optional, !presence.isPresent(policy) { continue }
                    walk(s.entries, prefix + s.key + ".")
                }
            }
        }
        walk(root, "")
    }
}

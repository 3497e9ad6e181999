import Migration

/// The policy file's schema as data: every key, its type and range, and how it reads and writes
/// a `Policy`. The loader, `policy show` and `ParameterSpace` all walk this one table, so a
/// field added here is read, printed and tunable at once.
enum PolicySchema {
    /// The top level of a policy file, in the order `policy show` prints it.
    static let root: [SchemaEntry] = [
        .field(.text("name", \.name, nonEmpty: true)),
        .field(.text("description", \.description)),
        .field(.duration("downtime_limit", \.downtimeLimit, minimum: .positive)),
        .section(SchemaSection("completion", [
            .field(.boolean("exact_sync", \.completion.exactSync)),
            .field(.bandwidthSource("bandwidth", \.completion.bandwidth)),
        ])),
        .section(SchemaSection("postcopy", [
            .field(.boolean("allowed", \.postcopy.allowed)),
            .field(.integer("after_passes", \.postcopy.afterPasses, minimum: 1)),
            .field(.duration("after", \.postcopy.after, minimum: .zero)),
            .field(.boolean("when_not_converging", \.postcopy.whenNotConverging)),
            .field(.duration("budget", \.postcopy.budget, minimum: .positive)),
            .field(.number("when_precopy_slower_by", \.postcopy.whenPrecopySlowerBy, minimum: 0)),
        ])),
        .section(SchemaSection("timeouts", [
            .field(.duration("completion_per_gib", \.timeouts.completionPerGiB, minimum: .positive)),
            .field(.number("minimum_gib", \.timeouts.minimumGiB, minimum: 0)),
            .field(.duration("progress", \.timeouts.progress, minimum: .positive)),
            .field(.choice("action", \.timeouts.action)),
        ])),
        .section(SchemaSection("downtime_steps", [
            .field(.duration("max", \.givenDowntimeSteps.max, minimum: .positive)),
            .field(.integer("steps", \.givenDowntimeSteps.steps, minimum: 1)),
            .field(.duration("delay_per_gib", \.givenDowntimeSteps.delayPerGiB, minimum: .positive)),
        ], optional: SchemaSection.Presence(
            isPresent: { $0.downtimeSteps != nil },
            add: { if $0.downtimeSteps == nil { $0.downtimeSteps = DowntimeSteps() } },
            remove: { $0.downtimeSteps = nil }))),
        .section(SchemaSection("recovery", [
            .field(.integer("retries", \.recovery.retries, minimum: 0)),
            .section(SchemaSection("backoff", [
                .field(.duration("initial", \.recovery.backoff.initial, minimum: .zero)),
                .field(.number("factor", \.recovery.backoff.factor, minimum: 1)),
                .field(.duration("max", \.recovery.backoff.max, minimum: .zero)),
            ])),
            .field(.channels("channels", \.recovery.channels)),
            .field(.choice("on_exhausted", \.recovery.onExhausted)),
        ])),
        .field(.integer("precopy_retries", \.precopyRetries, minimum: 0)),
    ]

    /// The field at a dotted path (`postcopy.budget`), with the optional sections on its way
    /// (which must be added before the field can be set); nil when there is none.
    static func field(at path: String) -> (field: SchemaField, sections: [SchemaSection])? {
        var entries = root
        var sections: [SchemaSection] = []
        let keys = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        for (i, key) in keys.enumerated() {
            switch entries.first(where: { $0.key == key }) {
            case .field(let f)? where i == keys.count - 1: return (f, sections)
            case .section(let s)? where i < keys.count - 1:
                sections.append(s)
                entries = s.entries
            default: return nil
            }
        }
        return nil
    }

    /// Every field's dotted path, in schema order (for suggestions).
    static var fieldPaths: [String] {
        func walk(_ entries: [SchemaEntry], _ prefix: String) -> [String] {
            entries.flatMap { entry -> [String] in
                switch entry {
                case .field(let f): [prefix + f.key]
                case .section(let s): walk(s.entries, prefix + s.key + ".")
                }
            }
        }
        return walk(root, "")
    }
}

/// A key of a mapping in the schema: a field, or a section holding more keys.
enum SchemaEntry: Sendable {
    case field(SchemaField)
    case section(SchemaSection)

    var key: String {
        switch self {
        case .field(let f): f.key
        case .section(let s): s.key
        }
    }
}

/// A mapping of fields (`postcopy:`); an optional one (`downtime_steps:`) is absent until given.
struct SchemaSection: Sendable {
    /// How an optional section is added (with its defaults), removed, and seen.
    struct Presence: Sendable {
        let isPresent: @Sendable (Policy) -> Bool
        let add: @Sendable (inout Policy) -> Void
        let remove: @Sendable (inout Policy) -> Void
    }

    let key: String
    let entries: [SchemaEntry]
    let optional: Presence?

    init(_ key: String, _ entries: [SchemaEntry], optional: Presence? = nil) {
        self.key = key
        self.entries = entries
        self.optional = optional
    }
}

/// What a field holds, with its range: what a value is checked against.
enum FieldKind: Sendable {
    /// The least a duration may be.
    enum DurationMinimum: Sendable { case zero, positive }

    case text(nonEmpty: Bool)
    case choice([String])
    case duration(DurationMinimum)
    case integer(minimum: Int)
    case number(minimum: Double)
    case boolean
    case channels
    case bandwidthSource

    /// What a value of this kind looks like, for "expected …" messages.
    var expected: String {
        switch self {
        case .text(let nonEmpty): nonEmpty ? "a non-empty string" : "a string"
        case .choice(let values): "one of " + values.joined(separator: ", ")
        case .duration(.zero): "a duration with a unit such as 100ms, 2s or 1m"
        case .duration(.positive): "a duration > 0 with a unit such as 100ms, 2s or 1m"
        case .integer(let minimum): "an integer ≥ \(minimum)"
        case .number(let minimum): "a number ≥ \(PolicyValue.format(minimum))"
        case .boolean: "a boolean (true or false)"
        case .channels: "a list of channel URIs (tcp:HOST:PORT, unix:PATH or exec:COMMAND)"
        case .bandwidthSource: "measured, predicted or a bandwidth such as 10Gbit/s"
        }
    }
}

/// One field: its key, kind, whether it may be left unset (`null`), and how it is read from and
/// written to a `Policy`.
struct SchemaField: Sendable {
    let key: String
    let kind: FieldKind
    /// An optional field: `null` (or leaving it out) leaves it unset.
    let nullable: Bool
    let get: @Sendable (Policy) -> PolicyValue
    let set: @Sendable (inout Policy, PolicyValue) -> Void

    /// A field whose value converts to and from `T`; `set` ignores a value of another type.
    private static func make<T>(_ key: String, _ kind: FieldKind, _ path: WritableKeyPath<Policy, T> & Sendable,
                                nullable: Bool, encode: @escaping @Sendable (T) -> PolicyValue,
                                decode: @escaping @Sendable (PolicyValue) -> T?) -> SchemaField {
        SchemaField(key: key, kind: kind, nullable: nullable, get: { encode($0[keyPath: path]) },
                    set: { policy, value in if let v = decode(value) { policy[keyPath: path] = v } })
    }

    /// `T?` from a value of `T`'s case, or `null` for nil; nil (ignored) for anything else.
    private static func optional<T>(_ unwrap: @escaping @Sendable (PolicyValue) -> T?) -> @Sendable (PolicyValue) -> T?? {
        { value in value == .null ? .some(nil) : unwrap(value).map { .some($0) } }
    }

    static func text(_ key: String, _ path: WritableKeyPath<Policy, String> & Sendable, nonEmpty: Bool = false) -> SchemaField {
        make(key, .text(nonEmpty: nonEmpty), path, nullable: false, encode: { .text($0) },
             decode: { if case .text(let s) = $0 { s } else { nil } })
    }

    static func boolean(_ key: String, _ path: WritableKeyPath<Policy, Bool> & Sendable) -> SchemaField {
        make(key, .boolean, path, nullable: false, encode: { .boolean($0) },
             decode: { if case .boolean(let b) = $0 { b } else { nil } })
    }

    static func number(_ key: String, _ path: WritableKeyPath<Policy, Double> & Sendable, minimum: Double) -> SchemaField {
        make(key, .number(minimum: minimum), path, nullable: false, encode: { .number($0) },
             decode: { if case .number(let x) = $0 { x } else { nil } })
    }

    static func number(_ key: String, _ path: WritableKeyPath<Policy, Double?> & Sendable, minimum: Double) -> SchemaField {
        make(key, .number(minimum: minimum), path, nullable: true, encode: { $0.map(PolicyValue.number) ?? .null },
             decode: optional { if case .number(let x) = $0 { x } else { nil } })
    }

    static func duration(_ key: String, _ path: WritableKeyPath<Policy, TimeSpan> & Sendable,
                         minimum: FieldKind.DurationMinimum) -> SchemaField {
        make(key, .duration(minimum), path, nullable: false, encode: { .duration($0) }, decode: \.timeSpan)
    }

    static func duration(_ key: String, _ path: WritableKeyPath<Policy, TimeSpan?> & Sendable,
                         minimum: FieldKind.DurationMinimum) -> SchemaField {
        make(key, .duration(minimum), path, nullable: true, encode: { $0.map(PolicyValue.duration) ?? .null },
             decode: optional(\.timeSpan))
    }

    static func integer(_ key: String, _ path: WritableKeyPath<Policy, Int> & Sendable, minimum: Int) -> SchemaField {
        make(key, .integer(minimum: minimum), path, nullable: false, encode: { .integer($0) }, decode: \.integer)
    }

    static func integer(_ key: String, _ path: WritableKeyPath<Policy, Int?> & Sendable, minimum: Int) -> SchemaField {
        make(key, .integer(minimum: minimum), path, nullable: true, encode: { $0.map(PolicyValue.integer) ?? .null },
             decode: optional(\.integer))
    }

    static func choice<E: RawRepresentable & CaseIterable & Sendable>(_ key: String, _ path: WritableKeyPath<Policy, E> & Sendable)
        -> SchemaField where E.RawValue == String {
        make(key, .choice(E.allCases.map(\.rawValue)), path, nullable: false, encode: { .text($0.rawValue) },
             decode: { if case .text(let s) = $0 { E(rawValue: s) } else { nil } })
    }

    static func channels(_ key: String, _ path: WritableKeyPath<Policy, [String]> & Sendable) -> SchemaField {
        make(key, .channels, path, nullable: false, encode: { .list($0) },
             decode: { if case .list(let items) = $0 { items } else { nil } })
    }

    static func bandwidthSource(_ key: String, _ path: WritableKeyPath<Policy, BandwidthSource> & Sendable) -> SchemaField {
        make(key, .bandwidthSource, path, nullable: false,
             encode: { source in
                 switch source {
                 case .measured: .text("measured")
                 case .predicted: .text("predicted")
                 case .fixed(let b): .bandwidth(b)
                 }
             },
             decode: { value in
                 switch value {
                 case .text("measured"): .measured
                 case .text("predicted"): .predicted
                 case .bandwidth(let b): .fixed(b)
                 default: nil
                 }
             })
    }
}

extension Policy {
    /// The downtime steps, with Nova's defaults while none are given; setting one adds them.
    var givenDowntimeSteps: DowntimeSteps {
        get { downtimeSteps ?? DowntimeSteps() }
        set { downtimeSteps = newValue }
    }
}

extension PolicyValue {
    var timeSpan: TimeSpan? { if case .duration(let d) = self { d } else { nil } }
    var integer: Int? { if case .integer(let i) = self { i } else { nil } }
}

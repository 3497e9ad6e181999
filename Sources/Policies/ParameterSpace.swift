import Migration
import Yams

/// The policy parameters `tune` searches, and the values each may take (docs/policies.md,
/// "Parameter spaces"). A point of the space gives one value to every parameter; applied to a
/// base policy it gives the policy to try.
///
/// ```yaml
/// base: adaptive.yaml
/// parameters:
///   - field: downtime_limit
///     values: [100ms, 300ms, 500ms]
///   - field: postcopy.budget
///     range: {min: 20s, max: 300s, steps: 8}
/// ```
public struct ParameterSpace: Sendable, Equatable {
    /// One policy field to vary and the values it takes, in order.
    public struct Parameter: Sendable, Equatable {
        /// The dotted field path in the policy schema (`postcopy.budget`).
        public var field: String
        /// The values, a `range` already spread into `steps` values.
        public var values: [PolicyValue]

        public init(field: String, values: [PolicyValue]) {
            self.field = field
            self.values = values
        }
    }

    /// One value for each parameter.
    public struct Point: Sendable, Equatable, CustomStringConvertible {
        public var assignments: [(field: String, value: PolicyValue)]

        public init(_ assignments: [(field: String, value: PolicyValue)]) { self.assignments = assignments }

        /// `downtime_limit=100ms postcopy.budget=20s`.
        public var description: String { assignments.map { "\($0.field)=\($0.value)" }.joined(separator: " ") }

        public static func == (a: Point, b: Point) -> Bool {
            a.assignments.count == b.assignments.count
                && zip(a.assignments, b.assignments).allSatisfy { $0.field == $1.field && $0.value == $1.value }
        }
    }

    /// What the space is for.
    public var description: String = ""
    /// The policy file the points apply to, as written (relative to the space file), if named.
    public var base: String? = nil
    public var parameters: [Parameter]

    public init(description: String = "", base: String? = nil, parameters: [Parameter]) {
        self.description = description
        self.base = base
        self.parameters = parameters
    }

    /// How many points the space has (the product of the parameters' value counts).
    public var count: Int { parameters.reduce(1) { $0 * $1.values.count } }

    /// Every point, the first parameter varying slowest.
    public var points: [Point] {
        parameters.reduce([Point([])]) { points, parameter in
            points.flatMap { point in parameter.values.map { Point(point.assignments + [(parameter.field, $0)]) } }
        }
    }

    /// `base` with the point's values set. Throws the policy's problems when a field is not a
    /// policy field, a value does not fit its field, or the result is inconsistent (for
    /// example a budget on a base that does not allow postcopy).
    public func policy(applying point: Point, to base: Policy) throws(PolicyErrors) -> Policy {
        var policy = base
        var errors: [PolicyError] = []
        for (field, value) in point.assignments {
            guard let (schemaField, sections) = PolicySchema.field(at: field) else {
                errors.append(PolicyError(field: field, message: "not a policy field"))
                continue
            }
            if let problem = Self.typeProblem(value, for: schemaField) ?? schemaField.kind.problem(with: value) {
                errors.append(PolicyError(field: field, message: problem))
                continue
            }
            for section in sections { section.optional?.add(&policy) }
            schemaField.set(&policy, value)
        }
        errors += policy.problems()
        if !errors.isEmpty { throw PolicyErrors(errors) }
        return policy
    }

    /// Why a value of this type cannot go into the field at all.
    static func typeProblem(_ value: PolicyValue, for field: SchemaField) -> String? {
        let fits = switch (field.kind, value) {
        case (_, .null): field.nullable
        case (.text, .text), (.choice, .text), (.duration, .duration), (.integer, .integer), (.number, .number),
             (.boolean, .boolean), (.channels, .list), (.bandwidthSource, .bandwidth): true
        case (.bandwidthSource, .text(let s)): s == "measured" || s == "predicted"
        default: false
        }
        return fits ? nil : "expected \(field.kind.expected), got \(value)"
    }

    /// Reads the space in `path` (`-` reads standard input).
    public static func load(path: String) throws(PolicyLoadError) -> ParameterSpace {
        let (text, name) = try PolicyLoader.readText(path)
        do { return try parse(text, file: name) } catch { throw .invalid(error) }
    }

    /// Reads a space from its text, checking every field path against the policy schema and
    /// every value against its field; all errors are collected before any is thrown.
    public static func parse(_ text: String, file: String = "") throws(PolicyErrors) -> ParameterSpace {
        var reader = NodeReader(YAMLDocument(text, file: file))
        var space = ParameterSpace(parameters: [])
        guard let root = reader.document.root else {
            if reader.document.errors.isEmpty { reader.error(at: nil, "", "expected a mapping with 'parameters', got an empty document") }
            throw PolicyErrors(reader.allErrors)
        }
        guard case .mapping(let mapping) = root else {
            reader.error(at: root.mark, "", "expected a mapping with 'parameters', got \(NodeReader.describe(root))")
            throw PolicyErrors(reader.allErrors)
        }
        var sawParameters = false
        for (key, _, value) in reader.entries(of: mapping, at: "", allowed: ["description", "base", "parameters"]) {
            switch key {
            case "parameters":
                sawParameters = true
                space.parameters = readParameters(value, reader: &reader)
            default:
                if case .text(let s)? = reader.value(of: value, kind: .text(nonEmpty: key == "base"), nullable: false, at: key) {
                    if key == "base" { space.base = s } else { space.description = s }
                }
            }
        }
        if !sawParameters { reader.error(at: root.mark, "parameters", "missing; list the policy fields to vary") }
        let errors = reader.allErrors
        if !errors.isEmpty { throw PolicyErrors(errors) }
        return space
    }

    private static func readParameters(_ node: Node, reader: inout NodeReader) -> [Parameter] {
        guard case .sequence(let items) = node, items.count > 0 else {
            let got = if case .sequence = node { "an empty list" } else { NodeReader.describe(node) }
            reader.error(at: node.mark, "parameters", "expected a non-empty list of parameters, got \(got)")
            return []
        }
        var parameters: [Parameter] = []
        var seen: [String: Int] = [:]
        for (i, item) in items.enumerated() {
            let path = "parameters[\(i)]"
            guard case .mapping(let mapping) = item else {
                reader.error(at: item.mark, path, "expected a mapping with 'field' and 'values' or 'range', got \(NodeReader.describe(item))")
                continue
            }
            let entries = reader.entries(of: mapping, at: path, allowed: ["field", "values", "range"])
            guard let fieldEntry = entries.first(where: { $0.key == "field" }) else {
                reader.error(at: item.mark, path + ".field", "missing; name the policy field to vary, e.g. postcopy.budget")
                continue
            }
            guard let field = readField(fieldEntry.value, at: path + ".field", reader: &reader) else { continue }
            if let earlier = seen[field.path] {
                reader.error(at: fieldEntry.value.mark, path + ".field", "'\(field.path)' is already varied by parameters[\(earlier)]")
                continue
            }
            seen[field.path] = i
            let domains = entries.filter { $0.key != "field" }
            guard domains.count == 1, let domain = domains.first else {
                reader.error(at: item.mark, path, "give either 'values' or 'range'")
                continue
            }
            let values = domain.key == "values"
                ? readValues(domain.value, field: field.field, at: path + ".values", reader: &reader)
                : readRange(domain.value, field: field, at: path + ".range", reader: &reader)
            if let values { parameters.append(Parameter(field: field.path, values: values)) }
        }
        return parameters
    }

    /// A policy field that can be varied, or nil after reporting why not.
    private static func readField(_ node: Node, at path: String, reader: inout NodeReader)
        -> (path: String, field: SchemaField)? {
        guard case .text(let name)? = reader.value(of: node, kind: .text(nonEmpty: true), nullable: false, at: path) else { return nil }
        guard let (field, _) = PolicySchema.field(at: name) else {
            let near = NodeReader.closest(to: name, among: PolicySchema.fieldPaths).map { "; did you mean '\($0)'?" } ?? ""
            reader.error(at: node.mark, path, "unknown policy field '\(name)'\(near)")
            return nil
        }
        switch field.kind {
        case .text, .channels:
            reader.error(at: node.mark, path, "'\(name)' cannot be varied: it holds \(field.kind.expected)")
            return nil
        default:
            return (name, field)
        }
    }

    private static func readValues(_ node: Node, field: SchemaField, at path: String, reader: inout NodeReader) -> [PolicyValue]? {
        guard case .sequence(let items) = node, items.count > 0 else {
            reader.error(at: node.mark, path, "expected a non-empty list of values, got \(NodeReader.describe(node))")
            return nil
        }
        let values = items.enumerated().map { i, item in
            reader.value(of: item, kind: field.kind, nullable: field.nullable, at: "\(path)[\(i)]")
        }
        return values.contains(nil) ? nil : values.compactMap { $0 }
    }

    /// `min`, `max` and `steps` spread evenly: durations to the millisecond (when both ends are
    /// whole milliseconds), integers rounded
    /// (and repeats dropped), numbers exactly.
    private static func readRange(_ node: Node, field: (path: String, field: SchemaField), at path: String,
                                  reader: inout NodeReader) -> [PolicyValue]? {
        switch field.field.kind {
        case .duration, .integer, .number: break
        default:
            reader.error(at: node.mark, path, "a range needs a duration, integer or number field; '\(field.path)' holds \(field.field.kind.expected): use 'values'")
            return nil
        }
        guard case .mapping(let mapping) = node else {
            reader.error(at: node.mark, path, "expected a mapping with min, max and steps, got \(NodeReader.describe(node))")
            return nil
        }
        var read: [String: (value: PolicyValue, node: Node)] = [:]
        for (key, _, value) in reader.entries(of: mapping, at: path, allowed: ["min", "max", "steps"]) {
            let kind = key == "steps" ? FieldKind.integer(minimum: 2) : field.field.kind
            if let v = reader.value(of: value, kind: kind, nullable: false, at: "\(path).\(key)") { read[key] = (v, value) }
        }
        for key in ["min", "max", "steps"] where !mapping.keys.contains(where: { $0.string == key }) {
            reader.error(at: node.mark, "\(path).\(key)", "missing; a range needs min, max and steps")
        }
        guard let min = read["min"], let max = read["max"], case .integer(let steps)? = read["steps"]?.value else { return nil }
        guard let low = min.value.magnitude, let high = max.value.magnitude, high > low else {
            reader.error(at: max.node.mark, "\(path).max", "expected more than min (\(min.value)), got \(max.value)")
            return nil
        }
        // Durations given in whole milliseconds spread to whole milliseconds.
        let grain = low.truncatingRemainder(dividingBy: 1e6) == 0 && high.truncatingRemainder(dividingBy: 1e6) == 0 ? 1e6 : 1
        var values: [PolicyValue] = []
        for i in 0..<steps {
            let x = low + (high - low) * Double(i) / Double(steps - 1)
            let v: PolicyValue = switch min.value {
            case .duration: .duration(TimeSpan(nanoseconds: Int64((x / grain).rounded() * grain)))
            case .integer: .integer(Int(x.rounded()))
            default: .number(x)
            }
            if values.last != v { values.append(v) }
        }
        return values
    }
}

extension PolicyValue {
    /// A duration (in nanoseconds), integer or number as a Double, for spreading a range.
    var magnitude: Double? {
        switch self {
        case .duration(let d): Double(d.nanoseconds)
        case .integer(let i): Double(i)
        case .number(let x): x
        default: nil
        }
    }
}

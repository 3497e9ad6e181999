import Glibc
import Yams

/// Why a policy (or parameter-space) file could not be loaded.
public enum PolicyLoadError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file could not be opened or read (exit 66 in the CLI).
    case unreadable(file: String, reason: String)
    /// The file was read and is wrong: every error found, each with its place (exit 65).
    case invalid(PolicyErrors)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason): "\(file): cannot read: \(reason)"
        case .invalid(let errors): errors.description
        }
    }
}

/// What a file in policies/ holds.
public enum PolicyDocument: Sendable, Equatable {
    case policy(Policy)
    case parameterSpace(ParameterSpace)
}

/// Reads policy files. This is the only part of `Policies` that touches files; parsing a text
/// is pure.
public enum PolicyLoader {
    /// The name `-` (standard input) is shown as in errors.
    public static let standardInputName = "<stdin>"

    /// Loads the policy in `path` (`-` reads standard input).
    public static func load(path: String) throws(PolicyLoadError) -> Policy {
        let (text, name) = try readText(path)
        do { return try parse(text, file: name) } catch { throw .invalid(error) }
    }

    /// Loads a policy or a parameter space from `path`, whichever the file holds: a top-level
    /// mapping with `parameters` and no `name` is a parameter space (policies/ holds both).
    public static func loadDocument(path: String) throws(PolicyLoadError) -> PolicyDocument {
        let (text, name) = try readText(path)
        do {
            if case .mapping(let top)? = try? Yams.compose(yaml: text), top["parameters"] != nil, top["name"] == nil {
                return .parameterSpace(try ParameterSpace.parse(text, file: name))
            }
            return .policy(try parse(text, file: name))
        } catch {
            throw .invalid(error)
        }
    }

    /// Reads a policy from its text, checking it whole: every error is collected, each with its
    /// line and column in `file`, before any is thrown.
    public static func parse(_ text: String, file: String = "") throws(PolicyErrors) -> Policy {
        let document = YAMLDocument(text, file: file)
        var reader = NodeReader(document)
        var policy = Policy(name: "")
        if let root = document.root {
            if case .mapping(let mapping) = root {
                var walk = PolicyWalk()
                walk.read(mapping, entries: PolicySchema.root, at: "", into: &policy, reader: &reader)
                if !walk.given.keys.contains("name") {
                    reader.error(at: root.mark, "name", "missing; every policy needs a name")
                }
                for finding in policy.inconsistencies() where walk.failed.isDisjoint(with: finding.involves) {
                    reader.error(at: walk.place(of: finding.field, in: root), finding.field, finding.message)
                }
            } else {
                reader.error(at: root.mark, "", "expected a mapping of policy fields, got \(NodeReader.describe(root))")
            }
        } else if document.errors.isEmpty {
            reader.error(at: nil, "", "expected a mapping of policy fields with at least 'name', got an empty document")
        }
        let errors = reader.allErrors
        if !errors.isEmpty { throw PolicyErrors(errors) }
        return policy
    }

    /// The text of `path` (or of standard input for `-`) and the name to show for it.
    static func readText(_ path: String) throws(PolicyLoadError) -> (text: String, name: String) {
        let name = path == "-" ? standardInputName : path
        let fd = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .unreadable(file: name, reason: String(cString: strerror(errno))) }
        defer { if fd != 0 { close(fd) } }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(file: name, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            bytes += buffer[..<n]
        }
        return (String(decoding: bytes, as: UTF8.self), name)
    }
}

/// One walk of a policy document against the schema: which fields were given (and where), and
/// which could not be read.
struct PolicyWalk {
    /// Dotted path → the mark of its key, for every key given.
    var given: [String: Mark] = [:]
    /// Paths whose value was wrong (and so left at its default).
    var failed: Set<String> = []

    mutating func read(_ mapping: Node.Mapping, entries: [SchemaEntry], at path: String, into policy: inout Policy,
                       reader: inout NodeReader) {
        let allowed = entries.map(\.key)
        for (key, keyNode, value) in reader.entries(of: mapping, at: path, allowed: allowed, elsewhere: PolicySchema.fieldPaths) {
            let fieldPath = NodeReader.join(path, key)
            given[fieldPath] = keyNode.mark
            switch entries.first(where: { $0.key == key }) {
            case .field(let field)?:
                if let v = reader.value(of: value, kind: field.kind, nullable: field.nullable, at: fieldPath) {
                    field.set(&policy, v)
                } else {
                    failed.insert(fieldPath)
                }
            case .section(let section)?:
                if NodeReader.isNull(value) {
                    section.optional?.remove(&policy)
                } else if case .mapping(let inner) = value {
                    section.optional?.add(&policy)
                    read(inner, entries: section.entries, at: fieldPath, into: &policy, reader: &reader)
                } else {
                    reader.error(at: value.mark, fieldPath, "expected a mapping, got \(NodeReader.describe(value))")
                    failed.insert(fieldPath)
                    failed.formUnion(PolicySchema.fieldPaths.filter { $0.hasPrefix(fieldPath + ".") })
                }
            case nil:
                break
            }
        }
    }

    /// Where to report a finding about `field`: its key, else the nearest enclosing section's
    /// key, else the top of the document.
    func place(of field: String, in root: Node) -> Mark? {
        var path = field
        while !path.isEmpty {
            if let mark = given[path] { return mark }
            path = path.lastIndex(of: ".").map { String(path[..<$0]) } ?? ""
        }
        return root.mark
    }
}

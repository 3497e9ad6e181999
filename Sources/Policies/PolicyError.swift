/// One thing wrong in a policy (or parameter-space) file, where it is and what was expected:
/// `nova.yaml:7:17: field 'postcopy.after_passes': expected an integer ≥ 1, got 0`.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file as the user named it (`<stdin>` for `-`); empty when there is no file.
    public var file: String
    /// 1-based line, or nil when the error has no place in a file (a point applied in code).
    public var line: Int?
    /// 1-based column, counted in Unicode scalars as libyaml counts them.
    public var column: Int?
    /// The dotted field path (`postcopy.after_passes`, `recovery.channels[1]`); empty for an
    /// error of the whole document (YAML syntax).
    public var field: String
    /// What is wrong: what was expected and what was given.
    public var message: String

    public init(file: String = "", line: Int? = nil, column: Int? = nil, field: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
    }

    public var description: String {
        var place = file
        if let line { place += (place.isEmpty ? "" : ":") + "\(line)" + (column.map { ":\($0)" } ?? "") }
        let subject = field.isEmpty ? "" : "field '\(field)': "
        return (place.isEmpty ? "" : place + ": ") + subject + message
    }
}

/// Every error found in one file, in the order of their places.
public struct PolicyErrors: Error, Sendable, Equatable, CustomStringConvertible {
    public var errors: [PolicyError]

    public init(_ errors: [PolicyError]) { self.errors = errors }

    /// One error a line.
    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

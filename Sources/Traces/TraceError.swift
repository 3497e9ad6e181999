/// Why a trace could not be read or written. Every error about a file's content names the byte
/// offset where it was found, so that a damaged file can be looked at with a hex dump.
public struct TraceError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable {
        case notATrace = "not a trace"
        case unsupportedVersion = "unsupported version"
        case truncated
        case checksumMismatch = "checksum mismatch"
        case malformed
        case io = "I/O error"
        case invalidArgument = "invalid argument"
    }

    public let kind: Kind
    /// Byte offset in the file where the problem was found (nil for I/O and argument errors).
    public let offset: Int?
    public let message: String
    /// The file, when known.
    public var path: String?
    /// For I/O errors: the errno of the failed call.
    public var errno: Int32?

    public init(_ kind: Kind, at offset: Int?, _ message: String, path: String? = nil, errno: Int32? = nil) {
        self.kind = kind
        self.offset = offset
        self.message = message
        self.path = path
        self.errno = errno
    }

    public var description: String {
        var s = path.map { "\($0): " } ?? ""
        if let offset { s += "byte offset \(offset): " }
        return s + "\(kind.rawValue): \(message)"
    }

    static func io(_ error: SystemCallError, path: String) -> TraceError {
        TraceError(.io, at: nil, error.description, path: path, errno: error.errno)
    }
}

/// Why a migration stream ended: what failed and where. Every check the stream makes throws
/// one of these; none of them lets a frame reach guest memory.
public struct StreamError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Equatable, Sendable {
        /// The first four bytes of a frame are not the stream's magic.
        case badMagic = "bad magic"
        /// A frame type this protocol version does not define.
        case unknownType = "unknown type"
        /// Flag bits the frame type does not define, or a nonzero reserved field.
        case badFlags = "bad flags"
        /// A payload length above the limit.
        case lengthOverLimit = "length over limit"
        /// The CRC32C of header and payload does not match the one the frame carries.
        case crcMismatch = "CRC mismatch"
        /// A payload whose size or contents do not fit its type.
        case malformedPayload = "malformed payload"
        /// A protocol version this side does not speak.
        case unsupportedVersion = "unsupported version"
        /// The input ended inside a frame.
        case truncated = "truncated"
        /// A well-formed message that is not legal in the current state.
        case unexpectedMessage = "unexpected message"
        /// The peer sent `abort`.
        case peerAborted = "peer aborted"
    }

    public var kind: Kind
    /// Byte offset in the stream where the failing frame or field starts; nil for a state error
    /// raised away from any byte stream.
    public var offset: Int?
    public var detail: String

    public init(_ kind: Kind, at offset: Int? = nil, _ detail: String) {
        self.kind = kind
        self.offset = offset
        self.detail = detail
    }

    public var description: String {
        let at = offset.map { " at stream byte \($0)" } ?? ""
        return "\(kind.rawValue)\(at): \(detail)"
    }
}

/// On-disk constants of the trace format; the layout itself is documented in
/// docs/trace-format.md, and every number here appears there.
enum TraceFormat {
    static let magic: [UInt8] = Array("MIGTRACE".utf8)
    static let trailerMagic: [UInt8] = Array("MIGTEND1".utf8)
    /// The version this code writes; it reads this one and the one before it (none yet).
    static let version: UInt16 = 1
    static let oldestReadableVersion: UInt16 = 1

    /// Bytes of the header before the provenance section.
    static let fixedHeaderSize = 44
    /// tag(4) first_interval(8) interval_count(4) payload_len(4) crc(4)
    static let blockHeaderSize = 24
    static let trailerSize = 32

    static let intervalBlockTag: [UInt8] = Array("BLCK".utf8)
    static let initialBlockTag: [UInt8] = Array("INIT".utf8)
    static let indexTag: [UInt8] = Array("INDX".utf8)

    /// Header flags.
    static let flagHasReads: UInt16 = 1 << 0
    static let flagHasInitialSet: UInt16 = 1 << 1

    /// A block is closed once its payload reaches this size or holds this many intervals, so
    /// that random access decodes little more than it needs.
    static let blockPayloadTarget = 64 * 1024
    static let blockIntervalLimit = 64

    /// Working-set windows every trace carries in its summary (nanoseconds).
    static let summaryWindows: [UInt64] = [1_000_000_000, 10_000_000_000]
}

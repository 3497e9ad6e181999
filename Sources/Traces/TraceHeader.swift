/// One key/value pair of a trace's provenance (the command, the load, versions, machine, …).
public struct ProvenanceEntry: Hashable, Sendable, Codable {
    public var key: String
    public var value: String
    public init(_ key: String, _ value: String) {
        self.key = key
        self.value = value
    }
}

/// What a trace says about itself before its first interval.
public struct TraceHeader: Equatable, Sendable {
    public var version: UInt16 = TraceFormat.version
    public var pageSize: UInt32
    /// Pages of guest memory the trace's page numbers address.
    public var pageCount: UInt64
    /// Length of one interval.
    public var intervalNanoseconds: UInt64
    /// Wall-clock time of the start of the first interval (Unix epoch, nanoseconds).
    public var startTimeNanoseconds: Int64
    /// Whether each interval also carries the set of pages read.
    public var hasReads: Bool
    public var provenance: [ProvenanceEntry]

    public init(pageSize: UInt32 = 4096, pageCount: UInt64, intervalNanoseconds: UInt64,
                startTimeNanoseconds: Int64 = 0, hasReads: Bool = false, provenance: [ProvenanceEntry] = []) {
        self.pageSize = pageSize
        self.pageCount = pageCount
        self.intervalNanoseconds = intervalNanoseconds
        self.startTimeNanoseconds = startTimeNanoseconds
        self.hasReads = hasReads
        self.provenance = provenance
    }

    public var intervalSeconds: Double { Double(intervalNanoseconds) / 1e9 }

    public func provenance(_ key: String) -> String? { provenance.last { $0.key == key }?.value }

    /// The header's bytes, checksum included; page_count sits at a fixed offset (16) so that a
    /// recorder can patch it once it knows the final count.
    func encoded(hasInitialSet: Bool) -> [UInt8] {
        var w = ByteWriter()
        w.raw(TraceFormat.magic)
        w.u16(version)
        w.u16((hasReads ? TraceFormat.flagHasReads : 0) | (hasInitialSet ? TraceFormat.flagHasInitialSet : 0))
        w.u32(pageSize)
        w.u64(pageCount)
        w.u64(intervalNanoseconds)
        w.i64(startTimeNanoseconds)
        var p = ByteWriter()
        p.varint(UInt64(provenance.count))
        for entry in provenance {
            p.string(entry.key)
            p.string(entry.value)
        }
        w.u32(UInt32(p.bytes.count))
        w.raw(p.bytes)
        w.u32(crc32c(w.bytes))
        return w.bytes
    }

    /// Reads and checks the header at the start of `file`; returns it, its flags and its size.
    static func decode(_ file: UnsafeRawBufferPointer) throws(TraceError) -> (TraceHeader, flags: UInt16, size: Int) {
        guard file.count >= TraceFormat.magic.count, file.prefix(8).elementsEqual(TraceFormat.magic) else {
            throw TraceError(.notATrace, at: 0, "the file does not start with the trace magic 'MIGTRACE'")
        }
        guard file.count >= TraceFormat.fixedHeaderSize + 4 else {
            throw TraceError(.truncated, at: file.count, "the file ends inside the \(TraceFormat.fixedHeaderSize)-byte header")
        }
        var r = ByteReader(file, from: 8, to: file.count, what: "header")
        let version = try r.u16()
        guard (TraceFormat.oldestReadableVersion...TraceFormat.version).contains(version) else {
            throw TraceError(.unsupportedVersion, at: 8, "trace format version \(version); this migpilot reads versions \(TraceFormat.oldestReadableVersion)...\(TraceFormat.version)")
        }
        let flags = try r.u16()
        let pageSize = try r.u32()
        let pageCount = try r.u64()
        let interval = try r.u64()
        let start = try r.i64()
        let provenanceLength = Int(try r.u32())
        let crcOffset = TraceFormat.fixedHeaderSize + provenanceLength
        guard crcOffset + 4 <= file.count else {
            throw TraceError(.truncated, at: file.count, "the file ends inside the header (its provenance claims \(provenanceLength) bytes)")
        }
        let stored = file.loadUnaligned(fromByteOffset: crcOffset, as: UInt32.self).littleEndian
        let computed = crc32c(UnsafeRawBufferPointer(rebasing: file[0..<crcOffset]))
        guard stored == computed else {
            throw TraceError(.checksumMismatch, at: 0, "the header (bytes 0..<\(crcOffset + 4)) fails its CRC32C check")
        }
        guard flags & ~(TraceFormat.flagHasReads | TraceFormat.flagHasInitialSet) == 0 else {
            throw TraceError(.malformed, at: 10, "unknown header flags 0x\(String(flags, radix: 16))")
        }
        guard pageSize >= 512, pageSize.nonzeroBitCount == 1 else {
            throw TraceError(.malformed, at: 12, "page size \(pageSize) is not a power of two ≥ 512")
        }
        guard interval > 0 else { throw TraceError(.malformed, at: 24, "interval is zero") }
        var p = ByteReader(file, from: TraceFormat.fixedHeaderSize, to: crcOffset, what: "provenance")
        let entries = try p.count(atMost: UInt64(provenanceLength), "entry count")
        var provenance: [ProvenanceEntry] = []
        for _ in 0..<entries { provenance.append(ProvenanceEntry(try p.string("key"), try p.string("value"))) }
        var header = TraceHeader(pageSize: pageSize, pageCount: pageCount, intervalNanoseconds: interval,
                                 startTimeNanoseconds: start, hasReads: flags & TraceFormat.flagHasReads != 0,
                                 provenance: provenance)
        header.version = version
        return (header, flags, crcOffset + 4)
    }
}

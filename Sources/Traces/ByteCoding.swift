import CUring

/// Appends little-endian integers and LEB128 varints: the only byte order the trace format uses.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func f64(_ v: Double) { u64(v.bitPattern) }
    mutating func raw(_ s: some Sequence<UInt8>) { bytes.append(contentsOf: s) }

    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// A varint length, then the UTF-8 bytes.
    mutating func string(_ s: String) {
        varint(UInt64(s.utf8.count))
        bytes.append(contentsOf: s.utf8)
    }

    /// Overwrites 4 bytes at `at` (for lengths and checksums known only after the payload).
    mutating func patchU32(_ v: UInt32, at: Int) {
        withUnsafeBytes(of: v.littleEndian) { for i in 0..<4 { bytes[at + i] = $0[i] } }
    }
}

/// Reads little-endian integers and varints from a region of a file, never past `end`. Every
/// error names the absolute byte offset and what was being read.
struct ByteReader {
    let file: UnsafeRawBufferPointer
    var position: Int
    let end: Int
    /// What is being read, for error messages ("header", "block 3", "index").
    let what: String

    init(_ file: UnsafeRawBufferPointer, from: Int, to: Int, what: String) {
        self.file = file
        self.position = from
        self.end = to
        self.what = what
    }

    var remaining: Int { end - position }

    private mutating func take(_ n: Int) throws(TraceError) -> Int {
        guard n <= end - position else {
            throw TraceError(.malformed, at: position, "\(what) ends inside a \(n)-byte field (its region ends at byte \(end))")
        }
        defer { position += n }
        return position
    }

    mutating func u16() throws(TraceError) -> UInt16 { UInt16(littleEndian: file.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self)) }
    mutating func u32() throws(TraceError) -> UInt32 { UInt32(littleEndian: file.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self)) }
    mutating func u64() throws(TraceError) -> UInt64 { UInt64(littleEndian: file.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self)) }
    mutating func i64() throws(TraceError) -> Int64 { Int64(bitPattern: try u64()) }
    mutating func f64() throws(TraceError) -> Double { Double(bitPattern: try u64()) }

    mutating func bytes(_ n: Int) throws(TraceError) -> UnsafeRawBufferPointer {
        let at = try take(n)
        return UnsafeRawBufferPointer(rebasing: file[at..<at + n])
    }

    mutating func varint() throws(TraceError) -> UInt64 {
        let start = position
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else {
                throw TraceError(.malformed, at: start, "\(what) ends inside a varint (its region ends at byte \(end))")
            }
            let byte = file[position]
            position += 1
            guard shift < 64, shift != 63 || byte <= 1 else {
                throw TraceError(.malformed, at: start, "\(what) has a varint longer than 64 bits")
            }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    /// A varint that must fit `limit` (a count or length about to be used to size something).
    mutating func count(atMost limit: UInt64, _ field: String) throws(TraceError) -> Int {
        let at = position
        let v = try varint()
        guard v <= limit else { throw TraceError(.malformed, at: at, "\(what): \(field) \(v) exceeds \(limit)") }
        return Int(v)
    }

    mutating func string(_ field: String) throws(TraceError) -> String {
        let n = try count(atMost: UInt64(remaining), "\(field) length")
        return String(decoding: try bytes(n), as: UTF8.self)
    }
}

/// CRC32C of a byte region (hardware instruction where available).
func crc32c(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
    mp_crc32c(crc, bytes.baseAddress, bytes.count)
}

func crc32c(_ bytes: [UInt8], continuing crc: UInt32 = 0) -> UInt32 {
    bytes.withUnsafeBytes { crc32c($0, continuing: crc) }
}

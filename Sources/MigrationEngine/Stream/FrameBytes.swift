import CUring

/// The bytes a `FrameEncoder` has encoded, in a buffer reused batch after batch: an array kept
/// at the largest size it has needed, of which the first `count` bytes are the stream. Unlike
/// an array's own count, `count` can grow by bytes that a copy then fills in place, so that a
/// page is copied in and its CRC computed in one pass over it (`append(copying:crc:)`).
struct FrameBytes {
    private var storage: [UInt8] = []
    /// Bytes of stream in the buffer.
    private(set) var count = 0

    init(reservingCapacity capacity: Int) { storage.reserveCapacity(capacity) }

    var isEmpty: Bool { count == 0 }

    subscript(index: Int) -> UInt8 { storage[index] }

    /// A copy of the stream in the buffer.
    var array: [UInt8] { Array(storage[..<count]) }

    /// Makes room for `n` more bytes and returns where they start. The first time the buffer
    /// grows that far they are zeros (the array's own growth is geometric), and writing them is
    /// what faults the memory in.
    private mutating func extend(by n: Int) -> Int {
        let at = count
        if storage.count < at + n { storage.append(contentsOf: repeatElement(0, count: at + n - storage.count)) }
        count = at + n
        return at
    }

    mutating func append(_ byte: UInt8) {
        let at = extend(by: 1)
        storage[at] = byte
    }

    /// Appends `value` little-endian.
    mutating func put<T: FixedWidthInteger>(_ value: T) {
        Swift.withUnsafeBytes(of: value.littleEndian) { append(contentsOf: $0) }
    }

    /// Appends every value little-endian: on a little-endian host one copy (a switch's stamps
    /// are a megabyte; value by value they took milliseconds of the downtime).
    mutating func putAll(_ values: [UInt64]) {
        #if _endian(little)
        values.withUnsafeBytes { append(contentsOf: $0) }
        #else
        for v in values { put(v) }
        #endif
    }

    mutating func append(contentsOf bytes: UnsafeRawBufferPointer) {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return }
        let at = extend(by: bytes.count)
        storage.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: at).copyMemory(from: source, byteCount: bytes.count) }
    }

    mutating func append(contentsOf bytes: some Collection<UInt8>) {
        let at = extend(by: bytes.count)
        storage.withUnsafeMutableBytes { UnsafeMutableRawBufferPointer(rebasing: $0[at...]).copyBytes(from: bytes) }
    }

    /// Appends a copy of `bytes` and returns `crc` (a CRC32C) continued over them, computed as
    /// they are copied: the CRC is of the bytes now in the buffer, even if `bytes` (a running
    /// guest's page) changes meanwhile.
    mutating func append(copying bytes: UnsafeRawBufferPointer, crc: UInt32) -> UInt32 {
        guard let source = bytes.baseAddress, bytes.count > 0 else { return crc }
        let at = extend(by: bytes.count)
        return storage.withUnsafeMutableBytes { mp_crc32c_copy(crc, $0.baseAddress! + at, source, bytes.count) }
    }

    /// Drops the bytes from `count` on (the buffer keeps its size).
    mutating func truncate(to count: Int) { self.count = min(count, self.count) }

    mutating func removeAll() { count = 0 }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        let count = count
        return try storage.withUnsafeMutableBytes { try body(UnsafeMutableRawBufferPointer(rebasing: $0[..<count])) }
    }
}

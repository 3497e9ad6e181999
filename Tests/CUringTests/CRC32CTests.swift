import CUring
import Testing

@Suite struct CRC32CTests {
    func crc(_ s: String, from: UInt32 = 0) -> UInt32 { Array(s.utf8).withUnsafeBytes { mp_crc32c(from, $0.baseAddress, $0.count) } }

    @Test func knownVectors() {
        // RFC 3720 (iSCSI) check value and test vectors.
        #expect(crc("123456789") == 0xE306_9283)
        #expect(crc("") == 0)
        let zeros = [UInt8](repeating: 0, count: 32)
        #expect(zeros.withUnsafeBytes { mp_crc32c(0, $0.baseAddress, 32) } == 0x8A91_36AA)
        let ones = [UInt8](repeating: 0xff, count: 32)
        #expect(ones.withUnsafeBytes { mp_crc32c(0, $0.baseAddress, 32) } == 0x62A8_AB43)
    }

    @Test func continuationEqualsOneShot() {
        let text = "The quick brown fox jumps over the lazy dog, at every alignment."
        for split in 0...text.utf8.count {
            let a = String(text.prefix(split)), b = String(text.dropFirst(split))
            #expect(crc(b, from: crc(a)) == crc(text))
        }
    }

    /// Bit by bit, straight from the polynomial: the reference for the fast paths.
    func referenceCRC(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            c ^= UInt32(byte)
            for _ in 0..<8 { c = (c >> 1) ^ (0x82F6_3B78 & (0 &- (c & 1))) }
        }
        return ~c
    }

    @Test func longBuffersAgreeWithTheReferenceOnEveryPath() {
        // Below 4 KiB the three crc32 lanes of 1,360 bytes; from 4 KiB on, on a CPU with
        // VPCLMULQDQ, folding by 128 bytes, then 16, then the tail: lengths and offsets around
        // each of those steps, a frame of 16 pages, and states other than the initial one.
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(17 * 4096 + 64)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for length in [4079, 4080, 4081, 4095, 4096, 4096 + 15, 4096 + 16, 4096 + 127, 4096 + 128, 4096 + 129,
                       8160, 8161, 3 * 4096 + 5, 5 * 4096, 16 * 4096, 16 * 4096 + 16 + 3] {
            for offset in [0, 1, 7, 8, 13, 32] {
                let slice = bytes[offset..<offset + length]
                let fast = bytes.withUnsafeBytes { mp_crc32c(0, $0.baseAddress! + offset, length) }
                #expect(fast == referenceCRC(slice), "length \(length) at offset \(offset)")
            }
        }
        // Continued across splits inside a block and inside a fold.
        let whole = bytes.withUnsafeBytes { mp_crc32c(0, $0.baseAddress, 60_000) }
        for split in [5_000, 4_096, 55_000 - 1] {
            let first = bytes.withUnsafeBytes { mp_crc32c(0, $0.baseAddress, split) }
            #expect(bytes.withUnsafeBytes { mp_crc32c(first, $0.baseAddress! + split, 60_000 - split) } == whole, "split at \(split)")
        }
    }

    @Test func aCopyWithItsCRCCopiesAndAgreesWithTheReference() {
        // The same lengths and offsets as above, into a destination whose bytes beyond the
        // copy must stay as they were.
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<(17 * 4096 + 64)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for length in [0, 1, 100, 4095, 4096, 4096 + 15, 4096 + 16, 4096 + 127, 4096 + 128, 4096 + 129, 16 * 4096, 16 * 4096 + 16 + 3] {
            for offset in [0, 1, 13, 32] {
                var out = [UInt8](repeating: 0xEE, count: length + 64)
                let crc = bytes.withUnsafeBytes { src in
                    out.withUnsafeMutableBytes { mp_crc32c_copy(7, $0.baseAddress! + 3, src.baseAddress! + offset, length) }
                }
                let continued = bytes.withUnsafeBytes { mp_crc32c(7, $0.baseAddress! + offset, length) }
                #expect(crc == continued, "length \(length) at offset \(offset)")
                #expect(Array(out[3..<3 + length]) == Array(bytes[offset..<offset + length]))
                #expect(out[..<3].allSatisfy { $0 == 0xEE } && out[(3 + length)...].allSatisfy { $0 == 0xEE })
            }
        }
    }

    @Test func aCopysCRCIsOfTheBytesItWroteWhileTheSourceChanges() async {
        // A running guest's page changes while the sender copies it: whatever lands in the copy,
        // the CRC must be of exactly that, or the destination would refuse a good frame.
        let length = 16 * 4096
        let source = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        source.initializeMemory(as: UInt8.self, repeating: 0)
        defer { source.deallocate() }
        let base = UInt(bitPattern: source.baseAddress!)
        let writer = Task.detached {
            var value: UInt64 = 1
            while !Task.isCancelled {
                for at in stride(from: 0, to: length, by: 512) {
                    UnsafeMutableRawPointer(bitPattern: base + UInt(at))!.storeBytes(of: value, as: UInt64.self)
                }
                value &+= 1
            }
        }
        var copy = [UInt8](repeating: 0, count: length)
        var mismatches = 0
        for _ in 0..<2_000 {
            let crc = copy.withUnsafeMutableBytes { mp_crc32c_copy(0, $0.baseAddress, source.baseAddress, length) }
            if crc != copy.withUnsafeBytes({ mp_crc32c(0, $0.baseAddress, length) }) { mismatches += 1 }
        }
        writer.cancel()
        await writer.value
        #expect(mismatches == 0)
    }

    @Test func fingerprintsAreZeroForZeroPagesAndDifferOtherwise() {
        var pages = [UInt8](repeating: 0, count: 4096 * 4)
        pages[4096 + 17] = 1  // page 1 differs from page 0 in one bit
        pages[2 * 4096 + 4095] = 1  // page 2: the last byte
        pages[3 * 4096] = 1  // page 3: the first byte
        var out = [UInt64](repeating: 9, count: 4)
        pages.withUnsafeBytes { mp_page_fingerprints($0.baseAddress, 4, 4096, &out) }
        #expect(out[0] == 0)
        #expect(Set(out).count == 4)
    }

    @Test func fingerprintsDependOnPosition() {
        var a = [UInt8](repeating: 0, count: 4096), b = a
        a[8] = 7
        b[16] = 7
        var fa: UInt64 = 0, fb: UInt64 = 0
        a.withUnsafeBytes { mp_page_fingerprints($0.baseAddress, 1, 4096, &fa) }
        b.withUnsafeBytes { mp_page_fingerprints($0.baseAddress, 1, 4096, &fb) }
        #expect(fa != fb)
    }
}

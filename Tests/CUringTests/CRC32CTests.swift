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

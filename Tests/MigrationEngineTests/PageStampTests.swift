import Testing
@testable import MigrationEngine

@Suite struct PageStampTests {
    @Test func roundTripsAndTellsUnstampedAndCorruptPagesApart() {
        var page = [UInt8](repeating: 0, count: 4096)
        page.withUnsafeMutableBytes { p in
            #expect(PageStamp.read(from: p.baseAddress!) == .unstamped)
            PageStamp(page: 12345, sequence: 678).write(to: p.baseAddress!)
            #expect(PageStamp.read(from: p.baseAddress!) == .stamped(PageStamp(page: 12345, sequence: 678)))
            p[3] ^= 0x40  // the page number changes: the check word no longer matches
            #expect(PageStamp.read(from: p.baseAddress!) == .corrupt)
        }
    }

    @Test func aStampCopiedToAnotherPageStillNamesItsOwnPage() {
        var a = [UInt8](repeating: 0, count: 64), b = a
        a.withUnsafeMutableBytes { PageStamp(page: 7, sequence: 1).write(to: $0.baseAddress!) }
        b = a
        #expect(b.withUnsafeBytes { PageStamp.read(from: $0.baseAddress!) } == .stamped(PageStamp(page: 7, sequence: 1)))
    }
}

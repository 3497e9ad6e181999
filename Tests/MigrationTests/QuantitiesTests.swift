import Migration
import Testing

@Suite struct QuantitiesTests {
    @Test(arguments: [("100ms", Int64(100_000_000)), ("2s", 2_000_000_000), ("1m", 60_000_000_000),
                      ("1.5s", 1_500_000_000), ("250us", 250_000), ("1h", 3_600_000_000_000), (" 3s ", 3_000_000_000)])
    func durations(text: String, nanoseconds: Int64) throws {
        #expect(try TimeSpan(parsing: text).nanoseconds == nanoseconds)
    }

    @Test(arguments: ["", "5", "ms", "5x", "-1s", "1.2.3s", "s5"])
    func badDurationsSayWhatWasExpected(text: String) {
        #expect(throws: QuantityError(expected: "a duration with a unit such as 100ms, 2s or 1m", given: text)) {
            try TimeSpan(parsing: text)
        }
    }

    @Test func durationsPrintInTheirLargestWholeUnit() {
        #expect(TimeSpan(nanoseconds: 100_000_000).description == "100ms")
        #expect(TimeSpan(nanoseconds: 60_000_000_000).description == "1m")
        #expect(TimeSpan(nanoseconds: 1_500_000_000).description == "1500ms")
    }

    @Test(arguments: [("512MiB", UInt64(512 << 20)), ("4GiB", 4 << 30), ("2GB", 2_000_000_000), ("512M", 512 << 20),
                      ("1.5GiB", 3 << 29), ("4096B", 4096)])
    func sizes(text: String, bytes: UInt64) throws {
        #expect(try ByteCount(parsing: text).bytes == bytes)
    }

    @Test func badSizes() {
        #expect(throws: QuantityError.self) { try ByteCount(parsing: "12 parsecs") }
        #expect(throws: QuantityError.self) { try ByteCount(parsing: "4096") }
    }

    @Test func fixedFormatting() {
        #expect(formatFixed(1.005, decimals: 1) == "1.0")
        #expect(formatFixed(-0.25, decimals: 2) == "-0.25")
        #expect(formatFixed(3, decimals: 0) == "3")
        #expect(ByteCount(bytes: 448 << 20).description == "448MiB")
        #expect(ByteCount(bytes: 3 << 29).description == "1.50GiB")
    }
}

@Suite struct BandwidthTests {
    @Test(arguments: [("10Gbit/s", 1.25e9), ("2.5Gbit/s", 3.125e8), ("800Mbit/s", 1e8), ("1GB/s", 1e9),
                      ("100MB/s", 1e8), ("1GiB/s", 1073741824), ("512MiB/s", 536870912)])
    func units(text: String, bytesPerSecond: Double) throws {
        #expect(try Bandwidth(parsing: text).bytesPerSecond == bytesPerSecond)
    }

    @Test(arguments: ["10", "10Gb", "10 gigabits", "0Gbit/s", "-1MB/s", "Gbit/s"])
    func badBandwidths(text: String) {
        #expect(throws: QuantityError.self) { try Bandwidth(parsing: text) }
    }

    @Test func printsInBits() {
        #expect(Bandwidth(bytesPerSecond: 1.25e9).description == "10Gbit/s")
        #expect(Bandwidth(bytesPerSecond: 3.125e8).description == "2.50Gbit/s")
    }
}

import Migration

/// The link pages travel over: its bandwidth B and what one page costs on it, s + h bytes
/// (a zero page costs only its header h).
public struct PageLink: Codable, Sendable, Equatable {
    public var bandwidth: BandwidthEstimate
    /// s, bytes per page.
    public var pageSizeBytes: UInt64
    /// h, bytes of header per page sent.
    public var headerBytes: UInt64

    public init(bandwidth: BandwidthEstimate, pageSize: ByteCount = ByteCount(bytes: 4096), headerBytes: UInt64 = 8) {
        self.bandwidth = bandwidth
        pageSizeBytes = pageSize.bytes
        self.headerBytes = headerBytes
    }

    enum CodingKeys: String, CodingKey {
        case bandwidth
        case pageSizeBytes = "page_size_bytes"
        case headerBytes = "header_bytes"
    }

    /// s + h, bytes on the wire for a page holding data.
    var bytesPerDataPage: Double { Double(pageSizeBytes + headerBytes) }

    func validate() throws(ModelError) {
        guard bandwidth.bytesPerSecond.isFinite, bandwidth.bytesPerSecond > 0 else {
            throw .invalidInput("the bandwidth must be above 0 bytes/s, not \(bandwidth.bytesPerSecond)")
        }
        guard pageSizeBytes > 0 else { throw .invalidInput("the page size must be at least 1 byte") }
    }
}

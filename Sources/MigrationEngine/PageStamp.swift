/// The mark every guest write leaves at the start of its page: which page, which write (a
/// sequence number per page), and a check word, so that the destination can prove each page
/// holds its latest content — neither lost (still an older sequence) nor stale, nor garbage.
public struct PageStamp: Equatable, Sendable {
    /// Bytes at the start of a page that hold the stamp.
    public static let size = 24
    static let magic: UInt32 = 0x4D50_5354  // "MPST"

    public var page: UInt64
    public var sequence: UInt64

    public init(page: UInt64, sequence: UInt64) {
        self.page = page
        self.sequence = sequence
    }

    /// Writes the stamp at `base` (little-endian: page, sequence, magic, check).
    public func write(to base: UnsafeMutableRawPointer) {
        base.storeBytes(of: page.littleEndian, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: sequence.littleEndian, toByteOffset: 8, as: UInt64.self)
        base.storeBytes(of: Self.magic.littleEndian, toByteOffset: 16, as: UInt32.self)
        base.storeBytes(of: check.littleEndian, toByteOffset: 20, as: UInt32.self)
    }

    /// The stamp at `base`: nil for a page never stamped (all zeros); `.corrupt` when the bytes
    /// are not a valid stamp.
    public static func read(from base: UnsafeRawPointer) -> Reading {
        let page = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        let sequence = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        let magic = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
        let check = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 20, as: UInt32.self))
        if page == 0, sequence == 0, magic == 0, check == 0 { return .unstamped }
        let stamp = PageStamp(page: page, sequence: sequence)
        return magic == Self.magic && check == stamp.check ? .stamped(stamp) : .corrupt
    }

    public enum Reading: Equatable, Sendable {
        case unstamped
        case stamped(PageStamp)
        case corrupt
    }

    /// A mix of page and sequence, so that a stamp copied to the wrong page or torn is caught.
    var check: UInt32 {
        var x = page &* 0x9E37_79B9_7F4A_7C15 ^ sequence &* 0xC2B2_AE3D_27D4_EB4F
        x ^= x >> 29
        return UInt32(truncatingIfNeeded: x ^ (x >> 32)) ^ Self.magic
    }
}

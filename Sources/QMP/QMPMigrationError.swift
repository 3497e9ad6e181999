/// Why `QMPMigration` refused or could not carry out a step (the state forbids it, QEMU has no
/// such control, a peer answered something a migration cannot be driven by).
public struct QMPMigrationError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The state of a migration, with QEMU's names (qapi/migration.json `MigrationStatus`) so that
/// operators and their tools read migpilot the way they read QEMU.
public enum MigrationState: String, Codable, Sendable, CaseIterable {
    case none
    case setup
    case active
    case preSwitchover = "pre-switchover"
    case device
    case postcopyActive = "postcopy-active"
    case postcopyPaused = "postcopy-paused"
    case postcopyRecover = "postcopy-recover"
    case completed
    case failed
    case cancelling
    case cancelled

    /// No further change will happen.
    public var isFinished: Bool { self == .completed || self == .failed || self == .cancelled }

    /// The guest runs on the destination and pages are split between the two sides: the
    /// migration can only go forward (or pause), never back to the source.
    public var isPostcopy: Bool { self == .postcopyActive || self == .postcopyPaused || self == .postcopyRecover }
}

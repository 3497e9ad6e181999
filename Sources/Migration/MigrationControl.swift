/// The seam between the driver and a migration backend: the what-if simulator, the embedded
/// engine and the QMP client each implement it, and a policy never knows which it drives.
///
/// Time belongs to the backend: a real backend waits in `nextObservation`, the simulator
/// advances its virtual clock. The driver never reads a clock of its own.
public protocol MigrationControl: AnyObject {
    /// Starts precopy.
    func start() throws
    /// Returns as soon as something worth a decision happens (a pass ends, what is pending fits
    /// the downtime limit, the state or the channel changes) or after `seconds` at the latest.
    func nextObservation(within seconds: Double) throws -> Observation
    /// Syncs the dirty bitmap and stops the guest for the final copy if at most
    /// `maxPendingPages` are then pending (nil: whatever is pending). True if it stopped.
    func complete(maxPendingPages: UInt64?) throws -> Bool
    func startPostcopy() throws
    func setDowntimeLimit(seconds: Double) throws
    func setBandwidth(bytesPerSecond: Double?) throws
    func throttle(percent: Int) throws
    /// Pauses a postcopy migration (its channel); both sides keep every page.
    func pause() throws
    /// Resumes a paused postcopy migration over `uri` after `seconds`.
    func recover(uri: String, after seconds: Double) throws
    func cancel(reason: String) throws
}
